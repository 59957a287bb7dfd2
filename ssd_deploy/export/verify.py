"""``--verify``'s inputs: the sample images, and the exported file loaded as a function of a batch.

The comparison itself (tolerances, the eager graph against the loaded file) is
:mod:`ssd_deploy.compare`. The sample images are generated shapes scenes (or the user's images),
so the check needs no data. No flat image is among them on purpose: a uniform image gives many
priors exactly equal scores, and NMS implementations (torchvision, ONNX Runtime, TensorRT) break
exact ties in different orders, so the kept sets legitimately differ there and an exact
comparison means nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..data.shapes import render_scene
from ..errors import SSDDeployError
from ..images import list_images, read_image
from ..pipeline import preprocess


def sample_batch(input_size: tuple[int, int], batch: int, pictures: Sequence[np.ndarray] = (), seed: int = 0) -> Tensor:
    """Tensor[batch, 3, H, W] RGB in [0, 1]: ``pictures`` (BGR uint8, any size, cycled), else
    generated shapes scenes."""
    pictures = [pictures[i % len(pictures)] for i in range(batch)] if len(pictures) else []
    rng = np.random.default_rng(seed)
    while len(pictures) < batch:
        pictures.append(render_scene(rng, input_size).image)
    tensor, _ = preprocess(pictures, input_size)
    return tensor


def read_pictures(paths: Sequence[Path]) -> list[np.ndarray]:
    """The images of ``--verify-images``, read once (BGR uint8)."""
    return [read_image(path) for path in paths]


def verification_images(folder: Path | None) -> list[Path]:
    """Images of ``--verify-images`` (a file or a folder), or none when it is not given."""
    if folder is None:
        return []
    found = list_images(folder)
    if not found:
        raise SSDDeployError(f"{folder}: no images found for --verify-images")
    return found


def load_runner_function(path: Path, device: str, runtime: str = "auto") -> Callable[[Tensor], tuple[Tensor, ...]]:
    """The exported file as users run it, through :func:`ssd_deploy.runtimes.load` (``runtime``,
    by default picked from the file, as for ``Detector``), as a function of a float32 batch
    Tensor[N, 3, H, W] returning the contract's outputs as CPU tensors.

    ONNX files are checked on ONNX Runtime's CPU provider whatever ``device`` is: the CPU wheel is
    what the export's extra installs, and a CUDA export of ONNX differs only in where it was traced.
    """
    # Runtimes read export metadata, so importing them when this module loads would be circular.
    from ..runtimes import load

    runner = load(path, runtime, device="cpu" if path.suffix.lower() == ".onnx" else device).runner

    def run(images: Tensor) -> tuple[Tensor, ...]:
        return tuple(torch.from_numpy(output) for output in runner.infer(images).values())

    return run

"""An exported file as a plain function of a batch, through the loader its runtime uses.

    run = load_function("model.onnx")      # or .ts / .pt2
    num_detections, boxes, scores, labels = run(images)   # images: float32 Tensor[N, 3, H, W] in [0, 1]

Unlike :func:`ssd_deploy.runtimes.load`, no host-side input check runs first: a bad batch gets the
file's own answer, as a C++ program would (TorchScript's and the graph's checks, ONNX Runtime's
shape errors). The outputs are the contract's, in order (:mod:`ssd_deploy.export.metadata`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ..export.formats import format_of_file
from .aotinductor import load_package
from .onnxruntime import load_function as onnxruntime_function
from .torchscript import load_module

# export format -> the loader of the runtime that runs it
LOADERS: dict[str, Callable[..., Callable[[torch.Tensor], tuple[torch.Tensor, ...]]]] = {
    "torchscript": load_module,
    "onnx": onnxruntime_function,
    "pt2": load_package,
}


def load_function(path: str | Path, device: str = "cpu") -> Callable[[torch.Tensor], tuple[torch.Tensor, ...]]:
    """The exported file at ``path`` (format from its suffix) loaded on ``device`` as ``run(images)``.

    Raises:
        ExportError: not a loadable file of its format, or CUDA asked on a machine without it.
    """
    path = Path(path)
    return LOADERS[format_of_file(path).name](path, device)

"""``--verify``: run the exported file and compare it with the PyTorch graph it came from.

The sample images are generated shapes scenes (or the user's images), so the check needs no data.
No flat image is among them on purpose: a uniform image gives many priors exactly equal scores,
and NMS implementations (torchvision, ONNX Runtime, TensorRT) break exact ties in different
orders, so the kept sets legitimately differ there and an exact comparison means nothing.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..compare import Comparison, Tolerances, compare_decoded, compare_detections, detection_recall
from ..data.shapes import render_scene
from ..deploy import DecodeModule
from ..errors import SSDDeployError
from ..images import list_images, read_image
from ..pipeline import preprocess
from ..postprocess import PostprocessConfig, select_detections

# The tightest tolerances of a float32 file: a well-conditioned network reproduces the eager graph
# to these (measured on SSDLite-MobileNetV2: scores within 6e-8, boxes within 4e-7).
FP32_TOLERANCES = Tolerances(box_atol=1e-4, score_atol=1e-5, min_iou=0.999, basis="fixed float32 tolerances")
# A runtime computes the float32 network in another order (fused convolutions, other GEMM blocking)
# and so differs from PyTorch by about as much as PyTorch's float32 differs from the exact result:
# measured on MobileNetV2/V3 SSDLite with random weights, ONNX Runtime's difference from PyTorch
# was 0.7-1.2 times PyTorch's own difference from float64. Tolerances are ROUNDING_FACTOR times
# that difference, measured on the verification images, so an ill-conditioned network (random
# BatchNorm statistics amplify rounding) is judged by its own rounding, never looser than needed.
ROUNDING_FACTOR = 4.0
# Whatever the rounding, a box must stay within a quarter pixel: a shifted box is a defect.
MAX_BOX_PIXELS = 0.25
# float16 files are compared with the eager float16 graph: runtimes accumulate float16
# convolutions differently (measured on SSDLite: scores within 2e-3, boxes within 1e-3).
FP16_TOLERANCES = Tolerances(box_atol=5e-3, score_atol=5e-3, min_iou=0.99)


@dataclass(frozen=True)
class RecallCriterion:
    """How INT8 files are checked: as detectors, by finding each other's confident detections.

    Each run's detections scoring above ``score_threshold`` must be found by the other (same
    label, IoU >= ``min_iou``, score above ``score_threshold - score_margin``) at least
    ``min_recall`` of the time. Measured on a trained SSDLite at 128 px: INT8 finds 90-98% of the
    FP32 detections both ways (NNCF: 97-100%), OpenVINO BF16 98-100%.
    """

    score_threshold: float = 0.3
    min_iou: float = 0.5
    score_margin: float = 0.1
    min_recall: float = 0.85


INT8_CRITERION = RecallCriterion()


def sample_batch(input_size: tuple[int, int], batch: int, pictures: Sequence[np.ndarray] = (), seed: int = 0) -> Tensor:
    """Tensor[batch, 3, H, W] RGB in [0, 1]: ``pictures`` (BGR uint8, any size, cycled), else
    generated shapes scenes."""
    pictures = [pictures[i % len(pictures)] for i in range(batch)] if len(pictures) else []
    rng = np.random.default_rng(seed)
    while len(pictures) < batch:
        pictures.append(render_scene(rng, input_size).image)
    tensor, _ = preprocess(pictures, input_size)
    return tensor


def float32_tolerances(network: nn.Module, priors: Tensor, batches: Sequence[Tensor], sigmoid: bool = False) -> Tolerances:
    """Tolerances of a float32 file of ``network`` derived from its own float32 rounding.

    The decoded boxes and scores of every prior are computed in float32 and in float64 on
    ``batches``; the largest differences times :data:`ROUNDING_FACTOR`, never below
    :data:`FP32_TOLERANCES`, are the tolerances (boxes capped at :data:`MAX_BOX_PIXELS`). Matched
    boxes need IoU >= 0.999 or every coordinate within the box tolerance (see :mod:`ssd_deploy.compare`).

    Args:
        network: the float32 SSD (left unchanged). priors: Tensor[P, 4] cxcywh.
        batches: float32 [N, 3, H, W] RGB in [0, 1].
    """
    device = next(iter(network.parameters())).device
    exact = DecodeModule(copy.deepcopy(network).double(), priors.double(), sigmoid).eval()
    rounded = DecodeModule(network, priors, sigmoid).eval()
    box_error = score_error = 0.0
    with torch.inference_mode():
        for batch in batches:
            (boxes, scores), (boxes64, scores64) = rounded(batch.to(device)), exact(batch.to(device).double())
            box_error = max(box_error, (boxes.double() - boxes64).abs().max().item())
            score_error = max(score_error, (scores.double() - scores64).abs().max().item())
    base = FP32_TOLERANCES
    box_cap = MAX_BOX_PIXELS / max(batches[0].shape[-2:])
    box_atol = min(max(base.box_atol, ROUNDING_FACTOR * box_error), max(box_cap, base.box_atol))
    basis = (
        f"{ROUNDING_FACTOR:g} x the model's float32 rounding (scores {score_error:.1e}, boxes {box_error:.1e} "
        f"against float64), at least {base.score_atol:.0e} / {base.box_atol:.0e}"
    )
    return Tolerances(box_atol, max(base.score_atol, ROUNDING_FACTOR * score_error), base.min_iou, basis)


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


def load_runner_function(path: Path, device: str) -> Callable[[Tensor], tuple[Tensor, ...]]:
    """The exported file as users run it, through :func:`ssd_deploy.runtimes.load` (the runtime
    picked from the file, as for ``Detector``), as a function of a float32 batch Tensor[N, 3, H, W]
    returning the contract's outputs as CPU tensors.

    ONNX files are checked on ONNX Runtime's CPU provider whatever ``device`` is: the CPU wheel is
    what the export's extra installs, and a CUDA export of ONNX differs only in where it was traced.
    """
    # Runtimes read export metadata, so importing them when this module loads would be circular.
    from ..runtimes import load

    runner = load(path, device="cpu" if path.suffix.lower() == ".onnx" else device).runner

    def run(images: Tensor) -> tuple[Tensor, ...]:
        return tuple(torch.from_numpy(output) for output in runner.infer(images).values())

    return run


def _run_both(
    reference: nn.Module, run: Callable[[Tensor], tuple[Tensor, ...]], batches: Sequence[Tensor]
) -> Iterator[tuple[Tensor, Sequence[Tensor], Sequence[Tensor]]]:
    """Each batch with the eager graph's outputs and the loaded file's."""
    device = next(iter(reference.buffers())).device
    for batch in batches:
        with torch.inference_mode():
            expected = reference(batch.to(device))
        yield batch, expected, run(batch)


def verify(
    reference: nn.Module,
    run: Callable[[Tensor], tuple[Tensor, ...]],
    batches: Sequence[Tensor],
    nms: bool,
    tolerances: Tolerances,
    score_threshold: float,
    iou_threshold: float,
) -> Comparison:
    """Compare ``run`` (the loaded export) with ``reference`` (the eager graph) on ``batches``."""
    result: Comparison | None = None
    for _, expected, actual in _run_both(reference, run, batches):
        if nms:
            comparison = compare_detections(expected, actual, tolerances, score_threshold, iou_threshold)
        else:
            comparison = compare_decoded(expected, actual, tolerances)
        result = comparison if result is None else result.merge(comparison)
    assert result is not None, "verify needs at least one batch"
    return result


def verify_recall(
    reference: nn.Module,
    run: Callable[[Tensor], tuple[Tensor, ...]],
    batches: Sequence[Tensor],
    postprocess: PostprocessConfig,
    nms: bool = True,
    criterion: RecallCriterion = INT8_CRITERION,
) -> Comparison:
    """Check a reduced-precision file (INT8) against the float graph by :class:`RecallCriterion`.

    Files without NMS get the shared selection (:func:`select_detections`) applied to both runs first.
    """
    result = Comparison("recall", Tolerances(score_atol=criterion.score_margin, min_iou=criterion.min_iou))
    for batch, expected, actual in _run_both(reference, run, batches):
        if not nms:
            expected, actual = (_select(outputs, postprocess) for outputs in (expected, actual))
        result.images += batch.shape[0]
        for first, second in ((expected, actual), (actual, expected)):
            found, total = detection_recall(first, second, criterion.score_threshold, criterion.min_iou, criterion.score_margin)
            result.matched += found
            result.compared += total
    if not result.compared:
        result.problems.append(
            f"no detection scored above {criterion.score_threshold} on the {result.images} verification images, so nothing "
            "was compared. Note: give --verify-images the model detects objects in"
        )
    elif result.matched < criterion.min_recall * result.compared:
        result.problems.append(
            f"only {result.matched} of {result.compared} confident detections (score > {criterion.score_threshold}) "
            f"were found by the other run; at least {criterion.min_recall:.0%} expected"
        )
    return result


def _select(outputs: Sequence[Tensor], post: PostprocessConfig) -> tuple[Tensor, ...]:
    boxes, scores = (t.detach().cpu().float() for t in outputs)
    return tuple(select_detections(boxes, scores, post))

"""``--verify``: run the exported file and compare it with the PyTorch graph it came from.

The sample images are generated shapes scenes (or the user's images), so the check needs no data.
No flat image is among them on purpose: a uniform image gives many priors exactly equal scores,
and NMS implementations (torchvision, ONNX Runtime, TensorRT) break exact ties in different
orders, so the kept sets legitimately differ there and an exact comparison means nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..compare import Comparison, Tolerances, compare_decoded, compare_detections, detection_recall
from ..data.shapes import render_scene
from ..errors import SSDDeployError
from ..images import list_images, read_image
from ..pipeline import preprocess
from ..postprocess import PostprocessConfig, select_padded

# The export issue's tolerances: float32 files must reproduce the eager graph to float rounding.
FP32_TOLERANCES = Tolerances(box_atol=1e-4, score_atol=1e-5, min_iou=0.999)
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

    Files without NMS get the shared selection (:func:`select_padded`) applied to both runs first.
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
    return tuple(select_padded(boxes, scores, post.score_threshold, post.iou_threshold, post.max_detections, post.topk_candidates))

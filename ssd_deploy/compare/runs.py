"""Comparing a loaded file's run function with the eager module it came from, over batches.

:func:`verify` compares outputs within :class:`~ssd_deploy.compare.Tolerances` (float32, float16);
:func:`verify_recall` judges reduced precisions (INT8) as detectors by a
:class:`~ssd_deploy.compare.RecallCriterion`.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from ..postprocess import PostprocessConfig, select_detections
from .comparison import Comparison
from .detections import compare_decoded, compare_detections
from .recall import mutual_recall
from .tolerances import INT8_CRITERION, RecallCriterion, Tolerances


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
        for found, total in mutual_recall(expected, actual, criterion):
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

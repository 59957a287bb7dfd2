"""Comparing the outputs of two runs: padded detections as sets, decoded outputs element-wise.

Detections are compared as sets, not by position: two correct NMS implementations may order equal
scores differently. Each reference detection is matched to an unmatched detection of the other run
with the same label, the score within ``score_atol`` and the largest IoU, which must reach
``min_iou`` unless every coordinate is within ``box_atol`` (a small box moved by float rounding
loses more IoU than a large one). A detection left unmatched is excused only where a tiny score difference legitimately
changes the set: a score within ``score_atol`` of the score threshold, or of the K-th (last kept)
score of a full image, or an NMS swap (the other run kept an overlapping box of the same label,
IoU above the NMS threshold, whose score is within ``score_atol``: which of two near-tied boxes
survives NMS is decided by rounding). Such excuses are rare between two runs of one model; more
than :data:`MAX_EXCUSED_FRACTION` of the detections is itself a problem, since a systematic
defect (every box moved by a pixel) would otherwise pass as a series of near-ties.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
from torchvision.ops import box_iou

from .comparison import Comparison
from .tolerances import Tolerances

# Rounding changes a few detections near a threshold or an NMS near-tie (measured: at most 1 % of
# the detections of a spread random SSDLite); a defect changes many.
MAX_EXCUSED_FRACTION = 0.05
MIN_EXCUSES_ALLOWED = 5  # an image or two with few detections may have a handful


def compare_decoded(reference: Sequence[Tensor], other: Sequence[Tensor], tolerances: Tolerances) -> Comparison:
    """Compare ``(boxes [N, P, 4], scores [N, P, C])`` element-wise."""
    (ref_boxes, ref_scores), (boxes, scores) = reference, other
    result = Comparison("decoded", tolerances, images=ref_boxes.shape[0])
    if boxes.shape != ref_boxes.shape or scores.shape != ref_scores.shape:
        result.problems.append(
            f"shapes differ: boxes {list(boxes.shape)} vs {list(ref_boxes.shape)}, "
            f"scores {list(scores.shape)} vs {list(ref_scores.shape)}"
        )
        return result
    result.max_box_diff = (boxes.float() - ref_boxes.float()).abs().max().item() if boxes.numel() else 0.0
    result.max_score_diff = (scores.float() - ref_scores.float()).abs().max().item() if scores.numel() else 0.0
    if result.max_box_diff > tolerances.box_atol:
        result.problems.append(f"boxes differ by up to {result.max_box_diff:.2e} (tolerance {tolerances.box_atol:.0e})")
    if result.max_score_diff > tolerances.score_atol:
        result.problems.append(f"scores differ by up to {result.max_score_diff:.2e} (tolerance {tolerances.score_atol:.0e})")
    return result


def compare_detections(
    reference: Sequence[Tensor],
    other: Sequence[Tensor],
    tolerances: Tolerances,
    score_threshold: float,
    iou_threshold: float,
) -> Comparison:
    """Compare padded detections ``(num_detections [N], boxes [N, K, 4], scores [N, K], labels [N, K])``.

    Args:
        reference, other: the two runs' outputs (torch tensors, any device).
        tolerances: see :class:`Tolerances`.
        score_threshold, iou_threshold: the thresholds both runs applied.
    """
    reference = [t.detach().cpu() for t in reference]
    other = [t.detach().cpu() for t in other]
    result = Comparison("detections", tolerances, images=reference[0].shape[0])
    if [t.shape for t in reference] != [t.shape for t in other]:
        result.problems.append(f"output shapes differ: {[list(t.shape) for t in other]} vs {[list(t.shape) for t in reference]}")
        return result
    capacity = reference[1].shape[1]
    for image in range(result.images):
        ref = image_detections(reference, image)
        out = image_detections(other, image)
        _compare_image(ref, out, image, capacity, score_threshold, iou_threshold, result)
    total = result.matched + result.excused
    if result.excused > max(MIN_EXCUSES_ALLOWED, MAX_EXCUSED_FRACTION * total):
        result.problems.append(
            f"{result.excused} of {total} detections have no exact counterpart and were excused one by one as near a "
            f"threshold or an NMS near-tie; more than {MAX_EXCUSED_FRACTION:.0%} means a systematic difference "
            f"(moved boxes, changed scores), not rounding. E.g. {result.excuse_example}"
        )
    return result


def image_detections(outputs: Sequence[Tensor], image: int) -> tuple[Tensor, Tensor, Tensor]:
    """Image ``image``'s detections of padded outputs ``(num, boxes, scores, labels)``: (boxes, scores, labels)."""
    count = int(outputs[0][image])
    return outputs[1][image, :count].float(), outputs[2][image, :count].float(), outputs[3][image, :count].long()


def _compare_image(
    ref, out, image: int, capacity: int, score_threshold: float, iou_threshold: float, result: Comparison
) -> None:
    (ref_boxes, ref_scores, ref_labels), (boxes, scores, labels) = ref, out
    tolerances = result.tolerances
    atol = tolerances.score_atol
    ious = box_iou(ref_boxes, boxes) if len(ref_scores) and len(scores) else torch.zeros(len(ref_scores), len(scores))
    close = (ref_boxes[:, None, :] - boxes[None, :, :]).abs().amax(dim=-1) <= tolerances.box_atol
    same_place = (ious >= tolerances.min_iou) | close
    compatible = (ref_labels[:, None] == labels[None, :]) & ((ref_scores[:, None] - scores[None, :]).abs() <= atol)
    taken = torch.zeros(len(scores), dtype=torch.bool)
    unmatched_ref = []
    for i in torch.argsort(ref_scores, descending=True, stable=True).tolist():
        candidates = torch.where(compatible[i] & same_place[i] & ~taken, ious[i], torch.full_like(ious[i], -1.0))
        j = int(candidates.argmax()) if len(scores) else -1
        if j < 0 or candidates[j] < 0:
            unmatched_ref.append(i)
            continue
        taken[j] = True
        result.matched += 1
        result.min_iou = min(result.min_iou, float(ious[i, j]))
        result.max_score_diff = max(result.max_score_diff, float((ref_scores[i] - scores[j]).abs()))
        result.max_box_diff = max(result.max_box_diff, float((ref_boxes[i] - boxes[j]).abs().max()))
    unmatched_out = torch.where(~taken)[0].tolist()
    swaps = compatible & (ious > iou_threshold)
    for name, indices, mine, theirs, swapped in (
        ("reference", unmatched_ref, ref, out, swaps.any(dim=1)),
        ("other", unmatched_out, out, ref, swaps.any(dim=0)),
    ):
        all_scores = mine[1]
        floor = float(all_scores.min()) if len(all_scores) == capacity else None
        for i in indices:
            score = float(all_scores[i])
            near_threshold = score - score_threshold <= atol
            near_capacity = floor is not None and score - floor <= atol
            if near_threshold or near_capacity or bool(swapped[i]):
                result.excused += 1
                if not result.excuse_example:
                    result.excuse_example = f"image {image}: {name} detection {_describe(mine, i)}; {_closest(mine, i, theirs, result.tolerances)}"
            else:
                result.problems.append(f"image {image}: {name} detection {_describe(mine, i)} has no match; {_closest(mine, i, theirs, tolerances)}")


def _describe(detections: tuple[Tensor, Tensor, Tensor], i: int) -> str:
    boxes, scores, labels = detections
    box = ", ".join(f"{float(v):.4f}" for v in boxes[i])
    return f"label {int(labels[i])} score {float(scores[i]):.6f} box [{box}]"


def _closest(mine: tuple[Tensor, Tensor, Tensor], i: int, theirs: tuple[Tensor, Tensor, Tensor], tolerances: Tolerances) -> str:
    """What the other run has nearest to detection ``i`` of ``mine``, and what differs."""
    boxes, scores, labels = theirs
    if not len(scores):
        return "the other run has no detections in this image"
    ious = box_iou(mine[0][i : i + 1], boxes)[0]
    j = int(ious.argmax())
    if float(ious[j]) <= 0:
        return "no detection of the other run overlaps it"
    differences = []
    if int(labels[j]) != int(mine[2][i]):
        differences.append(f"label {int(labels[j])} instead of {int(mine[2][i])}")
    iou, score_diff = float(ious[j]), abs(float(scores[j]) - float(mine[1][i]))
    box_diff = float((boxes[j] - mine[0][i]).abs().max())
    if iou < tolerances.min_iou and box_diff > tolerances.box_atol:
        differences.append(f"IoU {iou:.6f} < {tolerances.min_iou} (coordinates differ by up to {box_diff:.2e} > {tolerances.box_atol:.1e})")
    if score_diff > tolerances.score_atol:
        differences.append(f"score differs by {score_diff:.2e} > {tolerances.score_atol:.1e}")
    return f"closest in the other run: {_describe(theirs, j)}" + (f" ({'; '.join(differences)})" if differences else " (already matched to another detection)")

"""Class-aware NMS in plain tensor code, for TorchScript files that must load without torchvision.

``torchvision.ops.nms`` is a custom operator (``torchvision::nms``): a TorchScript file that
calls it only loads in a C++ program that has also loaded torchvision's operator library. The
exported TorchScript files of ssd-deploy are self-contained instead, so inside them NMS is this
function, which returns exactly what ``torchvision.ops.batched_nms`` returns (the tests compare
them on random boxes, ties, identical boxes and empty inputs). Eager code, AOTInductor and ONNX
use the operators of :mod:`ssd_deploy.postprocess.grouped_nms` instead.

How it stays exact without a Python loop over boxes: greedy NMS keeps box j (in decreasing score
order) iff no *kept* box i < j of its group overlaps it by more than the threshold. That rule has
exactly one solution, found by iterating ``keep = candidate & ~any_i(keep[i] & overlaps[i, j])``
from "everything kept" until nothing changes: after t rounds the first t boxes are final, and
in practice a few rounds suffice because suppression chains are short. Boxes are processed in
blocks so memory stays at ``block x (kept + block)`` instead of ``M x M``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _overlaps(rows: Tensor, row_areas: Tensor, cols: Tensor, col_areas: Tensor, iou_threshold: float) -> Tensor:
    """Bool[R, C]: IoU(rows[r], cols[c]) > threshold, with torchvision's CPU kernel's arithmetic
    (``inter / (area_i + area_j - inter)``) so values agree bit for bit."""
    xx1 = torch.maximum(rows[:, None, 0], cols[None, :, 0])
    yy1 = torch.maximum(rows[:, None, 1], cols[None, :, 1])
    xx2 = torch.minimum(rows[:, None, 2], cols[None, :, 2])
    yy2 = torch.minimum(rows[:, None, 3], cols[None, :, 3])
    inter = (xx2 - xx1).clamp(min=0.0) * (yy2 - yy1).clamp(min=0.0)
    return inter / (row_areas[:, None] + col_areas[None, :] - inter) > iou_threshold


def batched_nms_tensor(
    boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float, block_size: int = 128
) -> Tensor:
    """Greedy NMS within each group; drop-in for ``torchvision.ops.batched_nms``.

    Args:
        boxes: Tensor[M, 4] xyxy. scores: Tensor[M]. groups: Tensor[M] int64, boxes of different
            groups never suppress each other. iou_threshold: suppress when IoU > threshold.
        block_size: rows of the overlap matrix computed at a time (memory and speed, not results;
            128 was the fastest of 64, 128 and 512 for thousands of boxes in tens of groups).

    Returns:
        Tensor[M'] int64 indices of kept boxes, by decreasing score (ties in input order).
    """
    # Group-major, by decreasing score within a group (ties in input order): a block then only
    # meets kept boxes of its own groups, which sit just before it, so the work grows with the
    # boxes of a group rather than with all boxes (a batch of images x classes).
    by_score = torch.sort(scores, descending=True, stable=True)[1]
    order = by_score[torch.sort(groups[by_score], stable=True)[1]]
    boxes = boxes[order]
    groups = groups[order]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    num = boxes.shape[0]
    keep = torch.zeros(num, dtype=torch.bool, device=boxes.device)
    for start in range(0, num, block_size):
        end = min(start + block_size, num)
        block, block_areas, block_groups = boxes[start:end], areas[start:end], groups[start:end]
        # Suppressed by a box of the same group kept in an earlier block?
        kept = keep[:start].nonzero().squeeze(1)
        kept = kept[groups[kept] >= block_groups[0]]
        by_earlier = _overlaps(boxes[kept], areas[kept], block, block_areas, iou_threshold)
        by_earlier = by_earlier & (groups[kept][:, None] == block_groups[None, :])
        candidate = ~by_earlier.any(dim=0)
        # Within the block: only earlier boxes (i < j) of the same group can suppress j.
        size = end - start
        earlier = torch.ones(size, size, dtype=torch.bool, device=boxes.device).triu(diagonal=1)
        suppresses = _overlaps(block, block_areas, block, block_areas, iou_threshold)
        suppresses = suppresses & earlier & (block_groups[:, None] == block_groups[None, :])
        block_keep = candidate
        while True:
            updated = candidate & ~(suppresses & block_keep[:, None]).any(dim=0)
            if bool(torch.equal(updated, block_keep)):
                break
            block_keep = updated
        keep[start:end] = block_keep
    # Back to torchvision's order: decreasing score, ties in input order.
    kept_boxes = torch.sort(order[keep])[0]
    return kept_boxes[torch.sort(scores[kept_boxes], descending=True, stable=True)[1]]

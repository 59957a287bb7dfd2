"""Exact grouped NMS in batched tensor code: the CPU kernel of ``ssd_deploy::grouped_nms`` in eager PyTorch.

``torchvision.ops.batched_nms`` is not a good fit for SSD's candidate lists on CPU: above 1000
boxes it loops over classes in Python (one ``nms`` call, and several small operations, per class:
about 90 per image for COCO), and below that it shifts the boxes of each class apart, which rounds
float32 coordinates and can flip a decision whose IoU is within rounding of the threshold.

Here every (image, class) group is handled at once, with the group's candidates padded into a
few bucket sizes (a group of ``c`` candidates goes to the smallest bucket ``b >= c``):

- overlap matrices ``[groups, b, b]`` with the arithmetic of torchvision's CPU kernel
  (``inter / (area_i + area_j - inter)`` in the boxes' dtype, compared like its ``ovr > threshold``
  with a double threshold), so every IoU decision is bit for bit torchvision's;
- greedy NMS from those matrices by fixed-point iteration: box j (by decreasing score, ties in
  input order, as torchvision's stable sort) is kept iff no kept box i < j suppresses it. That
  rule has one solution, reached from "everything kept" in at most ``b`` rounds (after round t
  the first t boxes are final); suppression chains are short, and groups still unresolved after
  :data:`MAX_ROUNDS` are finished by ``torchvision.ops.nms`` one group at a time.

Groups of one candidate keep it without any work.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import nms

# Bucket sizes for the candidates of a group, then k itself. Padding wastes at most a factor
# (4 here) of a bucket's side on small groups, where matrices are cheap, and few buckets mean few
# batched operations.
BUCKETS = (4, 16, 64)
MAX_ROUNDS = 24


def _suppresses(iou: Tensor, iou_threshold: float) -> Tensor:
    """``iou > iou_threshold`` decided as torchvision's kernel decides it: the IoU in its dtype,
    the threshold a double. In float32 that is ``iou >= t`` for the smallest float32 ``t`` above
    the threshold (comparing with the threshold cast to float32 would differ when it rounds up)."""
    if iou.dtype == torch.float64:
        return iou > iou_threshold
    bound = torch.tensor(iou_threshold, dtype=iou.dtype)
    if float(bound) <= iou_threshold:
        bound = torch.nextafter(bound, torch.tensor(float("inf"), dtype=iou.dtype))
    return iou >= bound.to(iou.device)


def _greedy(boxes: Tensor, valid: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS in each row: boxes [M, b, 4] xyxy by decreasing score, valid Bool[M, b] (a
    prefix of each row) -> Bool[M, b] kept."""
    x1, y1, x2, y2 = boxes.unbind(2)
    areas = (x2 - x1) * (y2 - y1)
    inter = torch.minimum(x2[:, :, None], x2[:, None, :]).sub_(torch.maximum(x1[:, :, None], x1[:, None, :])).clamp_(min=0)
    height = torch.minimum(y2[:, :, None], y2[:, None, :]).sub_(torch.maximum(y1[:, :, None], y1[:, None, :])).clamp_(min=0)
    inter.mul_(height)
    iou = inter / (areas[:, :, None] + areas[:, None, :]).sub_(inter)
    size = boxes.shape[1]
    earlier = torch.ones(size, size, dtype=torch.bool, device=boxes.device).triu(diagonal=1)
    # As numbers, so that "suppressed by a kept box" is one batched matrix product per round.
    suppresses = (_suppresses(iou, iou_threshold) & earlier & valid[:, :, None]).to(boxes.dtype)
    keep = valid
    for _ in range(MAX_ROUNDS):
        updated = valid & (torch.bmm(keep.unsqueeze(1).to(boxes.dtype), suppresses).squeeze(1) == 0)
        if torch.equal(updated, keep):
            return keep
        keep = updated
    return _nms_each_row(boxes, valid, iou_threshold)


def _nms_each_row(boxes: Tensor, valid: Tensor, iou_threshold: float) -> Tensor:
    """``torchvision.ops.nms`` on each row alone: boxes [M, b, 4] by decreasing score, valid
    Bool[M, b] (a prefix of each row) -> Bool[M, b] kept."""
    keep = torch.zeros_like(valid)
    for row, count in enumerate(valid.sum(dim=1).tolist()):
        rank = torch.arange(count, 0, -1, dtype=boxes.dtype, device=boxes.device)  # the row's order as scores
        keep[row, nms(boxes[row, :count], rank, iou_threshold)] = True
    return keep


def padded_grouped_nms(boxes: Tensor, scores: Tensor, iou_threshold: float, score_threshold: float) -> Tensor:
    """Greedy NMS within each group, exactly as ``torchvision.ops.nms`` on each group alone.

    Args:
        boxes: Tensor[N, G, k, 4] xyxy. scores: Tensor[N, G, k]; only candidates scoring strictly
            above ``score_threshold`` take part. Within a group, equal scores are taken in slot
            order (torchvision's stable sort).

    Returns:
        Bool[N, G, k]: kept candidates.
    """
    k = scores.shape[-1]
    flat_scores = scores.reshape(-1, k)
    flat_boxes = boxes.reshape(-1, k, 4)
    order = None
    # Selection's candidate lists come sorted (decreasing score, empty slots last): no sort then.
    if k > 1 and not bool((flat_scores[:, :-1] >= flat_scores[:, 1:]).all()):
        flat_scores, order = torch.sort(flat_scores, dim=1, descending=True, stable=True)
        flat_boxes = flat_boxes.gather(1, order.unsqueeze(2).expand(-1, -1, 4))
    counts = (flat_scores > score_threshold).sum(dim=1)
    # Sorted, so a group's candidates are its first `count` slots; all kept unless suppressed.
    keep = torch.arange(k, device=scores.device) < counts[:, None]
    smaller = 1
    for size in [b for b in BUCKETS if b < k] + [k]:
        members = ((counts > smaller) & (counts <= size)).nonzero().squeeze(1)
        if members.numel() > 0:
            resolve = _greedy if size <= BUCKETS[-1] else _nms_each_row
            keep[members, :size] = resolve(flat_boxes[members, :size], keep[members, :size], iou_threshold)
        smaller = size
    if order is not None:
        keep = torch.zeros_like(keep).scatter(1, order, keep)
    return keep.reshape(scores.shape)

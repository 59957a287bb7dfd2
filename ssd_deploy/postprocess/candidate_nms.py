"""Class-aware NMS over one compact candidate list per image, for ONNX graphs.

With the bounded pre-selection (:mod:`.select`), an image has at most ``pre_nms_topk`` candidates
(2000 by default) over all classes. Spreading them into one ``[G, k]`` slot list per class, as
:func:`~ssd_deploy.postprocess.grouped_nms.grouped_nms` takes them, gathers, masks and ranks
``G * k`` slots (36,000 for 91 classes) whatever the candidates; in an ONNX runtime that costs
more than the NMS itself when few candidates pass the threshold. ONNX's ``NonMaxSuppression``
needs no slots: its boxes ``[N, M, 4]`` are shared by its classes, and its scores ``[N, G, M]``
say which class each box belongs to. So the candidates stay one list of ``M`` per image, each
with its label, and the operator ``ssd_deploy::candidate_nms`` is translated to one
``NonMaxSuppression`` whose class ``g`` scores only the candidates labelled ``g`` (the others
score -1, below every threshold).

The kept candidates are exactly those of :func:`grouped_nms` on the same candidates: greedy NMS
within each (image, class), among candidates scoring strictly above the threshold.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .padded_nms import padded_grouped_nms

OP_NAME = "ssd_deploy::candidate_nms"


@torch.library.custom_op(OP_NAME, mutates_args=())
def candidate_nms(boxes: Tensor, scores: Tensor, labels: Tensor, groups: int, iou_threshold: float, score_threshold: float) -> Tensor:
    """Greedy NMS within each (image, label) among one candidate list per image.

    Args:
        boxes: Tensor[N, M, 4] xyxy. scores: Tensor[N, M]; only candidates scoring strictly above
            ``score_threshold`` take part. labels: Tensor[N, M] int64 in ``[0, groups)``.
        iou_threshold: a candidate is suppressed when its IoU with a kept, better-scoring
            candidate of its label is above this.

    Returns:
        Bool[N, M]: kept candidates.
    """
    # Eager runs (tests, the exporter's reference run) reuse the exact grouped kernel: one group
    # per label, the other labels' candidates scored out.
    member = labels.unsqueeze(1) == torch.arange(groups, device=labels.device).reshape(1, groups, 1)
    grouped_scores = torch.where(member, scores.unsqueeze(1), torch.full_like(scores.unsqueeze(1), -1.0))
    grouped_boxes = boxes.unsqueeze(1).expand(-1, groups, -1, -1)
    return padded_grouped_nms(grouped_boxes, grouped_scores, iou_threshold, score_threshold).any(dim=1)


@candidate_nms.register_fake
def _candidate_nms_fake(boxes: Tensor, scores: Tensor, labels: Tensor, groups: int, iou_threshold: float, score_threshold: float) -> Tensor:
    return torch.empty(scores.shape, dtype=torch.bool, device=scores.device)


def onnx_translation(boxes, scores, labels, groups: int, iou_threshold: float, score_threshold: float):
    """ONNX Script for :func:`candidate_nms`: one ``NonMaxSuppression`` over boxes ``[N, M, 4]``
    and per-class scores ``[N, G, M]`` (-1 where a candidate has another label), its selected
    (image, box) pairs scattered back into a mask.

    The non-members score -1, not 0: OpenVINO's NMS keeps scores equal to its threshold (``>=``)
    and a threshold may be 0. The mask is also ANDed with ``score > threshold``, as in
    :func:`~ssd_deploy.postprocess.grouped_nms.onnx_translation`.
    """
    import onnx
    from onnxscript import opset18 as op

    # Each candidate's score written into its class's row by one scatter: cheaper in ONNX Runtime
    # than comparing every candidate with every class.
    count = op.Shape(scores, start=1, end=2)  # [M]
    slot = op.Add(op.Mul(labels, count), op.Range(op.Constant(value_int=0), op.Squeeze(count), op.Constant(value_int=1)))
    blank = op.ConstantOfShape(op.Mul(op.Shape(scores), op.Constant(value_ints=[1, groups])), value=onnx.helper.make_tensor("blank", onnx.TensorProto.FLOAT, [1], [-1.0]))
    class_scores = op.Reshape(op.ScatterElements(blank, slot, scores, axis=1), op.Concat(op.Constant(value_ints=[0, groups]), count, axis=0))  # [N, G, M]
    selected = op.NonMaxSuppression(
        boxes,
        class_scores,
        op.Squeeze(op.Shape(scores, start=1, end=2), op.Constant(value_ints=[0])),
        op.Constant(value_float=iou_threshold),
        op.Constant(value_float=score_threshold),
    )  # [S, 3]: image, class, candidate
    pairs = op.Gather(selected, op.Constant(value_ints=[0, 2]), axis=1)  # [S, 2]
    hits = op.ScatterND(
        op.Expand(op.Constant(value_float=0.0), op.Shape(scores)),
        pairs,
        op.Expand(op.Constant(value_float=1.0), op.Shape(selected, start=0, end=1)),
    )
    kept = op.Greater(hits, op.Constant(value_float=0.5))
    return op.And(kept, op.Greater(scores, op.Constant(value_float=score_threshold)))

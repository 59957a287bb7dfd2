"""Class-aware NMS over per-class candidate lists, as one operator every exporter can translate.

SSD's selection keeps, per image and foreground class, the best ``k`` priors, and runs greedy NMS
within each (image, class) group. That is exactly ONNX's ``NonMaxSuppression`` with its
``[batches, classes, boxes]`` layout: runtimes (ONNX Runtime, OpenVINO, TensorRT's NMS layer)
loop over groups in native code, so the cost grows with the candidates of one group, not with
the square of all candidates of a batch, as one ``torchvision.ops.nms`` over offset boxes does.

``torch.export`` cannot express a loop over groups, so the selection is the custom operator
``ssd_deploy::grouped_nms`` (a torch.library op; candidate boxes and scores in, a keep mask out, static shapes):

- eager PyTorch runs it on CPU with :func:`ssd_deploy.postprocess.padded_nms.padded_grouped_nms`
  (every group at once, bit for bit ``torchvision.ops.nms`` on each group), on other devices with
  ``torchvision.ops.batched_nms``, one image at a time;
- the ONNX exporter translates it to one ``NonMaxSuppression`` over ``N * G`` batches of one class
  (:func:`onnx_translation`), so ONNX files stay standard operators only;
- TorchScript files use :func:`ssd_deploy.postprocess.tensor_nms.batched_nms_tensor` instead (they
  must load in LibTorch without our or torchvision's operator library), see :mod:`.nms`;
- AOTInductor packages use ``torchvision::nms`` (:func:`offset_nms_mask`), which C++ programs can
  load from torchvision's library.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import batched_nms, nms

from .padded_nms import padded_grouped_nms

OP_NAME = "ssd_deploy::grouped_nms"


@torch.library.custom_op(OP_NAME, mutates_args=())
def grouped_nms(boxes: Tensor, scores: Tensor, iou_threshold: float, score_threshold: float) -> Tensor:
    """Greedy NMS within each group of candidates.

    Args:
        boxes: Tensor[N, G, k, 4] xyxy (group g of image n holds k candidate boxes).
        scores: Tensor[N, G, k]. Only candidates scoring strictly above ``score_threshold`` take
            part. iou_threshold: a candidate is suppressed when its IoU with a kept, better-scoring
            candidate of its group is above this.

    Returns:
        Bool[N, G, k]: kept candidates.
    """
    if scores.device.type == "cpu":
        return padded_grouped_nms(boxes, scores, iou_threshold, score_threshold)
    keep = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    for image in range(scores.shape[0]):
        group, index = (scores[image] > score_threshold).nonzero(as_tuple=True)
        kept = batched_nms(boxes[image, group, index], scores[image, group, index], group, iou_threshold)
        keep[image, group[kept], index[kept]] = True
    return keep


@grouped_nms.register_fake
def _grouped_nms_fake(boxes: Tensor, scores: Tensor, iou_threshold: float, score_threshold: float) -> Tensor:
    return torch.empty(scores.shape, dtype=torch.bool, device=scores.device)


def offset_nms_mask(boxes: Tensor, scores: Tensor, iou_threshold: float, score_threshold: float) -> Tensor:
    """:func:`grouped_nms` as one ``torchvision.ops.nms``, for graphs that may use only
    torchvision's operator (AOTInductor packages loaded from C++).

    Boxes (in [0, 1]) are shifted by ``2 * group`` along x and ``2 * image`` along y so groups never
    overlap: torchvision's ``batched_nms`` coordinate trick without its Python branch, which
    ``torch.export`` cannot capture, and with two axes so coordinates stay below 2 * max(G, N)
    (float32 then resolves 1.5e-5 of the image side for 91 classes). Its cost is quadratic in the
    candidates of the whole batch.
    """
    image, group, index = (scores > score_threshold).nonzero(as_tuple=True)
    shift_x = group.to(boxes.dtype) * 2.0
    shift_y = image.to(boxes.dtype) * 2.0
    shifted = boxes[image, group, index] + torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
    kept = nms(shifted, scores[image, group, index], iou_threshold)
    keep = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    keep[image[kept], group[kept], index[kept]] = True
    return keep


def onnx_translation(boxes, scores, iou_threshold: float, score_threshold: float):
    """ONNX Script for :func:`grouped_nms`: one ``NonMaxSuppression`` whose batches are the
    ``N * G`` groups (one class each), its selected indices scattered back into a mask.

    ``NonMaxSuppression``'s own score threshold prunes the work; runtimes differ on whether it is
    ``>`` (ONNX Runtime) or ``>=`` (OpenVINO), so the mask is also ANDed with ``score > threshold``.
    A candidate at the threshold cannot change the result: it scores below every real candidate,
    so it never suppresses one.
    """
    from onnxscript import opset18 as op

    shape = op.Shape(scores)  # [N, G, k]
    k = op.Shape(scores, start=2)  # [1]
    flat_boxes = op.Reshape(boxes, op.Concat(op.Constant(value_ints=[-1]), k, op.Constant(value_ints=[4]), axis=0))
    flat_scores = op.Reshape(scores, op.Concat(op.Constant(value_ints=[-1]), k, axis=0))  # [N * G, k]
    selected = op.NonMaxSuppression(
        flat_boxes,
        op.Unsqueeze(flat_scores, op.Constant(value_ints=[1])),
        op.Squeeze(k, op.Constant(value_ints=[0])),
        op.Constant(value_float=iou_threshold),
        op.Constant(value_float=score_threshold),
    )  # [M, 3]: batch (= group), class (always 0), index
    pairs = op.Gather(selected, op.Constant(value_ints=[0, 2]), axis=1)  # [M, 2]
    hits = op.ScatterND(
        op.Expand(op.Constant(value_float=0.0), op.Shape(flat_scores)),
        pairs,
        op.Expand(op.Constant(value_float=1.0), op.Shape(selected, start=0, end=1)),
    )
    kept = op.Greater(op.Reshape(hits, shape), op.Constant(value_float=0.5))
    return op.And(kept, op.Greater(scores, op.Constant(value_float=score_threshold)))

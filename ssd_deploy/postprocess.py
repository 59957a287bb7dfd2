"""From network outputs to a fixed-size, zero-padded set of detections per image.

The output layout is TensorRT's EfficientNMS layout, used by every runtime and exported file:
``num_detections [N] int32, boxes [N, K, 4] float32 xyxy in [0, 1], scores [N, K] float32,
labels [N, K] int32``; rows past ``num_detections`` are zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor
from torchvision.ops import batched_nms, nms

from .box_coder import SSD_VARIANCES, Variances, decode
from .tensor_nms import batched_nms_tensor


@dataclass(frozen=True)
class PostprocessConfig:
    """Thresholds of post-processing. Defaults are the SSD paper's evaluation settings.

    Attributes:
        score_threshold: candidates must score strictly above this (per class).
        iou_threshold: class-aware NMS IoU threshold.
        max_detections: K, detections kept per image.
        topk_candidates: per class and image, only the best this many candidates enter NMS
            (torchvision's ``topk_candidates``; bounds NMS time on untrained models).
    """

    score_threshold: float = 0.01
    iou_threshold: float = 0.45
    max_detections: int = 200
    topk_candidates: int = 400


class PaddedDetections(NamedTuple):
    """Detections of a batch in the fixed-size layout described in the module docstring."""

    num_detections: Tensor  # [N] int32
    boxes: Tensor  # [N, K, 4] float32 xyxy, fractions of the image
    scores: Tensor  # [N, K] float32
    labels: Tensor  # [N, K] int32, 1 ... C-1


def decode_predictions(
    loc: Tensor, logits: Tensor, priors: Tensor, variances: Variances = SSD_VARIANCES, sigmoid: bool = False
) -> tuple[Tensor, Tensor]:
    """Decode the raw head outputs.

    Args:
        loc: Tensor[N, P, 4] offsets. logits: Tensor[N, P, C]. priors: Tensor[P, 4] cxcywh.
        sigmoid: per-class sigmoid scores (models trained with the focal loss) instead of a
            softmax over all classes.

    Returns:
        boxes: Tensor[N, P, 4] xyxy clipped to [0, 1]; scores: Tensor[N, P, C] probabilities;
        column 0 is background (zero with ``sigmoid``: such models have no background score).
    """
    boxes = decode(loc, priors, variances).clamp(min=0.0, max=1.0)
    if sigmoid:
        foreground = torch.sigmoid(logits[:, :, 1:])
        return boxes, torch.cat((torch.zeros_like(logits[:, :, :1]), foreground), dim=-1)
    return boxes, torch.softmax(logits, dim=-1)


def select_detections(boxes: Tensor, scores: Tensor, config: PostprocessConfig) -> PaddedDetections:
    """Score threshold, per-class top-k, class-aware NMS and the best K per image, batched.

    Args:
        boxes: Tensor[N, P, 4] decoded xyxy boxes. scores: Tensor[N, P, C] probabilities.

    Returns:
        :class:`PaddedDetections`, sorted by decreasing score within each image.
    """
    return select_padded(
        boxes, scores, config.score_threshold, config.iou_threshold, config.max_detections, config.topk_candidates
    )


def select_padded(
    boxes: Tensor,
    scores: Tensor,
    score_threshold: float,
    iou_threshold: float,
    max_detections: int,
    topk_candidates: int,
) -> PaddedDetections:
    """:func:`select_detections` with the thresholds as plain arguments, so TorchScript can compile
    it (it does not take dataclasses)."""
    num_images, num_priors, num_classes = scores.size(0), scores.size(1), scores.size(2)
    k = min(topk_candidates, num_priors)
    # Per image and foreground class, the k best priors: [N, C-1, k].
    top_scores, top_prior = scores[:, :, 1:].transpose(1, 2).topk(k, dim=2)
    labels = torch.arange(1, num_classes, device=scores.device).view(1, -1, 1).expand_as(top_prior)
    images = torch.arange(num_images, device=scores.device).view(-1, 1, 1).expand_as(top_prior)

    candidate = (top_scores > score_threshold).nonzero()  # [M, 3]: image, class - 1, rank
    image_at, class_at, rank_at = candidate[:, 0], candidate[:, 1], candidate[:, 2]
    cand_images, cand_labels = images[image_at, class_at, rank_at], labels[image_at, class_at, rank_at]
    cand_scores = top_scores[image_at, class_at, rank_at]
    cand_boxes = boxes[cand_images, top_prior[image_at, class_at, rank_at]]
    keep = _grouped_nms(cand_boxes, cand_scores, cand_images, cand_labels, num_classes, iou_threshold)

    # ``keep`` is sorted by score; a detection's rank in its image = earlier kept ones of that
    # image (a running count per image, [M, N]; no sort, which the ONNX exporter cannot translate).
    kept_images = cand_images[keep]
    same_image = kept_images[:, None] == torch.arange(num_images, device=keep.device)[None, :]
    counts = same_image.sum(dim=0)
    rank = same_image.cumsum(dim=0).gather(1, kept_images[:, None]).squeeze(1) - 1
    within = rank < max_detections
    keep, kept_images, rank = keep[within], kept_images[within], rank[within]
    out_boxes = boxes.new_zeros(num_images, max_detections, 4)
    out_scores = scores.new_zeros(num_images, max_detections)
    out_labels = torch.zeros(num_images, max_detections, dtype=torch.int32, device=scores.device)
    out_boxes[kept_images, rank] = cand_boxes[keep]
    out_scores[kept_images, rank] = cand_scores[keep]
    out_labels[kept_images, rank] = cand_labels[keep].to(torch.int32)
    num_detections = counts.clamp(max=max_detections).to(torch.int32)
    return PaddedDetections(num_detections, out_boxes, out_scores, out_labels)


# Above this many candidates eager code runs NMS group by group: one NMS over all groups compares
# every pair (O(M^2)). torchvision's batched_nms makes the same switch (4000 coordinates on CPU).
MAX_CANDIDATES_SINGLE_NMS = 1000


def _is_exporting() -> bool:
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def _grouped_nms(boxes: Tensor, scores: Tensor, images: Tensor, labels: Tensor, num_classes: int, iou_threshold: float) -> Tensor:
    """NMS within each (image, class) group.

    Returns:
        Tensor[M] int64 indices of kept boxes, by decreasing score.
    """
    if torch.jit.is_scripting():
        # TorchScript files must load without torchvision's operator library (C++ programs),
        # so they get the plain-tensor NMS, which returns the same boxes. TorchScript resolves
        # ``is_scripting`` at compile time and never compiles the ``else`` branch.
        return batched_nms_tensor(boxes, scores, images * num_classes + labels, iou_threshold)
    else:
        return _torchvision_grouped_nms(boxes, scores, images, labels, num_classes, iou_threshold)


def _torchvision_grouped_nms(
    boxes: Tensor, scores: Tensor, images: Tensor, labels: Tensor, num_classes: int, iou_threshold: float
) -> Tensor:
    """Grouped NMS through torchvision's operator (eager code, ``torch.export``, ONNX).

    In graphs being traced or exported, and for small inputs, this is one ``torchvision.ops.nms``
    call: boxes (in [0, 1]) are shifted by ``2 * label`` along x and ``2 * image`` along y, so
    boxes of different groups never overlap. That is torchvision's ``batched_nms`` coordinate
    trick without its Python branch, which ``torch.export`` cannot capture, and with two axes so
    coordinates stay below 2 * max(C, N) rather than 2 * N * C (float32 then resolves 1.5e-5 of
    the image side for 91 classes). ONNX exports it as a standard ``NonMaxSuppression``. Eager
    code with many candidates uses ``batched_nms``'s per-group loop instead, which is exact and
    avoids the quadratic cost.
    """
    if not _is_exporting() and boxes.shape[0] > MAX_CANDIDATES_SINGLE_NMS:
        return batched_nms(boxes, scores, images * num_classes + labels, iou_threshold)
    shift_x = labels.to(boxes.dtype) * 2.0
    shift_y = images.to(boxes.dtype) * 2.0
    shifted = boxes + torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
    return nms(shifted, scores, iou_threshold)


def postprocess(
    loc: Tensor, logits: Tensor, priors: Tensor, config: PostprocessConfig = PostprocessConfig(), sigmoid: bool = False
) -> PaddedDetections:
    """Decode, softmax and select: raw head outputs to padded detections (see module docstring)."""
    boxes, scores = decode_predictions(loc, logits, priors, sigmoid=sigmoid)
    return select_detections(boxes, scores, config)

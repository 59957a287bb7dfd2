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
from .box_coder import SSD_VARIANCES, Variances, decode
from .grouped_nms import grouped_nms, offset_nms_mask
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
    torchvision_nms: bool = False,
) -> PaddedDetections:
    """:func:`select_detections` with the thresholds as plain arguments, so TorchScript can compile
    it (it does not take dataclasses).

    ``torchvision_nms`` makes exported graphs call ``torchvision::nms`` rather than
    ``ssd_deploy::grouped_nms`` (for AOTInductor packages; see :mod:`ssd_deploy.grouped_nms`).
    Every shape below is static but the batch, so exporters need no data-dependent sizes.
    """
    num_images, num_priors, num_classes = scores.size(0), scores.size(1), scores.size(2)
    groups = num_classes - 1
    k = min(topk_candidates, num_priors)
    # Per image and foreground class, the k best priors and their boxes: [N, G, k], [N, G, k, 4].
    top_scores, top_prior = scores[:, :, 1:].transpose(1, 2).topk(k, dim=2)
    flat_prior = top_prior.reshape(num_images, groups * k, 1).expand(-1, -1, 4)
    top_boxes = boxes.gather(1, flat_prior).reshape(num_images, groups, k, 4)
    keep = _grouped_nms_mask(top_boxes, top_scores, iou_threshold, score_threshold, torchvision_nms)

    # The best max_detections kept candidates of each image, by decreasing score: a fixed-size
    # top-k over all candidates with the dropped ones scored -1 (probabilities are >= 0).
    keep = keep.reshape(num_images, groups * k)
    ranked = torch.where(keep, top_scores.reshape(num_images, groups * k), torch.full_like(keep, -1.0, dtype=scores.dtype))
    best_scores, best = ranked.topk(min(max_detections, groups * k), dim=1)
    valid = keep.gather(1, best)
    out_scores = torch.where(valid, best_scores, torch.zeros_like(best_scores))
    best_boxes = top_boxes.reshape(num_images, groups * k, 4).gather(1, best.unsqueeze(2).expand(-1, -1, 4))
    out_boxes = torch.where(valid.unsqueeze(2), best_boxes, torch.zeros_like(best_boxes))
    labels = torch.div(best, k, rounding_mode="floor") + 1
    out_labels = torch.where(valid, labels, torch.zeros_like(labels)).to(torch.int32)
    num_detections = valid.sum(dim=1).to(torch.int32)
    missing = max_detections - best.size(1)
    if missing > 0:  # fewer candidates in all than K: pad (static shapes, so exporters fold it)
        out_boxes = torch.nn.functional.pad(out_boxes, [0, 0, 0, missing])
        out_scores = torch.nn.functional.pad(out_scores, [0, missing])
        out_labels = torch.nn.functional.pad(out_labels, [0, missing])
    return PaddedDetections(num_detections, out_boxes, out_scores, out_labels)


def _grouped_nms_mask(
    boxes: Tensor, scores: Tensor, iou_threshold: float, score_threshold: float, torchvision_nms: bool
) -> Tensor:
    """Bool[N, G, k]: candidates kept by NMS within each (image, class) group (boxes [N, G, k, 4])."""
    if torch.jit.is_scripting():
        # TorchScript files must load without torchvision's (or our) operator library (C++
        # programs), so they get the plain-tensor NMS, which returns the same boxes. TorchScript
        # resolves ``is_scripting`` at compile time and never compiles the ``else`` branch.
        candidates = (scores > score_threshold).nonzero()
        image, group, index = candidates[:, 0], candidates[:, 1], candidates[:, 2]
        kept = batched_nms_tensor(boxes[image, group, index], scores[image, group, index], image * scores.size(1) + group, iou_threshold)
        keep = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
        keep[image[kept], group[kept], index[kept]] = True
        return keep
    else:
        if torchvision_nms:
            return offset_nms_mask(boxes, scores, iou_threshold, score_threshold)
        return grouped_nms(boxes, scores, iou_threshold, score_threshold)


def postprocess(
    loc: Tensor, logits: Tensor, priors: Tensor, config: PostprocessConfig = PostprocessConfig(), sigmoid: bool = False
) -> PaddedDetections:
    """Decode, softmax and select: raw head outputs to padded detections (see module docstring)."""
    boxes, scores = decode_predictions(loc, logits, priors, sigmoid=sigmoid)
    return select_detections(boxes, scores, config)

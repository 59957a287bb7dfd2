"""Matching of ground-truth boxes to priors (SSD paper section 2.2, "Matching strategy")."""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_convert, box_iou

BACKGROUND = 0


def match_priors(
    gt_boxes: list[Tensor], gt_labels: list[Tensor], priors: Tensor, iou_threshold: float = 0.5
) -> tuple[Tensor, Tensor]:
    """Assign every prior a ground-truth box or the background, for a whole batch at once.

    Each prior takes the ground truth it overlaps most if that IoU is at least ``iou_threshold``;
    then every ground truth is forced onto its best prior, so no object goes unmatched.

    Args:
        gt_boxes: per image, Tensor[G_i, 4] xyxy in fractions of the image (G_i may be 0).
        gt_labels: per image, Tensor[G_i] int64 class indices, 1 ... C-1 (0 is background).
        priors: Tensor[P, 4] (cx, cy, w, h) fractions.
        iou_threshold: minimum IoU for a positive match.

    Returns:
        matched_boxes: Tensor[N, P, 4] xyxy; the matched ground truth of each prior (a dummy,
            finite box for background priors).
        matched_labels: Tensor[N, P] int64; the class of each prior, 0 for background.
    """
    num_images, num_priors = len(gt_boxes), priors.shape[0]
    device = priors.device
    counts = torch.tensor([b.shape[0] for b in gt_boxes], device=device)
    max_gt = int(counts.max()) if num_images else 0
    matched_labels = torch.zeros(num_images, num_priors, dtype=torch.int64, device=device)
    # Background priors get the prior itself as a finite placeholder so encode() stays finite.
    priors_xyxy = box_convert(priors, "cxcywh", "xyxy")
    matched_boxes = priors_xyxy.expand(num_images, num_priors, 4).clone()
    if max_gt == 0:
        return matched_boxes, matched_labels

    # Pad the ground truth to [N, G, ...]; one box_iou call over all boxes of the batch.
    image_of_gt = torch.repeat_interleave(torch.arange(num_images, device=device), counts)
    first_of_image = torch.cumsum(counts, dim=0) - counts
    slot_of_gt = torch.arange(int(counts.sum()), device=device) - first_of_image[image_of_gt]
    all_boxes = torch.cat(gt_boxes).to(priors)
    iou = torch.full((num_images, max_gt, num_priors), -1.0, dtype=priors.dtype, device=device)
    iou[image_of_gt, slot_of_gt] = box_iou(all_boxes, priors_xyxy)  # [sum G, P]

    best_iou, best_gt = iou.max(dim=1)  # per prior: [N, P]
    best_prior = iou.argmax(dim=2)  # per ground truth: [N, G]
    # Force each real ground truth onto its best prior (torchvision's SSDMatcher does the same;
    # when two objects share a best prior, the later one wins, as in torchvision).
    best_gt[image_of_gt, best_prior[image_of_gt, slot_of_gt]] = slot_of_gt
    best_iou[image_of_gt, best_prior[image_of_gt, slot_of_gt]] = 1.0

    positive = best_iou >= iou_threshold
    padded_boxes = all_boxes.new_zeros(num_images, max_gt, 4)
    padded_boxes[image_of_gt, slot_of_gt] = all_boxes
    padded_labels = torch.zeros(num_images, max_gt, dtype=torch.int64, device=device)
    padded_labels[image_of_gt, slot_of_gt] = torch.cat(gt_labels).to(device=device, dtype=torch.int64)

    gathered_boxes = torch.gather(padded_boxes, 1, best_gt[..., None].expand(-1, -1, 4))
    gathered_labels = torch.gather(padded_labels, 1, best_gt)
    matched_boxes = torch.where(positive[..., None], gathered_boxes, matched_boxes)
    matched_labels = torch.where(positive, gathered_labels, matched_labels)
    return matched_boxes, matched_labels

"""PASCAL VOC average precision: the devkit's greedy matching, vectorised.

The algorithm is the VOC devkit's (``VOCevaldet.m``; py-faster-rcnn's ``voc_eval.py``), per class:

1. Rank the detections of the class over ALL images by decreasing score (a stable sort: ties keep
   image order, then the order within the image).
2. Each detection looks at the ground truth of its class in its image and takes the object of
   largest IoU (already matched or not). IoU >= 0.5 (the devkit's ``minoverlap``) is a match:
   - with a difficult object: the detection is ignored, neither TP nor FP;
   - with an object not matched before: TP, and the object is now matched;
   - with an object already matched by a higher-scoring detection: FP (a duplicate).
   Anything else (IoU < 0.5, no object of the class in the image) is FP.
3. recall = TP / (non-difficult objects), precision = TP / (TP + FP) along the ranking; AP is the
   area under the precision envelope: VOC2007's 11-point version or VOC2010+'s all-point version.

Because step 2 takes the largest-IoU object whatever its state, which object a detection claims
does not depend on earlier detections, only whether it is the first claim does; so the matching is
one IoU matrix per image plus a "first claim per object" pass, with no per-detection Python loop.

Pixel convention: our boxes are continuous xyxy (width = x2 - x1, a box [0, 0, 10, 10] covers 100
square pixels). The devkit uses inclusive integer pixel indices (width = x2 - x1 + 1), so on the same
integer coordinates its IoUs are slightly larger, and its numbers for boxes a few pixels wide differ
from ours. Two further details follow the MATLAB devkit rather than py-faster-rcnn: a match needs
IoU >= 0.5 (py-faster-rcnn: > 0.5), and the 11 recall thresholds are exact tenths
(py-faster-rcnn's ``np.arange(0., 1.1, 0.1)`` makes recall 0.3 fall short of "0.30000000000000004").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import box_iou as torchvision_box_iou

from .inputs import BoxSet

VOC_IOU_THRESHOLD = 0.5  # the devkit's VOCopts.minoverlap
_RECALL_TENTHS = np.arange(11) / 10  # VOC2007's 11 recall thresholds 0, 0.1, ..., 1 (exact tenths)


@dataclass(frozen=True)
class VOCClassAP:
    """VOC average precision of one class.

    Attributes:
        label: class index (1 ... C-1).
        num_gt: objects that count for recall (not difficult).
        num_difficult: difficult objects (detections on them are ignored).
        num_det: detections of the class (including ignored ones).
        ap_07: VOC2007 11-point AP; None when the class has no non-difficult object.
        ap: VOC2010+ all-point AP; None when the class has no non-difficult object.
    """

    label: int
    num_gt: int
    num_difficult: int
    num_det: int
    ap_07: float | None
    ap: float | None


def box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU of continuous xyxy boxes (float64 [N, 4] and [M, 4]) -> float64 [N, M]; 0 where a union
    is empty. torchvision's ``box_iou`` in float64 (it gives NaN for an empty union)."""
    iou = torchvision_box_iou(torch.from_numpy(np.ascontiguousarray(boxes1)), torch.from_numpy(np.ascontiguousarray(boxes2)))
    return np.nan_to_num(iou.numpy(), nan=0.0)


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool = False) -> float:
    """Area under the precision-recall curve of one class, as the VOC devkit computes it.

    Args:
        recall: float64 [K], non-decreasing recall after each ranked detection.
        precision: float64 [K], precision after each ranked detection.
        use_07_metric: VOC2007's mean of the best precision at recall >= 0, 0.1, ..., 1 (11 points);
            otherwise VOC2010+'s exact area under the precision envelope (all points).
    """
    if use_07_metric:
        if len(recall) == 0:
            return 0.0
        # Best precision at recall >= t is the suffix maximum from the first index reaching t.
        best_from = np.maximum.accumulate(precision[::-1])[::-1]
        first = np.searchsorted(recall, _RECALL_TENTHS, side="left")
        reached = first < len(recall)
        return float(np.sum(best_from[first[reached]]) / len(_RECALL_TENTHS))
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope (monotone from the right)
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def voc_evaluate(
    detections: BoxSet, ground_truth: BoxSet, num_classes: int, iou_threshold: float = VOC_IOU_THRESHOLD
) -> list[VOCClassAP]:
    """VOC AP of every foreground class.

    Args:
        detections: all detections (see :func:`~ssd_deploy.evaluation.inputs.flatten_detections`).
        ground_truth: all ground truth (see :func:`~ssd_deploy.evaluation.inputs.flatten_ground_truths`).
        num_classes: number of classes including the background.
        iou_threshold: smallest IoU of a match (the devkit's 0.5).

    Returns:
        One :class:`VOCClassAP` per label 1 ... C-1, in label order.
    """
    best_gt, best_iou = _best_ground_truth(detections, ground_truth)
    matched = best_iou >= iou_threshold
    on_difficult = np.zeros_like(matched)
    on_difficult[matched] = ground_truth.difficult[best_gt[matched]]
    results = []
    for label in range(1, num_classes):
        gt_of_class = ground_truth.labels == label
        num_difficult = int(np.count_nonzero(ground_truth.difficult[gt_of_class]))
        num_gt = int(np.count_nonzero(gt_of_class)) - num_difficult
        ranked = np.flatnonzero(detections.labels == label)
        ranked = ranked[np.argsort(-detections.scores[ranked], kind="stable")]
        ap_07 = ap = None
        if num_gt:
            ranked_kept = ranked[~on_difficult[ranked]]  # ignored: neither TP nor FP
            tp = _first_claims(ranked_kept, best_gt, matched)
            tp_count = np.cumsum(tp)
            recall = tp_count / num_gt
            precision = tp_count / np.arange(1, len(tp) + 1)  # TP + FP = detections ranked so far
            ap_07, ap = voc_ap(recall, precision, use_07_metric=True), voc_ap(recall, precision)
        results.append(VOCClassAP(label, num_gt, num_difficult, len(ranked), ap_07, ap))
    return results


def _best_ground_truth(detections: BoxSet, ground_truth: BoxSet) -> tuple[np.ndarray, np.ndarray]:
    """For each detection, the index (into ``ground_truth``) of the same-class object of its image
    with the largest IoU (the first one on a tie, as the devkit) and that IoU; -1 and -inf if none."""
    best_gt = np.full(len(detections), -1, dtype=np.int64)
    best_iou = np.full(len(detections), -np.inf)
    num_images = int(max(detections.image.max(initial=-1), ground_truth.image.max(initial=-1))) + 1
    det_start = np.searchsorted(detections.image, np.arange(num_images + 1))
    gt_start = np.searchsorted(ground_truth.image, np.arange(num_images + 1))
    for i in range(num_images):
        d0, d1, g0, g1 = det_start[i], det_start[i + 1], gt_start[i], gt_start[i + 1]
        if d0 == d1 or g0 == g1:
            continue
        iou = box_iou(detections.boxes[d0:d1], ground_truth.boxes[g0:g1])  # [D_i, G_i]
        iou[detections.labels[d0:d1, None] != ground_truth.labels[None, g0:g1]] = -np.inf
        column = iou.argmax(axis=1)
        best_iou[d0:d1] = iou[np.arange(d1 - d0), column]
        best_gt[d0:d1] = np.where(np.isfinite(best_iou[d0:d1]), g0 + column, -1)
    return best_gt, best_iou


def _first_claims(ranked: np.ndarray, best_gt: np.ndarray, matched: np.ndarray) -> np.ndarray:
    """TP flags (bool [K]) of ranked detections: a match that is the first claim on its object."""
    tp = np.zeros(len(ranked), dtype=bool)
    claims = np.flatnonzero(matched[ranked])
    _, first = np.unique(best_gt[ranked[claims]], return_index=True)  # index of each object's first claim
    tp[claims[first]] = True
    return tp

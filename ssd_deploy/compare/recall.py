"""Recall between two runs: how many of one run's confident detections the other also found.

Used where the runs legitimately differ by more than rounding (INT8, BF16, FP16 on a GPU): the
export check (:func:`ssd_deploy.compare.verify_recall`), the GPU check and the parity benchmark
count it both ways with :func:`mutual_recall`.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
from torchvision.ops import box_iou

from .detections import image_detections
from .tolerances import RecallCriterion


def detection_recall(
    reference: Sequence[Tensor], other: Sequence[Tensor], score_threshold: float, min_iou: float = 0.5, score_margin: float = 0.1
) -> tuple[int, int]:
    """How many confident reference detections the other run also found, for lower precisions.

    INT8 and BF16 move scores by a few hundredths, which reshuffles near-threshold detections, so
    they are judged like a detector against ground truth: each reference detection scoring above
    ``score_threshold`` needs a detection of the other run with the same label, IoU >= ``min_iou``
    and a score above ``score_threshold - score_margin`` (one-to-one, best scores first).

    Returns:
        (found, total) over the batch of padded detections ``(num, boxes, scores, labels)``.
    """
    reference = [t.detach().cpu() for t in reference]
    other = [t.detach().cpu() for t in other]
    found = total = 0
    for image in range(reference[0].shape[0]):
        ref_boxes, ref_scores, ref_labels = image_detections(reference, image)
        boxes, scores, labels = image_detections(other, image)
        confident = ref_scores > score_threshold
        ref_boxes, ref_labels = ref_boxes[confident], ref_labels[confident]
        usable = scores > score_threshold - score_margin
        boxes, labels = boxes[usable], labels[usable]
        total += len(ref_labels)
        if not len(ref_labels) or not len(labels):
            continue
        ious = torch.where(ref_labels[:, None] == labels[None, :], box_iou(ref_boxes, boxes), torch.zeros(()))
        taken = torch.zeros(len(labels), dtype=torch.bool)
        for i in range(len(ref_labels)):  # already in decreasing score order
            candidates = ious[i].masked_fill(taken, -1.0)
            j = int(candidates.argmax())
            if candidates[j] >= min_iou:
                taken[j] = True
                found += 1
    return found, total


def mutual_recall(first: Sequence[Tensor], second: Sequence[Tensor], criterion: RecallCriterion) -> tuple[tuple[int, int], tuple[int, int]]:
    """:func:`detection_recall` both ways, by ``criterion`` (its ``min_recall`` is left to the caller).

    Returns:
        ((found, total) of ``first``'s confident detections in ``second``, (found, total) of ``second``'s in ``first``).
    """
    threshold, min_iou, margin = criterion.score_threshold, criterion.min_iou, criterion.score_margin
    return detection_recall(first, second, threshold, min_iou, margin), detection_recall(second, first, threshold, min_iou, margin)

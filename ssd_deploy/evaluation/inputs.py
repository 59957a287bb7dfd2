"""Checking evaluation inputs and flattening them into one array per quantity over all images.

Both metrics work on all images at once (the VOC devkit ranks the detections of a class across the
whole dataset; COCO wants one list of annotations), so the per-image inputs are concatenated once,
with the index of each box's image alongside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..errors import ConfigError, DatasetError
from ..pipeline import Detections


@dataclass(frozen=True)
class BoxSet:
    """Boxes of all images, concatenated in image order (within an image, in input order).

    Attributes:
        image: int64 [N], index of each box's image in the input sequence.
        boxes: float64 [N, 4] xyxy in pixels, continuous coordinates (width = x2 - x1).
        labels: int64 [N], class indices 1 ... C-1.
        scores: float64 [N], detection scores (ones for ground truth).
        difficult: bool [N], difficult ground truth (all False for detections).
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    difficult: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def flatten_detections(predictions: Sequence[Detections], num_classes: int) -> BoxSet:
    """Concatenate the detections of every image.

    Args:
        predictions: one :class:`~ssd_deploy.pipeline.Detections` per image (boxes float [D, 4]
            xyxy pixels of the original image, scores [D], labels int [D]).
        num_classes: number of classes including the background.

    Raises:
        ConfigError: a detection array has the wrong shape or a label outside 1 ... C-1.
    """
    parts = []
    for i, det in enumerate(predictions):
        where = f"evaluate_detections: predictions of image {i}"
        boxes = _float64(det.boxes)
        scores = _float64(det.scores).reshape(-1)
        labels = _array(det.labels).reshape(-1).astype(np.int64)
        if boxes.size % 4 or not len(boxes.reshape(-1, 4)) == len(scores) == len(labels):
            raise ConfigError(
                f"{where}: boxes of shape {boxes.shape}, {len(scores)} scores, {len(labels)} labels. "
                "Note: expected boxes [D, 4] xyxy with one score and one label per box"
            )
        boxes = boxes.reshape(-1, 4)
        if problem := _label_problem(labels, num_classes):
            raise ConfigError(f"{where}: {problem}")
        parts.append((boxes, labels, scores, np.zeros(len(labels), dtype=bool)))
    return _concatenate(parts)


def flatten_ground_truths(ground_truths: Sequence[Mapping[str, Any]], num_classes: int) -> BoxSet:
    """Concatenate the ground truth of every image.

    Args:
        ground_truths: one target dict per image with "boxes" (float [G, 4] xyxy pixels), "labels"
            (int [G], 1 ... C-1) and optionally "difficult" (bool [G]; all False when missing).
        num_classes: number of classes including the background.

    Raises:
        DatasetError: a target lacks boxes or labels, has mismatched arrays or a label outside 1 ... C-1.
    """
    parts = []
    for i, target in enumerate(ground_truths):
        where = f"ground truth of image {i}"
        if "boxes" not in target or "labels" not in target:
            raise DatasetError(where, f"keys {sorted(target)}. Note: a target needs 'boxes' and 'labels'")
        boxes = _float64(target["boxes"])
        labels = _array(target["labels"]).reshape(-1).astype(np.int64)
        if boxes.size % 4 or len(boxes.reshape(-1, 4)) != len(labels):
            raise DatasetError(
                where, f"boxes of shape {boxes.shape} for {len(labels)} labels. Note: expected boxes [G, 4] xyxy, one label per box"
            )
        boxes = boxes.reshape(-1, 4)
        difficult = target.get("difficult")
        difficult = np.zeros(len(labels), dtype=bool) if difficult is None else _array(difficult).reshape(-1).astype(bool)
        if len(difficult) != len(labels):
            raise DatasetError(where, f"{len(difficult)} difficult flags for {len(labels)} labels. Note: one flag per box")
        if problem := _label_problem(labels, num_classes):
            raise DatasetError(where, problem)
        parts.append((boxes, labels, np.ones(len(labels)), difficult))
    return _concatenate(parts)


def _label_problem(labels: np.ndarray, num_classes: int) -> str | None:
    bad = labels[(labels < 1) | (labels >= num_classes)]
    if not len(bad):
        return None
    return (
        f"label {int(bad[0])} outside 1 ... {num_classes - 1}. "
        f"Note: class_names has {num_classes} names including the background at 0"
    )


def _concatenate(parts: list[tuple[np.ndarray, ...]]) -> BoxSet:
    counts = [len(p[1]) for p in parts]
    if not parts:
        return BoxSet(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool))
    return BoxSet(
        image=np.repeat(np.arange(len(parts), dtype=np.int64), counts),
        boxes=np.concatenate([p[0] for p in parts]).reshape(-1, 4),
        labels=np.concatenate([p[1] for p in parts]),
        scores=np.concatenate([p[2] for p in parts]).astype(np.float64),
        difficult=np.concatenate([p[3] for p in parts]),
    )


def _array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _float64(value: Any) -> np.ndarray:
    return _array(value).astype(np.float64)

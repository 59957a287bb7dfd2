"""COCO metrics through pycocotools, on COCO objects built in memory.

Our inputs become a COCO dataset: image id = index of the image in the input sequence, category id
= our label (1 ... C-1, named by ``class_names``), boxes converted from xyxy to COCO's xywh pixels,
and a ground-truth box's ``area`` = w * h (we have no masks).

Difficult ground truth becomes ``iscrowd=1`` (the same flag our COCO loader reads back as
difficult, so a COCO dataset is evaluated as COCO itself would). COCOeval ignores crowd objects:
a detection matched to one counts neither as TP nor FP, any number of detections may match the same
crowd, and detections match ordinary objects first. Unlike VOC's difficult, the overlap with a crowd
is intersection / detection area (not IoU), so a small detection inside a large difficult box is
ignored here but is a false positive for VOC.

COCO counts at most 100 detections per image (the highest scoring); SSD keeps up to 200.

pycocotools is imported only when COCO metrics are computed, so the rest of the package (training,
the benchmarks' VOC metric) runs where it is not installed (:func:`coco_available`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import ConfigError
from .inputs import BoxSet

if TYPE_CHECKING:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

# Names of COCOeval.stats, in its order (AP over IoU 0.5:0.95 unless a threshold is named;
# s/m/l: objects under 32², 32²-96², over 96² pixels; AR<n>: recall with at most n detections per image).
COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def coco_available() -> bool:
    """Whether pycocotools is installed (COCO metrics can be computed)."""
    return importlib.util.find_spec("pycocotools") is not None


def _pycocotools() -> tuple[ModuleType, ModuleType]:
    """pycocotools' ``coco`` and ``cocoeval`` modules, or ConfigError saying how to get them."""
    try:
        from pycocotools import coco, cocoeval
    except ImportError:
        raise ConfigError(
            "COCO metrics: pycocotools is not installed. Note: pip install pycocotools, or ask for the VOC metrics only"
        ) from None
    return coco, cocoeval


@dataclass(frozen=True)
class COCOMetrics:
    """COCO metrics of a dataset.

    Attributes:
        stats: COCOeval's 12 summary numbers by name (:data:`COCO_STAT_NAMES`); None where COCO
            reports -1 (no ground truth, e.g. no small objects).
        per_class_ap: label -> AP@[0.5:0.95] of that class (all areas, 100 detections per image);
            None for a class without (non-crowd) ground truth, which COCO leaves out of its mean.
    """

    stats: dict[str, float | None]
    per_class_ap: dict[int, float | None]


def coco_ground_truth(ground_truth: BoxSet, num_images: int, class_names: Sequence[str]) -> COCO:
    """An in-memory pycocotools ``COCO`` of the ground truth (difficult -> ``iscrowd=1``)."""
    xywh = _xywh(ground_truth.boxes)
    annotations = [
        {
            "id": k + 1,  # COCOeval treats id 0 as "unmatched": ids start at 1
            "image_id": int(image),
            "category_id": int(label),
            "bbox": box.tolist(),
            "area": float(box[2] * box[3]),
            "iscrowd": int(difficult),
        }
        for k, (image, label, box, difficult) in enumerate(
            zip(ground_truth.image, ground_truth.labels, xywh, ground_truth.difficult)
        )
    ]
    coco = _pycocotools()[0].COCO()
    coco.dataset = {
        "images": [{"id": i} for i in range(num_images)],
        "categories": [{"id": label, "name": name} for label, name in enumerate(class_names) if label > 0],
        "annotations": annotations,
    }
    coco.createIndex()
    return coco


def coco_results(detections: BoxSet) -> np.ndarray:
    """Detections as pycocotools' result array: float64 [N, 7] (image_id, x, y, w, h, score, category_id)."""
    columns = [detections.image, _xywh(detections.boxes), detections.scores, detections.labels]
    return np.column_stack(columns).astype(np.float64)


def coco_evaluate(
    detections: BoxSet, ground_truth: BoxSet, num_images: int, class_names: Sequence[str], verbose: bool = False
) -> COCOMetrics:
    """Run pycocotools' COCOeval (iouType "bbox") on the given detections and ground truth.

    Args:
        detections: all detections (boxes xyxy pixels).
        ground_truth: all ground truth (boxes xyxy pixels; difficult -> crowd, see the module doc).
        num_images: number of images (images without boxes count too).
        class_names: class names, background at index 0.
        verbose: let pycocotools print its progress and summary table.
    """
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        coco_gt = coco_ground_truth(ground_truth, num_images, class_names)
        coco_dt = coco_gt.loadRes(coco_results(detections)) if len(detections) else _empty_results(coco_gt)
        evaluator = _pycocotools()[1].COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = {name: _none_if_negative(value) for name, value in zip(COCO_STAT_NAMES, evaluator.stats)}
    return COCOMetrics(stats, _per_class_ap(evaluator))


def _per_class_ap(evaluator: COCOeval) -> dict[int, float | None]:
    """Mean of eval['precision'] [T, R, K, A, M] over IoU thresholds and recall, area "all",
    100 detections, skipping the -1 entries (no ground truth), as COCOeval.summarize does."""
    params = evaluator.params
    precision = evaluator.eval["precision"][:, :, :, params.areaRngLbl.index("all"), params.maxDets.index(100)]
    per_class = {}
    for k, category in enumerate(params.catIds):
        values = precision[:, :, k]
        values = values[values > -1]
        per_class[int(category)] = float(np.mean(values)) if values.size else None
    return per_class


def _empty_results(coco_gt: COCO) -> COCO:
    # loadRes cannot take an empty list (it reads anns[0]), so an empty result set is built directly.
    coco = _pycocotools()[0].COCO()
    coco.dataset = {
        "images": list(coco_gt.dataset["images"]),
        "categories": list(coco_gt.dataset["categories"]),
        "annotations": [],
    }
    coco.createIndex()
    return coco


def _xywh(boxes: np.ndarray) -> np.ndarray:
    """float64 [N, 4] xyxy -> xywh (COCO's box format)."""
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def _none_if_negative(value: float) -> float | None:
    return None if value < 0 else float(value)

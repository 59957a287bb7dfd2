"""``evaluate_detections``: VOC and COCO metrics of a detector's outputs on a dataset."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ConfigError
from ..pipeline import Detections
from .coco import COCOMetrics, coco_available, coco_evaluate
from .inputs import flatten_detections, flatten_ground_truths
from .result import ClassResult, EvaluationResult
from .voc import VOCClassAP, voc_evaluate

METRICS = ("voc07", "voc", "coco")


def available_metrics(wanted: Sequence[str] = METRICS) -> tuple[str, ...]:
    """``wanted`` without "coco" where pycocotools is not installed (validation during training and
    the benchmarks then report the VOC metrics and leave COCO's empty)."""
    return tuple(m for m in wanted if m != "coco" or coco_available())


def evaluate_detections(
    predictions: Sequence[Detections],
    ground_truths: Sequence[Mapping[str, Any]],
    class_names: Sequence[str],
    metrics: Sequence[str] = METRICS,
    *,
    verbose: bool = False,
) -> EvaluationResult:
    """Evaluate detections against ground truth with VOC and/or COCO metrics.

    Args:
        predictions: one :class:`~ssd_deploy.pipeline.Detections` per image: boxes float32 [D, 4]
            xyxy in pixels of the original image, scores [D], labels int64 [D] (1 ... C-1).
        ground_truths: one target dict per image, same order: "boxes" float32 [G, 4] xyxy pixels,
            "labels" int64 [G] (1 ... C-1), "difficult" bool [G] (optional; all False if absent).
        class_names: class names, "__background__" at index 0 (C names, background included).
        metrics: any of "voc07" (VOC2007 11-point AP at IoU 0.5), "voc" (VOC2010+ all-point AP at
            IoU 0.5; both as in :mod:`~ssd_deploy.evaluation.voc`) and "coco" (pycocotools, see
            :mod:`~ssd_deploy.evaluation.coco`).
        verbose: let pycocotools print its progress and summary table.

    Boxes are continuous xyxy (width = x2 - x1); the VOC devkit adds 1 pixel to widths and heights.
    Difficult objects are ignored by every metric: VOC neither counts them for recall nor counts a
    detection matched to one as TP or FP; COCO gets them as crowd (``iscrowd=1``) objects.

    Returns:
        :class:`~ssd_deploy.evaluation.result.EvaluationResult`; classes without ground truth have
        None for AP and are left out of the means.

    Raises:
        ConfigError: unknown metric, fewer than 2 class names, predictions and ground truths of
            different lengths, or a detection label outside 1 ... C-1.
        DatasetError: malformed ground truth or a ground-truth label outside 1 ... C-1.
    """
    metrics = tuple(metrics)
    _check_arguments(predictions, ground_truths, class_names, metrics)
    num_classes = len(class_names)
    detections = flatten_detections(predictions, num_classes)
    ground_truth = flatten_ground_truths(ground_truths, num_classes)

    voc = voc_evaluate(detections, ground_truth, num_classes)
    coco = coco_evaluate(detections, ground_truth, len(ground_truths), class_names, verbose) if "coco" in metrics else None
    rows = _class_rows(voc, coco, class_names, metrics)
    return EvaluationResult(
        map_voc07=_mean(row.ap_voc07 for row in rows),
        map_voc=_mean(row.ap_voc for row in rows),
        coco=coco.stats if coco else {},
        per_class=rows,
        num_images=len(ground_truths),
        metrics=metrics,
    )


def _check_arguments(
    predictions: Sequence[Detections], ground_truths: Sequence[Mapping[str, Any]], class_names: Sequence[str], metrics: tuple[str, ...]
) -> None:
    """Raise ConfigError for the mistakes :func:`evaluate_detections` lists."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ConfigError(f"evaluate_detections: unknown metrics {unknown or metrics}. Note: choose from {', '.join(METRICS)}")
    if len(class_names) < 2:
        raise ConfigError(f"evaluate_detections: {len(class_names)} class names. Note: names include the background at index 0")
    if len(predictions) != len(ground_truths):
        raise ConfigError(
            f"evaluate_detections: {len(predictions)} predictions for {len(ground_truths)} ground truths. "
            "Note: pass one Detections and one target per image, in the same order"
        )


def _class_rows(
    voc: Sequence[VOCClassAP], coco: COCOMetrics | None, class_names: Sequence[str], metrics: tuple[str, ...]
) -> list[ClassResult]:
    """One row per foreground class, with the APs of the metrics asked for (None for the others)."""
    return [
        ClassResult(
            name=str(class_names[c.label]),
            label=c.label,
            num_gt=c.num_gt,
            num_difficult=c.num_difficult,
            num_det=c.num_det,
            ap_voc07=c.ap_07 if "voc07" in metrics else None,
            ap_voc=c.ap if "voc" in metrics else None,
            ap_coco=coco.per_class_ap[c.label] if coco else None,
        )
        for c in voc
    ]


def _mean(values) -> float | None:
    """Mean of the values that are not None (None if there are none)."""
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None

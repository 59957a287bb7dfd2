"""Evaluating detections: VOC (2007 11-point, 2010+ all-point) and COCO metrics.

    detector + dataset ─ predict_dataset (predict.py)
    predictions (Detections per image) + ground truth (target dict per image) + class names
        └─ flatten once (inputs.py) ─┬─ VOC devkit matching and AP, vectorised (voc.py)
                                     └─ pycocotools COCOeval on in-memory COCO objects (coco.py)
        └─ EvaluationResult: per-class rows, means, Markdown table, JSON (result.py)
"""

from .coco import COCO_STAT_NAMES, COCOMetrics, coco_available, coco_evaluate
from .evaluate import METRICS, available_metrics, evaluate_detections
from .inputs import BoxSet, flatten_detections, flatten_ground_truths
from .predict import predict_dataset
from .result import ClassResult, EvaluationResult, write_result_json
from .voc import VOC_IOU_THRESHOLD, VOCClassAP, box_iou, voc_ap, voc_evaluate

__all__ = [
    "COCO_STAT_NAMES",
    "METRICS",
    "VOC_IOU_THRESHOLD",
    "BoxSet",
    "COCOMetrics",
    "ClassResult",
    "EvaluationResult",
    "VOCClassAP",
    "available_metrics",
    "box_iou",
    "coco_available",
    "coco_evaluate",
    "evaluate_detections",
    "flatten_detections",
    "flatten_ground_truths",
    "predict_dataset",
    "voc_ap",
    "voc_evaluate",
    "write_result_json",
]

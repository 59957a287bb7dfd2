"""Score a detector on a dataset (what training validates with), and wrap an in-memory model as one.

The detector is a :class:`~ssd_deploy.runtimes.Detector`, so validation goes through exactly the
pre-processing, network, decoding and NMS a deployed model runs (on any runtime), and boxes are
scored in each original image's pixels.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..evaluation import EvaluationResult, available_metrics, evaluate_detections, predict_dataset
from ..postprocess import PostprocessConfig
from ..runtimes import Detector
from ..runtimes.pytorch import PyTorchRunner


def evaluate_detector(
    detector: Detector,
    dataset: Any,
    batch_size: int = 16,
    progress: bool = True,
    metrics: Sequence[str] | None = None,
) -> EvaluationResult:
    """VOC and COCO metrics of ``detector`` on ``dataset`` (see :func:`~ssd_deploy.evaluation.predict_dataset`); ``metrics``
    None: every metric this machine can compute (COCO's needs pycocotools)."""
    metrics = available_metrics() if metrics is None else metrics
    predictions, ground_truths = predict_dataset(detector, dataset, batch_size, progress)
    return evaluate_detections(predictions, ground_truths, list(dataset.class_names), metrics=metrics)


def model_detector(
    model: nn.Module, class_names: Sequence[str], device: torch.device | str = "cpu", max_batch: int = 16,
    postprocess: PostprocessConfig = PostprocessConfig(),
) -> Detector:
    """A Detector around an in-memory SSD (eval mode; the caller puts it back in training mode).

    ``postprocess`` defaults to the paper's evaluation settings: score 0.01, NMS 0.45, top 200.
    """
    runner = PyTorchRunner(model, list(class_names), device=str(device), precision="fp32", postprocess=postprocess)
    return Detector(runner, max_batch=max_batch)

"""Run a detector over a dataset and score it: what training validates with and ``ssd-eval`` runs.

The detector is a :class:`~ssd_deploy.runtimes.Detector`, so validation goes through exactly the
pre-processing, network, decoding and NMS a deployed model runs (on any runtime), and boxes are
scored in each original image's pixels.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from tqdm import tqdm

from ..evaluation import EvaluationResult, available_metrics, evaluate_detections
from ..pipeline import Detections
from ..postprocess import PostprocessConfig
from ..runtimes import Detector
from ..runtimes.pytorch import PyTorchRunner


def predict_dataset(
    detector: Detector, dataset: Any, batch_size: int = 16, progress: bool = True, desc: str = "eval"
) -> tuple[list[Detections], list[dict[str, Any]]]:
    """Detections and ground truth of every image of ``dataset`` (a DetectionDataset without a
    transform: raw BGR images and targets in pixels), in dataset order."""
    predictions: list[Detections] = []
    ground_truths: list[dict[str, Any]] = []
    indices = range(len(dataset))
    bar = tqdm(total=len(dataset), desc=desc, unit="img", disable=not progress, leave=False)
    seen: set = set()
    for start in range(0, len(dataset), batch_size):
        samples = [dataset[i] for i in indices[start : start + batch_size]]
        bar.update(len(samples))
        # An image that fails to decode is replaced by the next readable one (and reported by the
        # dataset); count every image once.
        unique = []
        for image, target in samples:
            if target["image_id"] not in seen:
                seen.add(target["image_id"])
                unique.append((image, target))
        samples = unique
        if not samples:  # the whole batch was replacements of images already seen
            continue
        predictions += detector.detect([image for image, _ in samples])
        ground_truths += [target for _, target in samples]
    bar.close()
    return predictions, ground_truths


def evaluate_detector(
    detector: Detector,
    dataset: Any,
    batch_size: int = 16,
    progress: bool = True,
    metrics: Sequence[str] | None = None,
) -> EvaluationResult:
    """VOC and COCO metrics of ``detector`` on ``dataset`` (see :func:`predict_dataset`); ``metrics``
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

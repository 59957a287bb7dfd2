"""What the checks share: the models, their CPU FP32 reference, the comparison with it, and timing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .report import CheckFailed

SAMPLE_BATCH = 8  # images compared with CPU FP32 per check
TIMED_BATCHES = (1, 64)  # batch sizes timed per runtime
# cuDNN convolutions run TF32 by default (torch.backends.cudnn.allow_tf32), so CUDA FP32 is
# compared like a close float format, not bit for bit.
CUDA_FP32 = dict(box_atol=2e-3, score_atol=2e-3, min_iou=0.99)

# name -> (architecture, input size (height, width), classes including the background)
MODELS = {"demo": ("ssdlite_mobilenet_v3", (160, 160), 6), "ssdlite320-coco91": ("ssdlite_mobilenet_v3", (320, 320), 91)}


@dataclass
class Workspace:
    """What the checks share under ``folder``: checkpoints, exports, datasets, CPU references."""

    folder: Path
    device: str
    batches: tuple[int, ...] = TIMED_BATCHES  # batch sizes timed per runtime
    _references: dict[str, list[torch.Tensor]] = field(default_factory=dict)

    def checkpoint(self, name: str) -> Path:
        """The checkpoint of model ``name`` (:data:`MODELS`), written on first use."""
        path = self.folder / "models" / f"{name}.pt"
        if path.is_file():
            return path
        from ..checkpoint import save_checkpoint
        from ..data.shapes import CLASS_NAMES
        from ..models import create_model
        from ..models.informative import informative_init

        arch, size, classes = MODELS[name]
        # The shapes' names first, so ssd-bench parity's generated shapes data fits either model.
        names = [*CLASS_NAMES, *(f"class_{i}" for i in range(len(CLASS_NAMES), classes))][:classes]
        model = informative_init(create_model(arch, num_classes=classes, input_size=size))
        return save_checkpoint(path, model, names)

    def sample(self, name: str) -> torch.Tensor:
        """Tensor[SAMPLE_BATCH, 3, H, W] of generated scenes at model ``name``'s input size."""
        from ..export.verify import sample_batch

        return sample_batch(MODELS[name][1], SAMPLE_BATCH, seed=11)

    def reference(self, name: str) -> list[torch.Tensor]:
        """The pytorch runtime's FP32 outputs on the CPU for :meth:`sample` (num, boxes, scores, labels)."""
        if name not in self._references:
            from ..runtimes import load

            with load(self.checkpoint(name), runtime="pytorch", device="cpu") as detector:
                self._references[name] = detector_outputs(detector, self.sample(name))
        return self._references[name]


def detector_outputs(detector: Any, batch: torch.Tensor) -> list[torch.Tensor]:
    return [torch.as_tensor(value) for value in detector.infer(batch).values()]


def compare_with_cpu(reference: list[torch.Tensor], outputs: list[torch.Tensor], precision: str) -> dict[str, Any]:
    """How ``outputs`` agree with the CPU FP32 ``reference`` (padded detections of one batch).

    fp32: the same detections within :data:`CUDA_FP32`; fp16/bf16: judged as detectors, with the
    criterion ssd-export uses for reduced precisions (:class:`~ssd_deploy.compare.RecallCriterion`:
    each run finds 85% of the other's detections scoring above 0.3, same label, IoU >= 0.5). The
    untrained models fill all 200 slots above 0.1, so a lower score would only count reshuffles
    at the capacity's edge (measured on the CPU: bf16 finds 87-88% above 0.3, 83% above 0.1).

    Raises:
        CheckFailed: beyond those bounds (the numbers are kept).
    """
    from ..compare import INT8_CRITERION, Tolerances, compare_detections, mutual_recall
    from ..postprocess import PostprocessConfig

    post = PostprocessConfig()
    if precision == "fp32":
        comparison = compare_detections(reference, outputs, Tolerances(**CUDA_FP32), post.score_threshold, post.iou_threshold)
        numbers = {"matched": comparison.matched, "max_box_diff": comparison.max_box_diff, "max_score_diff": comparison.max_score_diff}
        if not comparison.ok:
            raise CheckFailed(f"differs from CPU FP32: {'; '.join(comparison.problems[:3])}", numbers)
        return numbers
    criterion = INT8_CRITERION
    (found, total), (back, back_total) = mutual_recall(reference, outputs, criterion)
    numbers = {"found": f"{found}/{total}", "found_back": f"{back}/{back_total}"}
    if total == 0 or back_total == 0:
        raise CheckFailed(f"no detections above {criterion.score_threshold} to compare (the model's scores collapsed)", numbers)
    if min(found / total, back / back_total) < criterion.min_recall:
        raise CheckFailed(f"finds under {criterion.min_recall:.0%} of CPU FP32's detections (or the other way round)", numbers)
    return numbers


def time_batches(
    detector: Any, input_size: tuple[int, int], device: str, batches: tuple[int, ...] = TIMED_BATCHES, repeats: int = 10
) -> dict[str, float]:
    """Median milliseconds of ``detector.infer`` per batch size (random images already on
    ``device``; three untimed calls first; infer returns host arrays, so each call ends synchronised)."""
    numbers = {}
    for batch in batches:
        images = torch.rand(batch, 3, *input_size, device=device)
        for _ in range(3):
            detector.infer(images)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            detector.infer(images)
            times.append((time.perf_counter() - started) * 1000)
        numbers[f"batch{batch}_ms"] = sorted(times)[len(times) // 2]
    return numbers

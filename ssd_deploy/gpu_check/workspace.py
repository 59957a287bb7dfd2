"""What the checks share: the models, their CPU FP32 reference, the comparison with it, and timing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .report import CheckFailed

if TYPE_CHECKING:  # only torch at run time (see the package's docstring)
    from ..compare import Tolerances

SAMPLE_BATCH = 8  # images compared with CPU FP32 per check
TIMED_BATCHES = (1, 64)  # batch sizes timed per runtime
# CUDA FP32 (IEEE: the runtimes turn TF32 off, see devices.inference) is held to what ONNX Runtime
# is held to on the CPU: ROUNDING_FACTOR times the model's own float32 rounding against float64.
# The heads' weights are scaled by this over informative_init's (so 0.3 of Kaiming): with
# BatchNorm statistics measured on generated scenes, scores then spread to ~0.95 (1,302 above 0.3
# on the sample) while the float32 rounding stays 3e-5 (the raw informative_init: 6e-5, scores
# below 0.53, so reduced precisions only reshuffle near-ties).
HEAD_SCALE = 3.0

# name -> (architecture, input size (height, width), classes including the background)
MODELS = {"demo": ("ssdlite_mobilenet_v3", (160, 160), 6), "ssdlite320-coco91": ("ssdlite_mobilenet_v3", (320, 320), 91)}


@dataclass
class Workspace:
    """What the checks share under ``folder``: checkpoints, exports, datasets, CPU references."""

    folder: Path
    device: str
    batches: tuple[int, ...] = TIMED_BATCHES  # batch sizes timed per runtime
    _references: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    _tolerances: dict[str, Tolerances] = field(default_factory=dict)

    def checkpoint(self, name: str) -> Path:
        """The checkpoint of model ``name`` (:data:`MODELS`), written on first use."""
        path = self.folder / "models" / f"{name}.pt"
        if path.is_file():
            return path
        from ..checkpoint import save_checkpoint
        from ..data.shapes import CLASS_NAMES

        arch, size, classes = MODELS[name]
        # The shapes' names first, so ssd-bench parity's generated shapes data fits either model.
        names = [*CLASS_NAMES, *(f"class_{i}" for i in range(len(CLASS_NAMES), classes))][:classes]
        return save_checkpoint(path, conditioned_model(arch, classes, size), names)

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

    def tolerances(self, name: str) -> Tolerances:
        """FP32 :class:`~ssd_deploy.compare.Tolerances` of model ``name``, derived on the CPU from
        its float32 rounding on :meth:`sample` (as ``ssd-export --verify`` derives them)."""
        if name not in self._tolerances:
            from ..checkpoint import load_checkpoint
            from ..compare.tolerances import float32_tolerances

            model = load_checkpoint(self.checkpoint(name))[0].eval()
            sigmoid = model.config.score_function == "sigmoid"
            self._tolerances[name] = float32_tolerances(model, model.priors, [self.sample(name)], sigmoid)
        return self._tolerances[name]


def conditioned_model(arch: str, classes: int, size: tuple[int, int]) -> torch.nn.Module:
    """An untrained model whose comparisons mean something: :func:`informative_init`'s spread
    weights, BatchNorm statistics measured on 32 generated scenes (the random ones amplify
    rounding) and heads at :data:`HEAD_SCALE` times its scale."""
    from ..export.verify import sample_batch
    from ..models import create_model
    from ..models.informative import informative_init
    from ..training.precise_bn import recompute_batchnorm_statistics

    model = informative_init(create_model(arch, num_classes=classes, input_size=size))
    recompute_batchnorm_statistics(model, [sample_batch(size, 16, seed=seed) for seed in (1, 2)], torch.device("cpu"))
    with torch.no_grad():
        for module in model.head.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.mul_(HEAD_SCALE)
    return model.eval()


def detector_outputs(detector: Any, batch: torch.Tensor) -> list[torch.Tensor]:
    return [torch.as_tensor(value) for value in detector.infer(batch).values()]


def compare_with_cpu(
    reference: list[torch.Tensor], outputs: list[torch.Tensor], precision: str, tolerances: Tolerances | None = None
) -> dict[str, Any]:
    """How ``outputs`` agree with the CPU FP32 ``reference`` (padded detections of one batch).

    fp32: the same detections within ``tolerances`` (:meth:`Workspace.tolerances`; by default
    the fixed float32 ones); fp16/bf16: judged as detectors, with the criterion ssd-export uses
    for reduced precisions (:class:`~ssd_deploy.compare.RecallCriterion`: each run finds 85% of
    the other's detections scoring above 0.3, same label, IoU >= 0.5). Measured on the CPU with
    :func:`conditioned_model`: bf16 finds 91-92% both ways (the raw informative_init: 85-87%).

    Raises:
        CheckFailed: beyond those bounds (the numbers are kept).
    """
    from ..compare import FP32_TOLERANCES, INT8_CRITERION, compare_detections, mutual_recall
    from ..postprocess import PostprocessConfig

    post = PostprocessConfig()
    if precision == "fp32":
        tolerances = tolerances or FP32_TOLERANCES
        comparison = compare_detections(reference, outputs, tolerances, post.score_threshold, post.iou_threshold)
        numbers = {"matched": comparison.matched, "max_box_diff": comparison.max_box_diff, "max_score_diff": comparison.max_score_diff,
                   "tolerances": tolerances.basis or f"boxes {tolerances.box_atol:.1e}, scores {tolerances.score_atol:.1e}"}
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

"""``run_parity``: the accuracy of every runtime × precision against PyTorch FP32, on a dataset.

    checkpoint ─ PyTorch FP32 (reference) ─┐
               └ each runtime × precision ─┴─ Detector.detect over the dataset -> mAP VOC07, COCO AP
                                           └─ network-only companion on one sample batch -> raw differences
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..artifacts import ExportSettings
from ..calibration import Calibration, as_calibration
from ..checkpoint import load_checkpoint
from ..compare import RecallCriterion, Tolerances, compare_decoded, mutual_recall
from ..data.dataset import DetectionDataset, load_dataset
from ..data.shapes import CLASS_NAMES as SHAPES_CLASS_NAMES
from ..data.shapes import ensure_shapes_dataset
from ..errors import SSDDeployError
from ..evaluation import available_metrics, evaluate_detections, predict_dataset
from ..export.metadata import NETWORK_OUTPUTS, NMS_OUTPUTS
from ..pipeline import DEFAULT_BATCH_SIZE, preprocess
from ..postprocess import decode_predictions
from ..runtimes import Detector, load
from .machine import machine_info
from .report import ParityReport
from .rows import ParityRow, SkipRecord
from .variants import Variant, is_checkpoint, plan_variants, prepare_variants

# The default tolerances, in mAP points (0-100), per precision.
DEFAULT_TOLERANCES = {"fp32": 0.1, "fp16": 0.5, "bf16": 0.5, "int8": 1.0}
SHAPES_SEED = 11  # held-out scenes: neither the training nor the calibration seed
# "Detections found" counts each run's detections above 0.3 found by the other (same label, IoU >= 0.5,
# score above 0.2); parity is judged by mAP, so the criterion's min_recall is not applied.
CONFIDENT = RecallCriterion(score_threshold=0.3, min_iou=0.5, score_margin=0.1)
# The raw differences of the network outputs are reported, not judged: any size passes (only shapes must agree).
RAW_REPORTED_ONLY = Tolerances(box_atol=float("inf"), score_atol=float("inf"), basis="reported, not judged (parity judges by mAP)")


@dataclass(frozen=True)
class Evaluated:
    """One runtime × precision on the dataset.

    Attributes:
        scores: (mAP VOC07, COCO AP) in points, None where not measurable.
        decoded: the sample batch's network outputs decoded on the host, (boxes [N, P, 4] xyxy,
            scores [N, P, C]), or None without a network-only companion.
        padded: the sample batch's padded detections, ``{output name: array}``.
    """

    scores: tuple[float | None, float | None]
    decoded: tuple[torch.Tensor, torch.Tensor] | None
    padded: dict[str, np.ndarray]


@dataclass(frozen=True)
class ParityConfig:
    """Settings of a parity run (``ssd-bench parity``'s flags).

    Attributes:
        runtimes, precisions: as in :class:`~ssd_deploy.bench.latency.LatencyConfig`.
        data: a VOC folder, COCO JSON or Open Images CSV; None: generated shapes scenes
            (``shapes_images`` of ``shapes_size``), only for models trained on shapes.
        data_format, split, images_dir, skip_bad_data: as ``ssd-eval`` takes them.
        max_images: evaluate only the first this many images (None: all).
        batch_size: images per network call.
        tolerances: largest allowed |Δ mAP| in points per precision (VOC07 and COCO AP alike).
        calibration: INT8 calibration images; without a folder: the dataset's images.
        device, threads, verify, export_jobs, progress: as for latency.
    """

    runtimes: tuple[str, ...] | None = None
    precisions: tuple[str, ...] | None = None
    data: Path | None = None
    data_format: str = "auto"
    split: str | None = None
    images_dir: Path | None = None
    skip_bad_data: bool = False
    max_images: int | None = None
    shapes_images: int = 100
    shapes_size: tuple[int, int] = (320, 320)
    batch_size: int = DEFAULT_BATCH_SIZE
    tolerances: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TOLERANCES))
    calibration: Calibration = Calibration()
    device: str = "cpu"
    threads: int | None = None
    verify: bool = True
    export_jobs: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "calibration", as_calibration(self.calibration))


def run_parity(checkpoint: str | Path, config: ParityConfig = ParityConfig(), out_dir: str | Path = "runs/bench") -> ParityReport:
    """Evaluate PyTorch FP32 and every chosen runtime × precision on a dataset and compare.

    Args:
        checkpoint: a training checkpoint (the reference runs it; the runtimes run files exported
            from it into ``out_dir/cache``).
        config: see :class:`ParityConfig`.
        out_dir: where the cache, generated data and (through :meth:`ParityReport.write`) results go.

    Returns:
        A :class:`ParityReport`; ``report.ok`` is False when a runtime's |Δ mAP| exceeds its tolerance.

    Raises:
        SSDDeployError: not a checkpoint, no usable dataset, a named runtime or precision unusable here.
    """
    path = Path(checkpoint)
    if not path.is_file() or not is_checkpoint(path):
        raise SSDDeployError(f"{path}: parity needs the training checkpoint (the PyTorch FP32 reference runs it). Note: ssd-bench parity CHECKPOINT")
    if config.batch_size < 1:
        raise SSDDeployError(f"--batch-size {config.batch_size}: expected 1 or more")
    if config.export_jobs < 1:
        raise SSDDeployError(f"--export-jobs {config.export_jobs}: expected 1 or more")
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    out = Path(out_dir)
    model, class_names, _ = load_checkpoint(path)
    dataset = _dataset(config, class_names, out)
    calibration = config.calibration.or_folder(Path(dataset.records[0].path).parent)
    planned, skipped = plan_variants(path, config.runtimes, config.precisions, config.device)
    planned = [p for p in planned if (p.runtime, p.precision) != ("pytorch", "fp32")]  # that is the reference
    log = tqdm.write if config.progress else (lambda _line: None)
    threads = torch.get_num_threads()
    options = {"onnxruntime": {"intra_op_threads": threads}, "openvino": {"threads": threads}}
    settings = ExportSettings(out / "cache", calibration, config.device, config.verify, jobs=config.export_jobs)
    variants = prepare_variants(path, planned, settings, options, log)

    sample, _ = preprocess([dataset[i][0] for i in range(min(config.batch_size, len(dataset)))], model.config.input_size, model.config.resize)
    reference = Variant("pytorch", "fp32", path)
    report = ParityReport(path.name, str(config.data or "generated shapes"), len(dataset), [], _tolerances(config),
                          [SkipRecord(path.name, s.runtime, s.precision, s.reason) for s in skipped],
                          machine=machine_info(), settings=_settings(config, threads))
    expected = _evaluate(reference, dataset, sample, model, config)
    report.rows.append(ParityRow("pytorch", "fp32", str(path), *expected.scores, 0.0, 0.0, None, 0.0, 0.0, reference=True))
    for variant in variants:
        try:
            variant.check_exported()
            evaluated = _evaluate(variant, dataset, sample, model, config)
        except SSDDeployError as error:
            report.failed.append(SkipRecord(path.name, variant.runtime, variant.precision, str(error)))
            log(f"{variant.label} failed: {error}")
            continue
        report.rows.append(_compare(variant, evaluated, expected, report.tolerances))
    return report


def _dataset(config: ParityConfig, class_names: list[str], out: Path) -> DetectionDataset:
    data = config.data
    if data is None:
        if list(class_names) != list(SHAPES_CLASS_NAMES):
            raise SSDDeployError(
                "parity without --data evaluates on generated shapes, but this model's classes are not the shapes "
                f"({', '.join(class_names[1:6])}...). Note: pass --data (a VOC folder, COCO .json or Open Images .csv)"
            )
        height, width = config.shapes_size
        data = out / "cache" / f"parity-shapes-{config.shapes_images}-{height}x{width}"
        ensure_shapes_dataset(data, config.shapes_images, seed=SHAPES_SEED, size=config.shapes_size, progress=config.progress)
    dataset = load_dataset(data, config.data_format if config.data else "voc", split=config.split, class_names=class_names,
                           images_dir=config.images_dir, skip_bad=config.skip_bad_data)
    if config.max_images is not None:
        if config.max_images < 1:
            raise SSDDeployError(f"--max-images {config.max_images}: expected 1 or more")
        dataset = DetectionDataset(dataset.records[: config.max_images], dataset.class_names, dataset.report, root=dataset.root)
    return dataset


def _evaluate(variant: Variant, dataset: DetectionDataset, sample: torch.Tensor, model, config: ParityConfig) -> Evaluated:
    """``variant`` over ``dataset``, and on the ``sample`` batch (see :class:`Evaluated`)."""
    detector = load(variant.path, runtime=variant.runtime, device=config.device, precision=variant.precision,
                    max_batch=config.batch_size, **variant.options)
    try:
        predictions, truths = predict_dataset(detector, dataset, config.batch_size, config.progress, desc=variant.label)
        result = evaluate_detections(predictions, truths, dataset.class_names, metrics=available_metrics(("voc07", "coco")))
        scores = (_to_points(result.map_voc07), _to_points(result.coco.get("AP")))
        padded = detector.infer(sample)
        decoded = _decoded(variant, detector, sample, model, config)
    finally:
        detector.close()
    return Evaluated(scores, decoded, padded)


def _decoded(variant: Variant, detector: Detector, sample: torch.Tensor, model, config: ParityConfig):
    """The network's outputs on ``sample``, decoded on the host: (boxes [N, P, 4], scores [N, P, C])."""
    if variant.runtime == "pytorch":
        loc, logits = detector.runner.infer_network(sample)  # its own network, cast as it runs it
        loc, logits = loc.float().cpu(), logits.float().cpu()
    elif variant.network_path is not None:
        companion = load(variant.network_path, runtime=variant.runtime, device=config.device, precision=variant.precision,
                         max_batch=config.batch_size, **variant.options)
        try:
            outputs = companion.infer(sample)
        finally:
            companion.close()
        loc, logits = (torch.from_numpy(outputs[name]).float() for name in NETWORK_OUTPUTS)
    else:
        return None
    sigmoid = model.config.score_function == "sigmoid"
    return decode_predictions(loc, logits, model.priors, sigmoid=sigmoid)


def _compare(variant: Variant, evaluated: Evaluated, expected: Evaluated, tolerances: dict[str, float]) -> ParityRow:
    """The row of ``variant``: its scores, raw outputs and detections against the reference's (``expected``)."""
    deltas = [None if value is None or ref is None else value - ref for value, ref in zip(evaluated.scores, expected.scores)]
    tolerance = tolerances[variant.precision]
    ok = all(delta is None or abs(delta) <= tolerance + 1e-9 for delta in deltas)
    box_diff = score_diff = None
    if evaluated.decoded is not None:
        raw = compare_decoded(expected.decoded, evaluated.decoded, RAW_REPORTED_ONLY)
        if not raw.ok:
            raise SSDDeployError(f"{variant.label}: network outputs on the sample batch: {'; '.join(raw.problems)}")
        box_diff, score_diff = raw.max_box_diff, raw.max_score_diff
    as_torch = [torch.from_numpy(np.asarray(evaluated.padded[name])) for name in NMS_OUTPUTS]
    reference = [torch.from_numpy(np.asarray(expected.padded[name])) for name in NMS_OUTPUTS]
    (found, of), (back, back_of) = mutual_recall(reference, as_torch, CONFIDENT)
    return ParityRow(variant.runtime, variant.precision, str(variant.path), *evaluated.scores, *deltas, tolerance, box_diff, score_diff,
                     found, of, back, back_of, ok=ok)


def _to_points(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else 100.0 * float(value)


def _tolerances(config: ParityConfig) -> dict[str, float]:
    tolerances = {**DEFAULT_TOLERANCES, **config.tolerances}
    for precision, value in tolerances.items():
        if value < 0:
            raise SSDDeployError(f"--tolerance-{precision} {value}: expected 0 or more mAP points")
    return tolerances


def _settings(config: ParityConfig, threads: int) -> dict[str, Any]:
    settings = {key: (str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value)
                for key, value in asdict(config).items()}
    settings["threads"] = threads
    settings.update(config.calibration.settings())
    return settings

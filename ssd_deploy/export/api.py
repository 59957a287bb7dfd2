"""``export_model``: a checkpoint in, a verified self-describing file out (what ``ssd-export`` runs).

    checkpoint -> SSD (plain data, never pickled code) -> [cast to fp16] -> GraphSpec.build:
      network + decode + NMS (the backend the format can hold) -> the format's writer (metadata inside)
      -> [int8: Calibration batches -> quantise the ONNX] -> runtimes.load (the loader users run)
      -> compare with the eager graph on sample images (ssd_deploy.compare) -> atomic write, or nothing
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..calibration import CalibrationBatches
from ..checkpoint import default_class_names, load_checkpoint
from ..compare import FP16_TOLERANCES, Comparison, float32_tolerances, verify, verify_recall
from ..deploy import CastNetwork
from ..errors import ExportError, SSDDeployError
from ..files import atomic_write
from ..models import SSD
from ..models.hub import resolve_model
from ..pipeline import DEFAULT_BATCH_SIZE
from .formats import ExportFormat, get_format
from .graph import GraphSpec
from .metadata import ExportMetadata, describe_model
from .onnx import read_model, simplifier_version
from .int8 import quantize_onnx
from .options import ExportOptions, check_options, check_usable
from .verify import load_runner_function, read_pictures, sample_batch

# Batch sizes run by --verify for a dynamic-batch file (a fixed-batch file runs its own size).
DYNAMIC_VERIFY_BATCHES = (3, 1)


@dataclass
class ExportResult:
    """The written file, its metadata, the verification (None with ``verify=False``), timing."""

    path: Path
    metadata: ExportMetadata
    verification: Comparison | None = None
    export_seconds: float = 0.0
    verify_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    unreadable_images: list[str] = field(default_factory=list)  # "<file>: <problem>" of calibration images left out


def default_output(checkpoint: Path, options: ExportOptions) -> Path:
    """``<checkpoint stem>[-fp16|-int8][-raw].<suffix>`` beside the checkpoint."""
    tags = ("" if options.precision == "fp32" else f"-{options.precision}") + ("" if options.nms else "-raw")
    return checkpoint.with_name(f"{checkpoint.stem}{tags}{get_format(options.format).suffix}")


def export_model(
    model: SSD | str | Path,
    output: str | Path | None = None,
    options: ExportOptions = ExportOptions(),
    class_names: list[str] | None = None,
) -> ExportResult:
    """Export a model (or a checkpoint file) with decoding and NMS in the graph.

    Args:
        model: an :class:`SSD`, or the path of an ssd-deploy checkpoint or torchvision SSD state dict.
        output: file to write (atomically); default :func:`default_output` for a checkpoint.
        options: see :class:`ExportOptions`.
        class_names: names with background at 0 (a checkpoint brings its own).

    Raises:
        SSDDeployError: bad options, an unreadable checkpoint, an unwritable output, a failed
            export, or a file that does not reproduce the PyTorch model (nothing is written).
    """
    plan, result = _prepare(model, output, options, class_names)
    return _write(plan, options, result)


def export_int8_from_float(
    model: SSD | str | Path,
    output: str | Path,
    float_onnx: str | Path,
    options: ExportOptions,
    class_names: list[str] | None = None,
) -> ExportResult:
    """The INT8 ONNX file :func:`export_model` writes with ``options``, made by quantising
    ``float_onnx`` instead of exporting the graph again (an ONNX export takes ~15 s on 2 cores).

    Args:
        model, output, options, class_names: as for :func:`export_model` (``options.precision`` int8).
        float_onnx: the float32 ONNX file :func:`export_model` wrote for the same model and options
            (precision fp32). Its metadata and opset must match, else nothing is written. The
            weights are not compared: the caller vouches that the file came from this very
            checkpoint (the export cache keys its files by the checkpoint's SHA-256); the INT8
            check of ``verify`` only catches grossly different weights.

    Raises:
        ExportError: naming ``float_onnx`` when it is not that file (the caller may then export
            in full). SSDDeployError: as :func:`export_model`.
    """
    plan, result = _prepare(model, output, options, class_names)
    source = _check_float_onnx(Path(float_onnx), options, plan.metadata)
    return _write(plan, options, result, source)


@dataclass(frozen=True)
class _Plan:
    """What one export writes: the network as exported (cast, on its device), the graph around
    it, the file's metadata, INT8 calibration batches (or None) and the example batch traced."""

    output: Path
    export_format: ExportFormat
    network: nn.Module
    spec: GraphSpec
    metadata: ExportMetadata
    calibration: CalibrationBatches | None
    example: torch.Tensor


def _prepare(
    model: SSD | str | Path, output: str | Path | None, options: ExportOptions, class_names: list[str] | None
) -> tuple[_Plan, ExportResult]:
    """Check everything that can be checked before exporting; the plan and the result to fill in."""
    model, names, output = _resolve(model, output, options, class_names)
    device = torch.device(options.device)
    model = model.eval()
    network: nn.Module = CastNetwork(model, torch.float16) if options.precision == "fp16" else model
    network = network.to(device)
    spec = GraphSpec(
        priors=model.priors.to(device),
        input_size=model.config.input_size,
        nms=options.nms,
        postprocess=options.postprocess,
        batch=None if options.dynamic_batch else options.batch,
        sigmoid=model.config.score_function == "sigmoid",
    )
    metadata = describe_model(
        model, names, options.postprocess, spec.nms, spec.batch, options.precision, options.format
    )
    if options.simplify:
        metadata = dataclasses.replace(metadata, simplifier=simplifier_version())
    calibration = _calibration(options, model.config.input_size, model.config.resize)
    example_size = max(options.batch, 2) if options.dynamic_batch else options.batch
    example = sample_batch(model.config.input_size, example_size).to(device)
    result = ExportResult(path=output, metadata=metadata)
    if calibration is not None and calibration.unreadable:
        result.unreadable_images = list(calibration.unreadable)
        result.notes.append(f"calibrated on {len(calibration.paths)} images; {len(calibration.unreadable)} unreadable left out (listed above)")
    if options.opencv_dnn and options.verify:
        result.notes.append("verified on ONNX Runtime and on OpenCV DNN: the counts are both runs' together")
    plan = _Plan(output, get_format(options.format), network, spec, metadata, calibration, example)
    return plan, result


def _resolve(
    model: SSD | str | Path, output: str | Path | None, options: ExportOptions, class_names: list[str] | None
) -> tuple[SSD, list[str], Path]:
    """The model (loaded when given a checkpoint), its class names and the output path, checked."""
    check_usable(options)  # an unknown format or a missing package fails before the checkpoint is read
    if isinstance(model, (str, Path)):
        checkpoint = resolve_model(model)
        # torchvision's weights by name: the file is written in the current folder, not in the cache
        beside = Path.cwd() / str(model) if checkpoint != Path(model) else checkpoint
        model, class_names, _ = load_checkpoint(checkpoint)
        output = output or default_output(beside, options)
        if Path(output).absolute() == checkpoint.absolute():  # e.g. --format torchscript --output model.pt
            raise ExportError(output, "is the checkpoint being exported. Note: give another output file name")
    if output is None:
        raise SSDDeployError("export_model: give an output path when exporting a model object")
    output = Path(output)
    check_options(options, output)
    names = list(class_names or default_class_names(model.config.num_classes))
    if len(names) != model.config.num_classes:
        raise SSDDeployError(f"export_model: {len(names)} class names for {model.config.num_classes} classes (background included)")
    return model, names, output


def _write(plan: _Plan, options: ExportOptions, result: ExportResult, float_onnx: Path | None = None) -> ExportResult:
    """Write the file atomically (see :func:`_write_checked`), with the files it needs beside it
    (an IR's ``.bin``) moved into place just before it."""
    companions = plan.export_format.companions

    def write(tmp: Path) -> None:
        try:
            _write_checked(tmp, plan, options, result, float_onnx)
            for made, final in zip(companions(tmp), companions(plan.output)):
                os.replace(made, final)
        finally:
            for made in companions(tmp):
                made.unlink(missing_ok=True)

    try:
        atomic_write(plan.output, write)
    except OSError as error:
        raise ExportError(plan.output, f"cannot write the file: {error.strerror or error}") from None
    return result


def _write_checked(tmp: Path, plan: _Plan, options: ExportOptions, result: ExportResult, float_onnx: Path | None) -> None:
    """Export into ``tmp`` (or quantise ``float_onnx`` into it), then verify it: a file that does
    not reproduce the PyTorch model raises, and ``atomic_write`` then leaves nothing behind."""
    start = time.perf_counter()
    if float_onnx is None:
        _run_writer(tmp, plan, options)
    if plan.calibration is not None and not plan.export_format.calibrates:
        _quantize(tmp, plan.calibration, options, result, source=float_onnx)
    result.export_seconds = time.perf_counter() - start
    if not options.verify:
        return
    start = time.perf_counter()
    result.verification = _verify(plan.export_format, tmp, plan.network, plan.spec, options, plan.calibration)
    result.verify_seconds = time.perf_counter() - start
    if not result.verification.ok:
        problems = "; ".join(result.verification.problems[:3])
        raise ExportError(
            plan.output,
            f"the exported file does not reproduce the PyTorch model ({problems}). "
            "Nothing was written. Note: --no-verify writes it anyway",
        )


def _run_writer(tmp: Path, plan: _Plan, options: ExportOptions) -> None:
    export_format = plan.export_format
    extra = {name: getattr(options, name) for name in export_format.options}
    try:
        export_format.write(plan.network, plan.spec, plan.example, tmp, plan.metadata.to_strings(), **extra)
    except SSDDeployError:
        raise
    except Exception as error:  # exporter failures come as many exception types
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        raise ExportError(plan.output, f"{export_format.name} export failed: {first}") from error


def _check_float_onnx(path: Path, options: ExportOptions, metadata: ExportMetadata) -> Path:
    """``path`` if it is the float32 ONNX export of the same model and settings as ``metadata``
    (architecture, classes, thresholds, batch, opset; not the weights: see :func:`export_int8_from_float`)."""
    if options.precision != "int8":
        raise SSDDeployError(f"export_int8_from_float: {path} is only for INT8 exports (options.precision int8)")
    model = read_model(path)
    found = {prop.key: prop.value for prop in model.metadata_props}
    wanted = dataclasses.replace(metadata, precision="fp32").to_strings()
    differing = sorted(key for key in wanted.keys() | found.keys() if wanted.get(key) != found.get(key))
    opset = {entry.domain: entry.version for entry in model.opset_import}.get("", 0)
    if opset != options.opset:
        differing.append(f"opset {opset}, not {options.opset}")
    if differing:
        raise ExportError(path, f"not the float32 export of this model with these settings (differs in: {', '.join(differing)})")
    return path


def _calibration(options: ExportOptions, input_size: tuple[int, int], resize: str) -> CalibrationBatches | None:
    """The calibration batches of an INT8 export (read before exporting, so a bad folder fails fast)."""
    if options.precision != "int8":
        return None
    batch = DEFAULT_BATCH_SIZE if options.dynamic_batch else options.batch  # a fixed-batch graph takes only its own size
    return options.calibration.batches(input_size, batch, resize)


def _quantize(path: Path, calibration: CalibrationBatches, options: ExportOptions, result: ExportResult, source: Path | None = None) -> None:
    """Replace the float ONNX file at ``path`` by its INT8 version (or write at ``path`` the INT8
    version of the float file ``source``, which is left as it is)."""
    quantizer = options.int8_quantizer
    if quantizer == "auto":
        quantizer = "nncf" if importlib.util.find_spec("nncf") else "ort"
        result.notes.append(f"INT8 quantizer: {quantizer}")
    float_file = source or path.with_name(path.name + ".fp32.onnx")
    if source is None:
        path.replace(float_file)
    try:
        quantize_onnx(float_file, path, calibration, quantizer, options.int8_method, options.int8_head)
    except SSDDeployError:
        raise
    except Exception as error:  # the quantisers raise many exception types
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        raise ExportError(result.path, f"INT8 quantisation ({quantizer}) failed: {first}") from error
    finally:
        if source is None:
            float_file.unlink(missing_ok=True)


def _verify(
    export_format: ExportFormat,
    path: Path,
    network: nn.Module,
    spec: GraphSpec,
    options: ExportOptions,
    calibration: CalibrationBatches | None = None,
) -> Comparison:
    runs = {"": load_runner_function(path, options.device)}
    if options.opencv_dnn:  # the file is made for OpenCV DNN: it must reproduce the model there too
        runs["on OpenCV DNN: "] = load_runner_function(path, "cpu", runtime="opencv")
    sizes = DYNAMIC_VERIFY_BATCHES if spec.batch is None else (spec.batch,)
    pictures = read_pictures(options.verify_images)
    batches = [sample_batch(spec.input_size, size, pictures, seed=size) for size in sizes]
    if calibration is not None:
        # The recall check counts detections, so it needs many: up to 32 of the user's images
        # (the calibration set unless --verify-images is given), which the model knows.
        if not pictures:
            pictures = read_pictures(calibration.paths[:: max(1, len(calibration.paths) // 32)][:32])
        size = spec.batch or DEFAULT_BATCH_SIZE
        batches = [sample_batch(spec.input_size, size, pictures[i:] + pictures[:i]) for i in range(0, max(len(pictures), 1), size)]
        return verify_recall(spec.build(network), runs[""], batches, options.postprocess, spec.nms)
    tolerances = FP16_TOLERANCES if options.precision == "fp16" else float32_tolerances(network, spec.priors, batches, spec.sigmoid)
    post = options.postprocess
    comparisons = []
    for where, run in runs.items():
        comparison = verify(spec.build(network), run, batches, spec.nms, tolerances, post.score_threshold, post.iou_threshold)
        comparison.problems = [where + problem for problem in comparison.problems]
        comparisons.append(comparison)
    return functools.reduce(Comparison.merge, comparisons)

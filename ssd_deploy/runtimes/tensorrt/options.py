"""How an engine is built: :class:`EngineOptions`, the optimisation profile, and the precision mode.

Pure Python (no ``tensorrt``): the options are checked and resolved on any machine, so the engine
cache is keyed on resolved options (see :mod:`.cache`). The precision table is in the package
docstring (:mod:`ssd_deploy.runtimes.tensorrt`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ...calibration import Calibration, as_calibration
from ...errors import RuntimeUnavailableError, SSDDeployError
from ...export.metadata import ExportMetadata
from ...pipeline import DEFAULT_BATCH_SIZE

RUNTIME = "tensorrt"
ENGINE_PRECISIONS = ("fp32", "fp16", "bf16", "int8")
DEFAULT_MAX_BATCH = DEFAULT_BATCH_SIZE  # the Detector's default max_batch


@dataclass(frozen=True)
class EngineOptions:
    """How to build an engine from an exported ONNX (see the module docstring for nms and precision).

    Attributes:
        precision: ``fp32``, ``fp16``, ``bf16`` or ``int8``: the engine's arithmetic (the contract's
            inputs and outputs stay float32 / int32).
        profile_min_batch, profile_opt_batch, profile_max_batch: batch sizes (images) of the
            optimisation profile: the engine runs any batch from min to max and is tuned for opt.
            None: the ONNX's batch when it is fixed; for a dynamic batch 1, max and
            ``DEFAULT_MAX_BATCH`` (named apart from ``load(max_batch=...)``, which sets the
            Detector's batches and is not passed on).
        workspace_mib: most scratch GPU memory, in MiB, a layer's implementation may use.
        efficient_nms: append TensorRT's EfficientNMS plugin to an ONNX exported without NMS
            (otherwise the ONNX runs as exported, its own NMS included).
        calibration: images for INT8 calibration (int8 only): a :class:`~ssd_deploy.calibration.Calibration`
            (folder and count) or a folder.
        calibration_batch: images per calibration batch (int8 only); None: the ONNX's fixed batch,
            else ``DEFAULT_BATCH_SIZE`` within the profile.
    """

    precision: str = "fp32"
    profile_min_batch: int | None = None
    profile_opt_batch: int | None = None
    profile_max_batch: int | None = None
    workspace_mib: int = 1024
    efficient_nms: bool = False
    calibration: Calibration = Calibration()
    calibration_batch: int | None = None

    def __post_init__(self) -> None:
        if self.precision not in ENGINE_PRECISIONS:
            raise SSDDeployError(f"EngineOptions: precision {self.precision!r}. Note: expected one of {', '.join(ENGINE_PRECISIONS)}")
        for name in ("profile_min_batch", "profile_opt_batch", "profile_max_batch", "calibration_batch"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise SSDDeployError(f"EngineOptions: {name} {value!r}. Note: expected a whole number of images, 1 or more")
        if self.workspace_mib < 1:
            raise SSDDeployError(f"EngineOptions: workspace_mib {self.workspace_mib}. Note: expected 1 or more")
        object.__setattr__(self, "calibration", as_calibration(self.calibration))


def resolve_options(metadata: ExportMetadata, options: EngineOptions, source: object = "EngineOptions") -> EngineOptions:
    """``options`` with the profile and calibration batches filled in for this ONNX, checked.

    Engines built from equal resolved options are equal, so the cache is keyed on these.

    Args:
        metadata: the ONNX's metadata. options: as given. source: names the ONNX in errors.

    Raises:
        SSDDeployError: batches out of order or unlike a fixed batch, ``efficient_nms`` on an ONNX
            with NMS, int8 without calibration images.
    """
    low, opt, high = profile_batches(metadata, options, source)
    resolved = dataclasses.replace(options, profile_min_batch=low, profile_opt_batch=opt, profile_max_batch=high)
    if options.efficient_nms and metadata.nms:
        raise SSDDeployError(
            f"{source}: efficient_nms appends EfficientNMS to decoded outputs, but this ONNX already has NMS. "
            "Note: leave efficient_nms off (TensorRT runs its NonMaxSuppression), or export with nms=False"
        )
    if options.precision != "int8" or metadata.precision == "int8":  # a Q/DQ ONNX carries its scales
        return resolved
    if options.calibration.folder is None:
        raise SSDDeployError(
            f"{source}: int8 needs calibration images. Note: pass calibration=FOLDER (a few hundred typical images)"
        )
    calibration = options.calibration_batch
    if calibration is None:
        calibration = metadata.batch or min(max(DEFAULT_BATCH_SIZE, low), high)
    if not low <= calibration <= high:
        raise SSDDeployError(f"{source}: calibration_batch {calibration}. Note: expected a batch the engine takes, {low} to {high}")
    return dataclasses.replace(resolved, calibration_batch=calibration)


def profile_batches(metadata: ExportMetadata, options: EngineOptions, source: object) -> tuple[int, int, int]:
    given = (options.profile_min_batch, options.profile_opt_batch, options.profile_max_batch)
    if metadata.batch is not None:
        if any(value not in (None, metadata.batch) for value in given):
            raise SSDDeployError(
                f"{source}: profile batches (min, opt, max) = {given}, but the ONNX takes exactly {metadata.batch} images. "
                "Note: leave them unset, or export with dynamic_batch=True"
            )
        return metadata.batch, metadata.batch, metadata.batch
    low = given[0] or 1
    high = given[2] or max(DEFAULT_MAX_BATCH, low, given[1] or 0)
    opt = given[1] or high
    if not low <= opt <= high:
        raise SSDDeployError(f"{source}: profile batches (min, opt, max) = ({low}, {opt}, {high}). Note: expected min <= opt <= max")
    return low, opt, high


def profile_shapes(metadata: ExportMetadata, options: EngineOptions) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) shapes [N, 3, H, W] of the input ``images`` for the optimisation profile."""
    height, width = metadata.input_size
    return tuple((batch, 3, height, width) for batch in profile_batches(metadata, options, "EngineOptions"))  # type: ignore[return-value]


def precision_mode(onnx_precision: str, precision: str, weakly_typed: bool) -> str:
    """How an engine of ``precision`` is built from an ONNX of ``onnx_precision`` (module docstring).

    Args:
        weakly_typed: the TensorRT picks precisions from builder flags (10.x; False for 11).

    Returns:
        ``as-exported`` (the ONNX's own types), ``fp16-flag``, ``bf16-flag`` or ``int8-calibration``.
    """
    if onnx_precision == precision:
        return "as-exported"
    if onnx_precision != "fp32":
        raise SSDDeployError(
            f"precision {precision}: the ONNX computes in {onnx_precision}. Note: ask for precision {onnx_precision}, "
            "or build from an fp32 export"
        )
    if not weakly_typed:
        hint = {
            "fp16": "export the ONNX with fp16 (ssd-export --fp16)",
            "bf16": "export the ONNX in bf16",
            "int8": "TensorRT 11 removed implicit INT8 calibration, so calibration images cannot be used; export an "
            "INT8 Q/DQ ONNX (ssd-export --int8 --int8-quantizer ort --calib FOLDER) and build from that file, or use TensorRT 10",
        }[precision]
        raise RuntimeUnavailableError(
            RUNTIME, f"precision {precision} from an fp32 ONNX: this TensorRT builds strongly typed networks only. Note: {hint}"
        )
    return "int8-calibration" if precision == "int8" else f"{precision}-flag"


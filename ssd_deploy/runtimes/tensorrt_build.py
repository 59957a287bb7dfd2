"""Building TensorRT engines from exported ONNX: options, profiles, precision, INT8 calibration, cache keys.

    model.onnx ─ build_engine (parse, optimisation profile, precision, [EfficientNMS]) ─ x.engine + x.engine.json
        └─ TensorRTRunner: check the sidecar against this TensorRT and GPU ─ deserialise ─ execute_async_v3

``open_runner("model.onnx")`` looks the engine up in a cache keyed by the ONNX bytes, the build
options, the TensorRT version and the GPU (name and compute capability), builds it on a miss, and
loads it; ``open_runner("x.engine")`` loads an engine built before. A serialised engine cannot hold
our metadata, so it lives in a JSON sidecar ``<engine>.json`` beside it.

NMS (``EngineOptions.nms``):

- ``graph``: the engine computes what the ONNX computes. An ONNX exported with NMS has the standard
  ``NonMaxSuppression`` operator, which TensorRT's parser maps to its own NMS layer (INMSLayer); one
  exported without NMS gives decoded boxes and scores (the Detector then runs NMS on the host).
  The graph's NonMaxSuppression has one batch item per (image, class) holding that class's best
  ``topk_candidates`` (400) boxes. INMSLayer considers at most 5000 boxes per batch item (2000 on
  SM 5.3 and 6.2 GPUs) and silently drops the rest, and TensorRT's TopK takes k <= 3840: both are
  checked before building (:func:`check_limits`), so a larger ``topk_candidates`` (or an SSD300
  export whose 8,732 priors all enter TopK) is refused instead of truncated.
- ``efficient``: for an ONNX exported without NMS, TensorRT's ``EfficientNMS_TRT`` plugin is
  appended to the parsed network (background class 0, no score activation: the scores are already
  softmaxed) and its outputs renamed to the contract's ``num_detections``, ``boxes``, ``scores``,
  ``labels``. The plugin differs from our NMS only at the margins: it keeps the best 4096
  candidates over all classes (we keep ``topk_candidates`` per class) and suppresses at IoU >= the
  threshold (we suppress above it).

Precision: the engine's arithmetic against the ONNX's (``ssd-export --fp16`` makes an fp16 ONNX).

    asked      ONNX fp32                                     ONNX of the asked precision
    fp32       as exported (TF32 off)                        -
    fp16/bf16  TensorRT 10: FP16/BF16 flag; 11: error        as exported (strongly typed network)
    int8       TensorRT 10: INT8 flag + entropy calibration  as exported: a Q/DQ ONNX (explicit
               from images; 11: error (implicit INT8         quantisation, ``ssd-export --int8``);
               calibration was removed: use an INT8 ONNX)    symmetric int8 Q/DQ only (ssd-export
                                                             --int8-quantizer ort), checked before parsing

Any other pair (an fp16 ONNX asked for fp32, ...) is an error naming the ONNX's precision.

Engines run only on the TensorRT version and GPU they were built for: a mismatch is reported from
the sidecar before deserialising. ``tensorrt`` is imported only inside functions, so this module
imports (and its pure parts run) on machines without it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import onnx
import torch

from ..calibration import CalibrationBatches
from ..errors import ExportError, RuntimeUnavailableError, SSDDeployError
from ..export.formats import read_metadata
from ..export.int8 import check_symmetric_qdq
from ..export.metadata import INPUT_NAME, NMS_OUTPUTS, ExportMetadata
from ..files import atomic_write, file_sha256

RUNTIME = "tensorrt"
ENGINE_PRECISIONS = ("fp32", "fp16", "bf16", "int8")
NMS_MODES = ("graph", "efficient")
DEFAULT_MAX_BATCH = 8  # the Detector's default max_batch
DEFAULT_CALIBRATION_BATCH = 8
EFFICIENT_NMS = ("EfficientNMS_TRT", "1")  # plugin name, version
# Bump when build_engine changes what it builds, so cached engines of older code are not reused.
BUILD_RECIPE = 1
SIDECAR_FORMAT = "ssd-deploy-tensorrt-engine"
MIB = 1 << 20
# TensorRT's operator limits (operator reference, TopK and NMS): k of a TopK, and boxes one batch
# item of the NMS layer considers (2000 on SM 5.3 and 6.2 GPUs; more are silently dropped).
TOPK_LIMIT = 3840
NMS_BOX_LIMIT = 5000
NMS_BOX_LIMIT_BY_SM = {"5.3": 2000, "6.2": 2000}
INSTALL_HINT = "Note: pip install 'ssd-deploy[gpu]' (TensorRT 10 or newer) on a machine with an NVIDIA GPU"


# ---------------------------------------------------------------------------------------------
# Availability and imports


def import_problem(error: ImportError) -> str:
    if isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] == "tensorrt":
        return "tensorrt is not installed"
    return f"tensorrt is installed but cannot be imported ({str(error).splitlines()[0][:200]})"


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module, or RuntimeUnavailableError saying why it cannot be imported."""
    try:
        import tensorrt as trt
    except ImportError as error:
        raise RuntimeUnavailableError(RUNTIME, f"{import_problem(error)}. {INSTALL_HINT}") from None
    return trt


@functools.cache
def trt_logger(trt: ModuleType) -> Any:
    """One logger per process (warnings and errors to stderr), with TensorRT's plugins registered
    (building with EfficientNMS and deserialising an engine that holds it both need them)."""
    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")
    return logger


def weakly_typed(trt: ModuleType) -> bool:
    """Whether this TensorRT still picks layer precisions from builder flags (10.x; 11 removed it)."""
    return hasattr(trt.BuilderFlag, "FP16")


def parse_device(device: str) -> int | None:
    """The CUDA index of ``device`` (``cuda`` -> None: the current device; ``cuda:N`` -> N).

    Raises:
        RuntimeUnavailableError: for ``cpu`` (TensorRT runs only on NVIDIA GPUs).
        SSDDeployError: for anything else.
    """
    text = str(device).strip().lower()
    if text == "cpu":
        raise RuntimeUnavailableError(
            RUNTIME,
            "device cpu: TensorRT runs only on NVIDIA GPUs. Note: pass device='cuda' (or 'cuda:N'), "
            "or use a CPU runtime (onnxruntime, openvino, torchscript)",
        )
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise SSDDeployError(f"device {device!r}: not a TensorRT device. Note: expected cuda or cuda:N")
    return None if match.group(1) is None else int(match.group(1))


def cuda_index(device: str) -> int:
    """The CUDA index of ``device`` on this machine, or RuntimeUnavailableError saying why not."""
    index = parse_device(device)
    if not torch.cuda.is_available():
        raise RuntimeUnavailableError(RUNTIME, f"device {device}: no CUDA device (torch.cuda.is_available() is False)")
    index = torch.cuda.current_device() if index is None else index
    if index >= torch.cuda.device_count():
        raise RuntimeUnavailableError(RUNTIME, f"device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return index


def gpu_identity(index: int) -> tuple[str, str]:
    """(name, compute capability as ``"major.minor"``) of CUDA device ``index``."""
    major, minor = torch.cuda.get_device_capability(index)
    return torch.cuda.get_device_name(index), f"{major}.{minor}"


# ---------------------------------------------------------------------------------------------
# Build options, optimisation profile, precision


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
        nms: ``graph`` (the ONNX as exported) or ``efficient`` (EfficientNMS plugin appended to an
            ONNX exported without NMS).
        calibration_images: folder of images for INT8 calibration (int8 only).
        calibration_batch: images per calibration batch (int8 only); None: the ONNX's fixed batch,
            else ``DEFAULT_CALIBRATION_BATCH`` within the profile.
        calibration_count: most images used for calibration (spread over the folder, searched
            recursively; see :class:`ssd_deploy.calibration.CalibrationBatches`).
    """

    precision: str = "fp32"
    profile_min_batch: int | None = None
    profile_opt_batch: int | None = None
    profile_max_batch: int | None = None
    workspace_mib: int = 1024
    nms: str = "graph"
    calibration_images: Path | None = None
    calibration_batch: int | None = None
    calibration_count: int = 512

    def __post_init__(self) -> None:
        if self.precision not in ENGINE_PRECISIONS:
            raise SSDDeployError(f"EngineOptions: precision {self.precision!r}. Note: expected one of {', '.join(ENGINE_PRECISIONS)}")
        if self.nms not in NMS_MODES:
            raise SSDDeployError(f"EngineOptions: nms {self.nms!r}. Note: expected one of {', '.join(NMS_MODES)}")
        for name in ("profile_min_batch", "profile_opt_batch", "profile_max_batch", "calibration_batch"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise SSDDeployError(f"EngineOptions: {name} {value!r}. Note: expected a whole number of images, 1 or more")
        if self.workspace_mib < 1 or self.calibration_count < 1:
            raise SSDDeployError(
                f"EngineOptions: workspace_mib {self.workspace_mib}, calibration_count {self.calibration_count}. Note: expected 1 or more"
            )
        if self.calibration_images is not None:
            object.__setattr__(self, "calibration_images", Path(self.calibration_images))


def resolve_options(metadata: ExportMetadata, options: EngineOptions, source: object = "EngineOptions") -> EngineOptions:
    """``options`` with the profile and calibration batches filled in for this ONNX, checked.

    Engines built from equal resolved options are equal, so the cache is keyed on these.

    Args:
        metadata: the ONNX's metadata. options: as given. source: names the ONNX in errors.

    Raises:
        SSDDeployError: batches out of order or unlike a fixed batch, ``nms='efficient'`` on an ONNX
            with NMS, int8 without calibration images.
    """
    low, opt, high = profile_batches(metadata, options, source)
    resolved = dataclasses.replace(options, profile_min_batch=low, profile_opt_batch=opt, profile_max_batch=high)
    if options.nms == "efficient" and metadata.nms:
        raise SSDDeployError(
            f"{source}: nms='efficient' appends EfficientNMS to decoded outputs, but this ONNX already has NMS. "
            "Note: use nms='graph' (TensorRT runs its NonMaxSuppression), or export with nms=False"
        )
    if options.precision != "int8" or metadata.precision == "int8":  # a Q/DQ ONNX carries its scales
        return resolved
    if options.calibration_images is None:
        raise SSDDeployError(
            f"{source}: int8 needs calibration images. Note: pass calibration_images=FOLDER (a few hundred typical images)"
        )
    calibration = options.calibration_batch
    if calibration is None:
        calibration = metadata.batch or min(max(DEFAULT_CALIBRATION_BATCH, low), high)
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


# ---------------------------------------------------------------------------------------------
# TensorRT's operator limits


def nms_box_limit(compute_capability: str) -> int:
    """Most boxes one batch item of TensorRT's NMS layer considers on a GPU of ``"major.minor"``."""
    return NMS_BOX_LIMIT_BY_SM.get(compute_capability, NMS_BOX_LIMIT)


def limit_problems(model: onnx.ModelProto, compute_capability: str, topk_candidates: int) -> list[str]:
    """What in ``model`` exceeds TensorRT's TopK and NMS limits on a GPU of ``compute_capability``.

    TopK's k is read from its constant input. The boxes per NMS batch item are dimension 1 of
    NonMaxSuppression's boxes [B, boxes, 4], from ONNX shape inference; where it cannot tell,
    ``topk_candidates`` (the most the export puts in one group).

    Returns:
        One ``"<op> <node>: ..."`` line per node beyond a limit (empty: within every limit).
    """
    constants = {tensor.name: tensor for tensor in model.graph.initializer}
    constants.update({n.output[0]: n.attribute[0].t for n in model.graph.node if n.op_type == "Constant" and n.attribute})
    problems = []
    for node in model.graph.node:
        if node.op_type == "TopK" and node.input[1] in constants:
            k = int(onnx.numpy_helper.to_array(constants[node.input[1]]).max())
            if k > TOPK_LIMIT:
                problems.append(f"TopK {node.name}: k {k} > {TOPK_LIMIT}")
    limit = nms_box_limit(compute_capability)
    for node, boxes in _nms_boxes_per_item(model, topk_candidates):
        if boxes > limit:
            problems.append(
                f"NonMaxSuppression {node}: {boxes} boxes per batch item > {limit} (GPU compute capability {compute_capability})"
            )
    return problems


def _nms_boxes_per_item(model: onnx.ModelProto, fallback: int) -> list[tuple[str, int]]:
    """(node name, boxes per batch item) of every NonMaxSuppression, ``fallback`` where unknown."""
    nodes = [node for node in model.graph.node if node.op_type == "NonMaxSuppression"]
    if not nodes:
        return []
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes = {value.name: value.type.tensor_type.shape.dim for value in [*inferred.graph.value_info, *inferred.graph.input]}
    found = []
    for node in nodes:
        dims = shapes.get(node.input[0], [])
        found.append((node.name, dims[1].dim_value if len(dims) == 3 and dims[1].dim_value > 0 else fallback))
    return found


def check_limits(onnx_path: str | Path, metadata: ExportMetadata, compute_capability: str) -> None:
    """Refuse an ONNX that TensorRT would reject (TopK) or silently truncate (NMS) on this GPU.

    Raises:
        SSDDeployError: naming the nodes and the export setting to lower.
    """
    model = onnx.load(str(onnx_path), load_external_data=False)
    problems = limit_problems(model, compute_capability, metadata.topk_candidates)
    if problems:
        limit = min(TOPK_LIMIT, nms_box_limit(compute_capability))
        raise SSDDeployError(
            f"{onnx_path}: beyond TensorRT's limits: {'; '.join(problems[:3])}. Note: export with topk_candidates "
            f"<= {limit} (ssd-export --topk {limit}; it is {metadata.topk_candidates}), or without NMS and nms='efficient'"
        )


# ---------------------------------------------------------------------------------------------
# Engine cache


def _onnx_digest(onnx: bytes | str) -> str:
    if isinstance(onnx, (bytes, bytearray, memoryview)):
        return hashlib.sha256(onnx).hexdigest()
    if not re.fullmatch(r"[0-9a-f]{64}", onnx):
        raise SSDDeployError(f"engine cache: {onnx!r} is not a sha256. Note: pass the ONNX bytes or file_sha256(path)")
    return onnx


def options_record(options: EngineOptions) -> dict[str, Any]:
    """``options`` as plain JSON data; the calibration settings only when they matter (int8)."""
    record = dataclasses.asdict(options)
    if options.precision == "int8":
        record["calibration_images"] = str(Path(options.calibration_images).resolve()) if options.calibration_images else None
    else:
        for name in ("calibration_images", "calibration_batch", "calibration_count"):
            del record[name]
    return record


def _sha256_json(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def engine_cache_key(onnx: bytes | str, options: EngineOptions, trt_version: str, gpu_name: str, compute_capability: str) -> str:
    """Hex sha256 naming the engine built from ``onnx`` with ``options`` by this TensorRT on this GPU.

    Args:
        onnx: the ONNX file's bytes, or their hex sha256 (:func:`file_sha256`).
        options: as returned by :func:`resolve_options` (so defaults and equal explicit values
            share an engine). Calibration settings count only for int8.
        trt_version: ``tensorrt.__version__``. gpu_name, compute_capability: :func:`gpu_identity`.
    """
    return _sha256_json(
        {
            "recipe": BUILD_RECIPE,
            "onnx_sha256": _onnx_digest(onnx),
            "options": options_record(options),
            "tensorrt_version": trt_version,
            "gpu_name": gpu_name,
            "compute_capability": compute_capability,
        }
    )


def calibration_cache_key(onnx: bytes | str, options: EngineOptions, trt_version: str) -> str:
    """Hex sha256 naming an INT8 calibration cache: same ONNX, images and TensorRT, any GPU or profile."""
    record = options_record(options)
    return _sha256_json(
        {
            "recipe": BUILD_RECIPE,
            "onnx_sha256": _onnx_digest(onnx),
            "tensorrt_version": trt_version,
            "calibration": [record.get(name) for name in ("calibration_images", "calibration_batch", "calibration_count")],
        }
    )


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ssd-deploy/engines`` (``~/.cache/ssd-deploy/engines``): one place per user, so
    engines are shared between projects and a read-only model folder still works."""
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "ssd-deploy" / "engines"


def engine_cache_path(cache_dir: str | Path, onnx_path: str | Path, key: str) -> Path:
    """``<cache_dir>/<onnx stem>-<first 16 hex of key>.engine`` (its sidecar adds ``.json``)."""
    return Path(cache_dir) / f"{Path(onnx_path).stem}-{key[:16]}.engine"


def sidecar_path(engine_path: str | Path) -> Path:
    """``<engine>.json``: our metadata and the facts the engine was built with."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


# ---------------------------------------------------------------------------------------------
# INT8 calibration

def entropy_calibrator(
    trt: ModuleType, make_batches: Callable[[], CalibrationBatches], batch_size: int, cache_path: Path, device: torch.device
) -> Any:
    """A ``trt.IInt8EntropyCalibrator2`` feeding ``make_batches()`` from ``device`` memory.

    The batches are made on the first ``get_batch`` only, so a build that finds the calibration
    cache never reads the images. An exception inside a callback would be swallowed by TensorRT:
    it is kept in ``calibrator.error`` for :func:`build_engine` to raise.
    """

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches_used = 0
            self.error: BaseException | None = None
            self._batches: Iterator[np.ndarray] | None = None
            self._device_batch: torch.Tensor | None = None  # alive while TensorRT reads it

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: Sequence[str]) -> list[int] | None:
            try:
                if self._batches is None:
                    self._batches = iter(make_batches())
                batch = next(self._batches, None)
                if batch is None:
                    return None
                self._device_batch = torch.from_numpy(batch).to(device)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)  # TensorRT reads it on its own stream
                self.batches_used += 1
                return [int(self._device_batch.data_ptr())]
            except Exception as error:  # noqa: BLE001 - re-raised by build_engine
                self.error = error
                return None

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            try:
                atomic_write(cache_path, lambda tmp: tmp.write_bytes(bytes(cache)))
            except Exception as error:  # noqa: BLE001 - re-raised by build_engine
                self.error = error

    return EntropyCalibrator()


# ---------------------------------------------------------------------------------------------
# Sidecar: our metadata and the build facts


def engine_record(
    metadata: ExportMetadata,
    options: EngineOptions,
    trt_version: str,
    gpu_name: str,
    compute_capability: str,
    onnx_path: str | Path,
    onnx_sha256: str,
) -> dict[str, Any]:
    """The sidecar's content for an engine built from an ONNX of ``metadata`` with resolved ``options``.

    ``metadata`` is the ONNX's with ``format`` ``tensorrt``, the engine's precision, and NMS on when
    EfficientNMS was appended.
    """
    engine_metadata = dataclasses.replace(
        metadata, format=RUNTIME, precision=options.precision, nms=metadata.nms or options.nms == "efficient"
    )
    low, opt, high = profile_shapes(metadata, options)
    return {
        "format": SIDECAR_FORMAT,
        "format_version": 1,
        "metadata": engine_metadata.to_strings(),
        "tensorrt_version": trt_version,
        "gpu_name": gpu_name,
        "compute_capability": compute_capability,
        "build_options": options_record(options),
        "profile": {"min": list(low), "opt": list(opt), "max": list(high)},
        "onnx": {"path": str(onnx_path), "sha256": onnx_sha256},
    }


def read_engine_record(engine_path: str | Path) -> tuple[dict[str, Any], ExportMetadata]:
    """The sidecar of ``engine_path`` and the engine's metadata.

    Raises:
        SSDDeployError: no sidecar (an engine ssd-deploy did not build), or a malformed one.
    """
    engine_path = Path(engine_path)
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise SSDDeployError(
            f"{engine_path}: no {path.name} beside it (the engine's metadata). Note: ssd-deploy runs engines it built; "
            "open the exported .onnx with runtime tensorrt, or call build_engine"
        )
    try:
        record = json.loads(path.read_text())
        if record.get("format") != SIDECAR_FORMAT:
            raise ValueError(f"format {record.get('format')!r}")
        for key in ("tensorrt_version", "gpu_name", "compute_capability", "metadata"):
            record[key]  # noqa: B018 - presence check
    except (OSError, ValueError, KeyError, AttributeError) as error:
        raise SSDDeployError(f"{path}: not an ssd-deploy engine sidecar ({error!r}). Note: rebuild the engine") from None
    return record, ExportMetadata.from_strings(record["metadata"], path)


def check_engine_matches(engine_path: str | Path, record: dict[str, Any], trt_version: str, gpu_name: str, compute_capability: str) -> None:
    """Raise SSDDeployError unless the engine was built by this TensorRT for this GPU (name and
    compute capability): TensorRT engines do not move between versions or GPU models."""
    built = (record["tensorrt_version"], record["gpu_name"], record["compute_capability"])
    here = (trt_version, gpu_name, compute_capability)
    if built != here:
        raise SSDDeployError(
            f"{engine_path}: built with TensorRT {built[0]} for GPU {built[1]} (compute capability {built[2]}); "
            f"this machine has TensorRT {here[0]} / GPU {here[1]} (compute capability {here[2]}). "
            "Note: rebuild it (delete the file, or open the exported .onnx with runtime tensorrt, which builds and "
            "caches an engine for this machine)"
        )


# ---------------------------------------------------------------------------------------------
# Building


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    options: EngineOptions = EngineOptions(),
    device: str = "cuda",
    calibration_cache: str | Path | None = None,
) -> Path:
    """Build a TensorRT engine from an exported ONNX; write it and its sidecar atomically.

    Args:
        onnx_path: a file from ``ssd-export --format onnx``.
        engine_path: where to write the serialised engine (``<engine>.json`` goes beside it).
        options: see :class:`EngineOptions`.
        device: ``cuda`` or ``cuda:N``: the GPU to build for.
        calibration_cache: int8 only; the calibration cache to reuse or write
            (default ``<engine_path>`` with suffix ``.calib``).

    Returns:
        ``engine_path``.

    Raises:
        ExportError: not an ssd-deploy ONNX, an INT8 ONNX with asymmetric Q/DQ, or TensorRT's parser
            rejects it (naming the node).
        RuntimeUnavailableError: no TensorRT or GPU, or a precision this TensorRT cannot build (int8
            from an fp32 ONNX on TensorRT 11).
        SSDDeployError: inconsistent options, a TopK or NMS beyond TensorRT's limits, calibration
            failure, or the build fails.
    """
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    metadata = read_metadata(onnx_path)
    trt = import_tensorrt()
    mode = precision_mode(metadata.precision, options.precision, weakly_typed(trt))  # before asking for calibration images
    options = resolve_options(metadata, options, onnx_path)
    if metadata.precision == "int8":
        check_symmetric_qdq(onnx_path)
    index = cuda_index(device)
    check_limits(onnx_path, metadata, gpu_identity(index)[1])
    calibration_cache = Path(calibration_cache) if calibration_cache else engine_path.with_suffix(".calib")
    logger = trt_logger(trt)
    with torch.cuda.device(index):
        builder = trt.Builder(logger)
        network, parser = _parse_onnx(
            trt, builder, logger, onnx_path, strongly_typed=mode == "as-exported" and metadata.precision != "fp32"
        )
        if options.nms == "efficient":
            _append_efficient_nms(trt, network, metadata, onnx_path, set_output_types=mode != "as-exported")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib * MIB)
        profile = builder.create_optimization_profile()
        profile.set_shape(INPUT_NAME, *profile_shapes(metadata, options))
        config.add_optimization_profile(profile)
        calibrator = _set_precision(trt, builder, config, metadata, options, mode, calibration_cache, torch.device("cuda", index))
        plan = builder.build_serialized_network(network, config)
        del parser  # holds the weights until the network is built
    if calibrator is not None and calibrator.error is not None:
        raise SSDDeployError(f"{options.calibration_images}: INT8 calibration failed: {calibrator.error}") from calibrator.error
    if plan is None:
        raise SSDDeployError(
            f"{onnx_path}: TensorRT could not build an engine (its log above says why). Note: try more workspace_mib, or another precision"
        )
    atomic_write(engine_path, lambda tmp: tmp.write_bytes(memoryview(plan)))
    name, capability = gpu_identity(index)
    record = engine_record(metadata, options, trt.__version__, name, capability, onnx_path, file_sha256(onnx_path))
    atomic_write(sidecar_path(engine_path), lambda tmp: tmp.write_text(json.dumps(record, indent=2)))
    return engine_path


def _parse_onnx(trt: ModuleType, builder: Any, logger: Any, onnx_path: Path, strongly_typed: bool) -> tuple[Any, Any]:
    """A network parsed from ``onnx_path`` and its parser (which must outlive the build)."""
    flags = 0
    if strongly_typed and weakly_typed(trt):  # TensorRT 11 networks are always strongly typed
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)).strip() for i in range(parser.num_errors)]
        raise ExportError(
            onnx_path,
            f"TensorRT {trt.__version__}'s ONNX parser rejects it: {' | '.join(errors[:3]) or 'no details'}. "
            "Note: expected an ssd-export ONNX (opset >= 17); a newer TensorRT may support the operator",
        )
    return network, parser


def _append_efficient_nms(trt: ModuleType, network: Any, metadata: ExportMetadata, onnx_path: Path, set_output_types: bool) -> None:
    """Replace the decoded outputs (boxes [N, P, 4], scores [N, P, C]) by EfficientNMS's padded
    detections, named as the contract: num_detections [N] int32, boxes [N, K, 4], scores [N, K],
    labels [N, K] int32 (zero past num_detections: the plugin clears its outputs).

    ``set_output_types``: pin the outputs to float32 / int32 (a weakly typed network built with the
    FP16 or INT8 flag may otherwise give the plugin float16 inputs and outputs)."""
    outputs = {network.get_output(i).name: network.get_output(i) for i in range(network.num_outputs)}
    if set(outputs) != {"boxes", "scores"}:
        raise ExportError(onnx_path, f"outputs {sorted(outputs)}. Note: nms='efficient' expects an export without NMS (boxes, scores)")
    boxes, scores = outputs["boxes"], outputs["scores"]
    for tensor in (boxes, scores):
        network.unmark_output(tensor)
        tensor.name = f"decoded_{tensor.name}"  # frees the contract's names for the plugin's outputs
    # The arrays must outlive create_plugin: a PluginField points into their memory.
    values = {
        "score_threshold": np.array([metadata.score_threshold], dtype=np.float32),
        "iou_threshold": np.array([metadata.iou_threshold], dtype=np.float32),
        "max_output_boxes": np.array([metadata.max_detections], dtype=np.int32),
        "background_class": np.array([0], dtype=np.int32),
        "score_activation": np.array([0], dtype=np.int32),  # scores are already softmaxed
        "class_agnostic": np.array([0], dtype=np.int32),
        "box_coding": np.array([0], dtype=np.int32),  # xyxy corners
    }
    kinds = {np.dtype(np.float32): trt.PluginFieldType.FLOAT32, np.dtype(np.int32): trt.PluginFieldType.INT32}
    fields = trt.PluginFieldCollection([trt.PluginField(name, value, kinds[value.dtype]) for name, value in values.items()])
    registry = trt.get_plugin_registry()
    name, version = EFFICIENT_NMS
    creator = (
        registry.get_creator(name, version, "") if hasattr(registry, "get_creator") else registry.get_plugin_creator(name, version, "")
    )
    if creator is None:
        raise RuntimeUnavailableError(
            RUNTIME,
            f"TensorRT {trt.__version__} has no {name} plugin version {version}. Note: use nms='graph' with an ONNX exported with NMS",
        )
    v3 = isinstance(creator, getattr(trt, "IPluginCreatorV3One", ()))  # the plugin may move to the V3 interface
    plugin = (
        creator.create_plugin("efficient_nms", fields, trt.TensorRTPhase.BUILD) if v3 else creator.create_plugin("efficient_nms", fields)
    )
    if plugin is None:
        raise SSDDeployError(
            f"{onnx_path}: TensorRT's {name} rejects its settings { ({k: v.item() for k, v in values.items()}) } (its log above says why)"
        )
    layer = network.add_plugin_v3([boxes, scores], [], plugin) if v3 else network.add_plugin_v2([boxes, scores], plugin)
    count = network.add_shuffle(layer.get_output(0))  # [N, 1] -> [N]
    count.reshape_dims = (-1,)
    results = [count.get_output(0)] + [layer.get_output(i) for i in (1, 2, 3)]
    for tensor, contract_name in zip(results, NMS_OUTPUTS, strict=True):
        tensor.name = contract_name
        network.mark_output(tensor)
        if set_output_types:
            tensor.dtype = trt.int32 if contract_name in ("num_detections", "labels") else trt.float32


def _set_precision(
    trt: ModuleType,
    builder: Any,
    config: Any,
    metadata: ExportMetadata,
    options: EngineOptions,
    mode: str,
    calibration_cache: Path,
    device: torch.device,
) -> Any:
    """Set the builder flags of ``mode``; the INT8 calibrator (None for other modes)."""
    if options.precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)  # TensorRT allows TF32 by default: not fp32 arithmetic
    if mode in ("fp16-flag", "bf16-flag"):  # an fp16 or bf16 ONNX is parsed strongly typed: no flags
        config.set_flag(trt.BuilderFlag.FP16 if mode == "fp16-flag" else trt.BuilderFlag.BF16)
    if mode != "int8-calibration":
        return None
    config.set_flag(trt.BuilderFlag.INT8)
    calibration_profile = builder.create_optimization_profile()
    height, width = metadata.input_size
    shape = (options.calibration_batch, 3, height, width)
    calibration_profile.set_shape(INPUT_NAME, shape, shape, shape)
    config.set_calibration_profile(calibration_profile)
    calibrator = entropy_calibrator(
        trt,
        lambda: CalibrationBatches.from_folder(
            options.calibration_images, metadata.input_size, options.calibration_batch, options.calibration_count, metadata.resize
        ),
        options.calibration_batch,
        calibration_cache,
        device,
    )
    config.int8_calibrator = calibrator
    return calibrator


# ---------------------------------------------------------------------------------------------
# Running

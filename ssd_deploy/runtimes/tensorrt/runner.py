"""Running engines: :class:`TensorRTRunner` (a deserialised engine on one GPU) and ``open_runner``,
the runtime's entry point, which loads an engine or builds and caches one from an exported ONNX.

    open_runner("model.onnx") ─ cache key (ONNX bytes, options, TensorRT, GPU) ─ [build_engine] ─ x.engine
    open_runner("x.engine")   ─ sidecar checked against this TensorRT and GPU ─ deserialise ─ execute_async_v3
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...devices import NO_CUDA
from ...errors import SSDDeployError
from ...export.onnx import onnx_metadata as read_metadata
from ...export.metadata import INPUT_NAME
from ..base import InputError, Runner, as_torch_batch, check_precision
from ..registry import Availability
from .build import build_engine
from .cache import (
    calibration_cache_key,
    check_engine_matches,
    default_cache_dir,
    engine_cache_key,
    engine_cache_path,
    file_sha256,
    read_engine_record,
    sidecar_path,
)
from .machine import cuda_index, gpu_identity, import_problem, import_tensorrt, parse_device, trt_logger, weakly_typed
from .options import ENGINE_PRECISIONS, RUNTIME, EngineOptions, precision_mode, profile_batches, resolve_options


def availability() -> Availability:
    """Usable when ``tensorrt`` imports and torch sees a CUDA device (TensorRT needs an NVIDIA GPU)."""
    try:
        import tensorrt as trt
    except ImportError as error:
        return Availability(False, reason=import_problem(error))
    if not torch.cuda.is_available():
        return Availability(False, trt.__version__, reason=NO_CUDA)
    devices = tuple(f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count()))
    return Availability(True, trt.__version__, devices)


_TORCH_DTYPES = {
    "FLOAT": torch.float32,
    "HALF": torch.float16,
    "BF16": torch.bfloat16,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "INT8": torch.int8,
    "UINT8": torch.uint8,
    "BOOL": torch.bool,
}  # by trt.DataType name


class TensorRTRunner(Runner):
    """A deserialised engine on one GPU; batches run on the runner's own CUDA stream.

    Args:
        engine_path: an engine built by :func:`build_engine` (its sidecar beside it).
        device: ``cuda`` or ``cuda:N``.

    Raises:
        SSDDeployError: no sidecar, an engine of another TensorRT version or GPU (checked before
            deserialising), or an engine TensorRT cannot load.
    """

    name = RUNTIME

    def __init__(self, engine_path: str | Path, device: str = "cuda") -> None:
        engine_path = Path(engine_path)
        record, metadata = read_engine_record(engine_path)
        trt = import_tensorrt()
        index = cuda_index(device)
        check_engine_matches(engine_path, record, trt.__version__, *gpu_identity(index))
        super().__init__(engine_path, metadata, f"cuda:{index}", metadata.precision)
        with torch.cuda.device(index):
            self._runtime = trt.Runtime(trt_logger(trt))
            self._engine = self._runtime.deserialize_cuda_engine(engine_path.read_bytes())
            if self._engine is None:
                raise SSDDeployError(
                    f"{engine_path}: TensorRT {trt.__version__} cannot deserialise it (its log above says why). Note: rebuild it"
                )
            self._context = self._engine.create_execution_context()
            self._stream = torch.cuda.Stream(device=index)
        names = {self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)}
        missing = {INPUT_NAME, *metadata.output_names} - names
        if missing:
            raise SSDDeployError(
                f"{engine_path}: the engine lacks tensors {sorted(missing)}. Note: its sidecar describes another engine; rebuild it"
            )
        low, _, high = self._engine.get_tensor_profile_shape(INPUT_NAME, 0)
        self.batch_range = (int(low[0]), int(high[0]))
        self._dtypes = {name: _TORCH_DTYPES[self._engine.get_tensor_dtype(name).name] for name in metadata.output_names}

    def _infer(self, batch: np.ndarray | torch.Tensor) -> list[torch.Tensor]:
        low, high = self.batch_range
        if not low <= batch.shape[0] <= high:
            raise InputError(
                f"{self.path}: batch of {batch.shape[0]} images; the engine's profile takes {low} to {high}. "
                "Note: use smaller batches (load(..., max_batch=N)), or rebuild with profile_max_batch"
            )
        device = torch.device(self.device)
        with torch.cuda.device(device):
            self._stream.wait_stream(torch.cuda.current_stream(device))  # the batch may come from another stream
            with torch.cuda.stream(self._stream):
                images = aligned(as_torch_batch(batch, device).contiguous())
                if not self._context.set_input_shape(INPUT_NAME, tuple(images.shape)):
                    raise InputError(f"{self.path}: TensorRT rejects input shape {list(images.shape)}")
                self._context.set_tensor_address(INPUT_NAME, images.data_ptr())
                outputs = []
                for name in self.metadata.output_names:
                    shape = tuple(self._context.get_tensor_shape(name))
                    if min(shape) < 0:  # the contract's outputs depend on N only
                        raise SSDDeployError(
                            f"{self.path}: output {name} has a data-dependent shape {list(shape)}. Note: expected an ssd-export ONNX"
                        )
                    outputs.append(torch.empty(shape, dtype=self._dtypes[name], device=device))
                    self._context.set_tensor_address(name, outputs[-1].data_ptr())
                ok = self._context.execute_async_v3(self._stream.cuda_stream)
            self._stream.synchronize()
        if not ok:
            raise SSDDeployError(f"{self.path}: TensorRT failed to run the batch (its log above says why)")
        return [_contract_dtype(name, tensor) for name, tensor in zip(self.metadata.output_names, outputs, strict=True)]

    def _close(self) -> None:
        self._context = self._engine = self._runtime = None  # context before engine before runtime


# IExecutionContext::setTensorAddress: "The pointer must have at least 256-byte alignment" (NvInferRuntime.h).
TENSOR_ALIGNMENT = 256  # bytes


def aligned(tensor: torch.Tensor, alignment: int = TENSOR_ALIGNMENT) -> torch.Tensor:
    """``tensor`` itself when its data starts on an ``alignment``-byte boundary, else an aligned copy.

    A fresh CUDA tensor is aligned (torch's allocator hands out 512-byte blocks), but a view into
    one is not: ``batch[3:5]`` of a float32 [N, 3, 300, 300] batch starts 3 * 1,080,000 bytes in,
    a multiple of 64 only. The copy is a view into a slightly larger buffer, at its first aligned
    byte, so it is aligned whatever the allocator's own alignment.

    Args:
        tensor: contiguous, any shape and dtype, on any device.
        alignment: bytes, a multiple of the element size.
    """
    if tensor.data_ptr() % alignment == 0:
        return tensor
    element = tensor.element_size()
    buffer = torch.empty(tensor.numel() + alignment // element, dtype=tensor.dtype, device=tensor.device)
    start = (-buffer.data_ptr() % alignment) // element
    copy = buffer[start : start + tensor.numel()].view(tensor.shape)
    copy.copy_(tensor)
    return copy


def _contract_dtype(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """int32 counts and labels, float32 boxes and scores (the contract), whatever the engine chose."""
    return tensor.to(torch.int32 if name in ("num_detections", "labels") else torch.float32)


# ---------------------------------------------------------------------------------------------
# The runtime module's entry point

_ENGINE_OPTION_NAMES = tuple(field.name for field in dataclasses.fields(EngineOptions) if field.name != "precision")


def open_runner(
    path: str | Path,
    device: str = "cuda",
    precision: str = "auto",
    cache_dir: str | Path | None = None,
    rebuild: bool = False,
    **engine_options: Any,
) -> TensorRTRunner:
    """Load a TensorRT engine, or the cached engine of an exported ONNX (built on a cache miss).

    Args:
        path: ``.engine``/``.plan`` built by :func:`build_engine`, or an exported ``.onnx``.
        device: ``cuda`` or ``cuda:N`` (``cpu`` is an error: TensorRT needs an NVIDIA GPU).
        precision: ``fp32``, ``fp16``, ``bf16`` or ``int8``; an engine's must equal it. ``auto``:
            the engine's, or for an ONNX the ONNX's.
        cache_dir: ONNX only; where engines are cached (default :func:`default_cache_dir`).
        rebuild: ONNX only; build even when the cache has the engine.
        **engine_options: ONNX only; the other fields of :class:`EngineOptions` (profile batches,
            workspace_mib, efficient_nms, calibration, calibration_batch).

    Raises:
        RuntimeUnavailableError: device cpu, no TensorRT or GPU, or an unsupported precision.
        SSDDeployError: unknown options, an engine of another precision, TensorRT version or GPU.
    """
    path = Path(path)
    parse_device(device)
    unknown = sorted(set(engine_options) - set(_ENGINE_OPTION_NAMES))
    if unknown:
        raise SSDDeployError(
            f"{path}: unknown tensorrt options {unknown}. Note: expected cache_dir, rebuild, {', '.join(_ENGINE_OPTION_NAMES)}"
        )
    if precision != "auto":
        check_precision(RUNTIME, precision, ENGINE_PRECISIONS, "Note: TensorRT builds fp32, fp16, bf16 and int8 engines")
    elif path.suffix.lower() == ".onnx":
        precision = read_metadata(path).precision
    else:
        precision = read_engine_record(path)[1].precision
    if path.suffix.lower() != ".onnx":
        if engine_options or cache_dir is not None or rebuild:
            raise SSDDeployError(
                f"{path}: build options apply to an .onnx; an engine is already built. Note: open the .onnx to build another"
            )
        _, metadata = read_engine_record(path)
        if metadata.precision != precision:
            raise SSDDeployError(
                f"{path}: the engine computes in {metadata.precision}, not {precision}. Note: load it with "
                f"precision={metadata.precision!r}, or build a {precision} engine from the .onnx"
            )
        return TensorRTRunner(path, device)
    return TensorRTRunner(_cached_engine(path, device, precision, cache_dir, rebuild, engine_options), device)


def _cached_engine(
    onnx_path: Path, device: str, precision: str, cache_dir: str | Path | None, rebuild: bool, engine_options: dict[str, Any]
) -> Path:
    """The cached engine of ``onnx_path`` for these options on this machine, built if missing."""
    metadata = read_metadata(onnx_path)
    trt = import_tensorrt()
    precision_mode(metadata.precision, precision, weakly_typed(trt))  # before asking for calibration images
    options = resolve_options(metadata, EngineOptions(precision=precision, **engine_options), onnx_path)
    index = cuda_index(device)
    gpu = gpu_identity(index)
    digest = file_sha256(onnx_path)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    engine = engine_cache_path(folder, onnx_path, engine_cache_key(digest, options, trt.__version__, *gpu))
    if rebuild or not (engine.is_file() and sidecar_path(engine).is_file()):
        low, _, high = profile_batches(metadata, options, onnx_path)
        print(
            f"tensorrt: building an engine ({precision}, batch {low}-{high}, {'EfficientNMS' if options.efficient_nms else 'NMS as exported'}) from {onnx_path} for {gpu[0]}; "
            f"this takes a while once, then it is cached as {engine}",
            file=sys.stderr,
        )
        calibration = folder / f"{onnx_path.stem}-{calibration_cache_key(digest, options, trt.__version__)[:16]}.calib"
        build_engine(onnx_path, engine, options, f"cuda:{index}", calibration)
    return engine

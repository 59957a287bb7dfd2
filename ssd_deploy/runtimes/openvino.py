"""Exported ONNX (or an OpenVINO IR ``.xml``) on OpenVINO: CPU here; GPU and NPU where present.

OpenVINO reads the ONNX file as exported, NMS included. ``precision`` sets OpenVINO's inference
precision hint (``fp32`` is pinned explicitly, since OpenVINO otherwise picks bf16 on CPUs that
have it); ``int8`` needs a quantised model (``ssd-export --format openvino --int8``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import ExportError, RuntimeUnavailableError, SSDDeployError
from ..export.formats import read_metadata
from ..export.metadata import ExportMetadata
from .base import Runner, as_numpy_batch, check_precision
from .registry import Availability

PRECISION_HINTS = {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}
RT_INFO_KEY = "ssd_deploy"  # where an IR file keeps the metadata map (model.get_rt_info)


def availability() -> Availability:
    try:
        import openvino
    except ImportError:
        return Availability(False, reason="openvino is not installed")
    devices = tuple(openvino.Core().available_devices)
    return Availability(bool(devices), openvino.__version__, devices, "" if devices else "OpenVINO found no device")


def ir_metadata(model: Any, path: Path) -> ExportMetadata:
    """The ssd-deploy metadata stored in an OpenVINO IR's ``rt_info``."""
    info = model.get_rt_info()
    if RT_INFO_KEY not in info:
        raise ExportError(path, "OpenVINO IR without ssd-deploy metadata. Note: make it with ssd-export --format openvino")
    strings = {key: value.astype(str) for key, value in model.get_rt_info([RT_INFO_KEY]).items()}
    return ExportMetadata.from_strings(strings, path)


def ov_device(device: str, available: Sequence[str]) -> str:
    """Our device name (cpu, gpu, gpu.1, npu, auto) as OpenVINO's, or a clear error if it is absent."""
    name = device.upper()
    if name == "CUDA":
        name = "GPU"
    if name != "AUTO" and name not in available and not (name == "GPU" and any(d.startswith("GPU") for d in available)):
        raise RuntimeUnavailableError("openvino", f"device {device!r} is not present here. Note: OpenVINO sees {', '.join(available) or 'nothing'}")
    return name


class OpenVINORunner(Runner):
    """A model compiled by ``openvino.Core`` for one device."""

    name = "openvino"

    def __init__(
        self, path: Path, device: str = "cpu", precision: str = "fp32", threads: int = 0, performance_hint: str = "LATENCY"
    ) -> None:
        import openvino

        core = openvino.Core()
        try:
            model = core.read_model(str(path))
        except Exception as error:  # OpenVINO raises RuntimeError subclasses with long messages
            raise ExportError(path, f"OpenVINO cannot read it: {str(error).strip().splitlines()[0][:200]}") from None
        metadata = ir_metadata(model, path) if path.suffix.lower() == ".xml" else read_metadata(path)
        target = ov_device(device, core.available_devices)
        if metadata.precision == "int8":
            supported: tuple[str, ...] = ("int8",)
        elif metadata.precision == "fp16":  # fp16 weights: compute in fp16, or in fp32 where a device lacks it
            supported = ("fp16", "fp32")
        else:
            supported = tuple(PRECISION_HINTS)
        check_precision(self.name, precision, supported, f"Note: {path.name} holds a {metadata.precision} model; int8 needs ssd-export --format openvino --int8")
        super().__init__(path, metadata, target, precision)
        config: dict[str, Any] = {"PERFORMANCE_HINT": performance_hint}
        if precision in PRECISION_HINTS:
            config["INFERENCE_PRECISION_HINT"] = PRECISION_HINTS[precision]
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self.compiled = core.compile_model(model, target, config)
        except Exception as error:
            raise RuntimeUnavailableError(self.name, f"cannot compile {path.name} for {target}: {str(error).strip().splitlines()[0][:200]}") from None
        self.request = self.compiled.create_infer_request()

    def _infer(self, batch: np.ndarray | torch.Tensor) -> list[np.ndarray]:
        self.request.infer({self.metadata.input_name: as_numpy_batch(batch)})
        # copy: the request reuses its output buffers on the next call
        return [self.request.get_tensor(name).data.copy() for name in self.metadata.output_names]

    def _close(self) -> None:
        del self.request, self.compiled


def open_runner(
    path: Path, device: str = "cpu", precision: str = "fp32", threads: int = 0, performance_hint: str = "LATENCY"
) -> OpenVINORunner:
    """Open an exported ONNX file or OpenVINO IR.

    Args:
        device: ``cpu``, ``gpu`` (``gpu.N``), ``npu`` or ``auto``, as OpenVINO lists them.
        precision: ``fp32``, ``fp16`` or ``bf16`` inference precision; ``int8`` for a quantised IR.
        threads: inference threads (0: OpenVINO's default).
        performance_hint: ``LATENCY`` or ``THROUGHPUT``.
    """
    if path.suffix.lower() not in (".onnx", ".xml"):
        raise SSDDeployError(f"{path}: OpenVINO reads .onnx files and IR .xml files")
    return OpenVINORunner(path, device, precision, threads, performance_hint)

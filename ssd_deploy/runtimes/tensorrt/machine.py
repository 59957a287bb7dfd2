"""This machine's TensorRT and GPU: importing ``tensorrt`` (saying why it cannot be), its logger,
its typing mode, and the CUDA device an engine is built for or runs on."""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import torch

from ...errors import RuntimeUnavailableError, SSDDeployError
from ...devices import parse_device as parse_device_text
from ...devices import resolve_cuda_index
from .options import RUNTIME

INSTALL_HINT = "Note: pip install 'ssd-deploy[gpu]' (TensorRT 10 or newer) on a machine with an NVIDIA GPU"


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
    parsed = parse_device_text(device)
    if parsed is not None and parsed.type == "cpu" and parsed.index is None:
        raise RuntimeUnavailableError(
            RUNTIME,
            "device cpu: TensorRT runs only on NVIDIA GPUs. Note: pass device='cuda' (or 'cuda:N'), "
            "or use a CPU runtime (onnxruntime, openvino, torchscript)",
        )
    if parsed is None or parsed.type != "cuda":
        raise SSDDeployError(f"device {device!r}: not a TensorRT device. Note: expected cuda or cuda:N")
    return parsed.index


def cuda_index(device: str) -> int:
    """The CUDA index of ``device`` on this machine, or RuntimeUnavailableError saying why not."""
    return resolve_cuda_index(RUNTIME, device, parse_device(device))


def gpu_identity(index: int) -> tuple[str, str]:
    """(name, compute capability as ``"major.minor"``) of CUDA device ``index``."""
    major, minor = torch.cuda.get_device_capability(index)
    return torch.cuda.get_device_name(index), f"{major}.{minor}"


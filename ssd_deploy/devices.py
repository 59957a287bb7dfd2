"""Device strings, read once for every runtime, the exporters, training and the GPU check:
``cpu``, ``cuda``, ``cuda:N``, ``auto``, ``gpu.1``.

:func:`parse_device` reads the text, :func:`cuda_problem` says why a CUDA device cannot run here;
each runtime then maps the device to its own words:

    torch (pytorch, torchscript, aotinductor)  torch_device("cuda:1") -> torch.device("cuda", 1)
    ONNX Runtime                               onnxruntime_providers("cuda") -> [CUDA, CPU] providers
    OpenVINO                                   openvino_device("cuda", available) -> "GPU"
    TensorRT                                   resolve_cuda_index(...) -> the current CUDA device's index

:func:`inference` is how the torch runtimes run a call: no autograd, and float32 as IEEE float32 on CUDA.

Only torch is imported here, so every module can use it without importing a runtime.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from .errors import ExportError, RuntimeUnavailableError

CPU_PROVIDER, CUDA_PROVIDER, TENSORRT_PROVIDER = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


@dataclass(frozen=True)
class Device:
    """A parsed device string: ``type`` in lower case (``cpu``, ``cuda``, ``gpu.1``, ``auto``, ...)
    and ``index`` (the ``N`` of ``type:N``; None when not given)."""

    type: str
    index: int | None = None

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


def parse_device(device: str | torch.device) -> Device | None:
    """``name`` or ``name:N`` (any case, surrounding spaces ignored) as a :class:`Device`; None when
    the text is not of that form (each runtime says what it expected)."""
    match = re.fullmatch(r"([a-z][a-z0-9_.]*)(?::(\d+))?", str(device).strip().lower())
    if match is None:
        return None
    return Device(match.group(1), None if match.group(2) is None else int(match.group(2)))


NO_CUDA = "CUDA is not available here (no NVIDIA GPU or driver found: torch.cuda.is_available() is False)"


def resolve_auto(device: str, runtime: str | None = None) -> str:
    """``auto`` (the console scripts' default) as the device a command runs on: ``cuda`` when torch
    sees a CUDA device, else ``cpu``; for OpenVINO the CPU (a CUDA GPU is not an OpenVINO device,
    and its own AUTO device hides which precision it applied), and for OpenCV DNN, which runs on
    the CPU here. Any other device is returned as given."""
    if str(device).strip().lower() != "auto":
        return device
    return "cuda" if torch.cuda.is_available() and runtime not in ("openvino", "opencv") else "cpu"


def cuda_problem(device: str | torch.device, index: int | None = None) -> str | None:
    """Why the CUDA ``device`` (``index``: the N it names, None: any) cannot run here, or None."""
    if not torch.cuda.is_available():
        return f"device {device}: {NO_CUDA}"
    if index is not None and index >= torch.cuda.device_count():
        return f"device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)"
    return None


def torch_device_problem(device: str | torch.device) -> str | None:
    """Why ``device`` is no torch device this machine has (``cpu``, ``cuda``, ``cuda:N``), or None."""
    try:
        parsed = torch.device(device)
    except RuntimeError:
        return f"device {device!r} is not a torch device. Note: expected cpu, cuda or cuda:N"
    if parsed.type == "cpu":
        return None
    if parsed.type != "cuda":
        return f"device {device}: expected cpu or cuda"
    return cuda_problem(device, parsed.index)


def require_cuda(runtime: str, device: str | torch.device, index: int | None = None, check_index: bool = True) -> None:
    """RuntimeUnavailableError when ``device`` asks for CUDA and this machine has none, or (with
    ``check_index``) fewer CUDA devices than ``index`` needs."""
    problem = cuda_problem(device, index if check_index else None)
    if problem:
        raise RuntimeUnavailableError(runtime, problem)


def torch_device(runtime: str, device: str | torch.device) -> torch.device:
    """``device`` as a torch device (``cpu``, ``cuda``, ``cuda:N``), or a RuntimeUnavailableError
    when it is another device type, or CUDA is asked for and missing."""
    problem = torch_device_problem(device)
    if problem:
        raise RuntimeUnavailableError(runtime, problem)
    return torch.device(device)


def file_device(device: str | torch.device, path: object) -> torch.device:
    """``device`` for exporting or loading the torch file ``path``: an ExportError naming the file
    when it is no torch device this machine has."""
    problem = torch_device_problem(device)
    if problem:
        raise ExportError(path, problem)
    return torch.device(device)


def resolve_cuda_index(runtime: str, device: str | torch.device, index: int | None) -> int:
    """The CUDA index ``device`` (already parsed to ``index``; None: the current device) names on
    this machine, or RuntimeUnavailableError saying why there is none."""
    require_cuda(runtime, device)
    index = torch.cuda.current_device() if index is None else index
    require_cuda(runtime, device, index)
    return index


def onnxruntime_device(device: str) -> Device:
    """``cpu``, ``cuda`` or ``cuda:N`` for ONNX Runtime (``cuda`` is ``cuda:0``), else RuntimeUnavailableError."""
    parsed = parse_device(device)
    if parsed is None or parsed.type not in ("cpu", "cuda") or (parsed.type == "cpu" and parsed.index is not None):
        raise RuntimeUnavailableError("onnxruntime", f"device {str(device).lower()!r}: expected cpu, cuda or cuda:N")
    return parsed if parsed.type == "cpu" else Device("cuda", parsed.index or 0)


def onnxruntime_providers(device: Device, use_tensorrt: bool = False) -> list[str]:
    """ONNX Runtime execution providers in priority order for ``device`` (it falls back along the list)."""
    if device.type == "cpu":
        return [CPU_PROVIDER]
    return ([TENSORRT_PROVIDER] if use_tensorrt else []) + [CUDA_PROVIDER, CPU_PROVIDER]


def openvino_device(device: str, available: Sequence[str]) -> str:
    """Our device name (cpu, gpu, gpu.1, npu, auto; cuda means gpu) as OpenVINO's, or a
    RuntimeUnavailableError when OpenVINO does not see it here."""
    name = str(device).upper()
    if name == "CUDA":
        name = "GPU"
    if name != "AUTO" and name not in available and not (name == "GPU" and any(d.startswith("GPU") for d in available)):
        raise RuntimeUnavailableError("openvino", f"device {device!r} is not present here. Note: OpenVINO sees {', '.join(available) or 'nothing'}")
    return name


@contextlib.contextmanager
def ieee_float32() -> Iterator[None]:
    """Float32 convolutions (cuDNN) and matrix products (cuBLAS) in IEEE float32 for the duration;
    the previous settings are restored after. The settings are process-wide.

    PyTorch runs cuDNN's float32 convolutions in TF32 by default (10 mantissa bits, like
    float16), which on the GPU check's SSDLite moved scores by up to 5e-2 against the CPU and
    lost 12 % of its detections: a model run or exported as fp32 must compute float32. Tracing
    records the setting in every ``aten::_convolution`` of a TorchScript file (its last argument),
    so the TorchScript writer traces under it too.
    """
    # The fp32_precision settings, not allow_tf32: torch refuses to read a mix of the two APIs.
    flags = (torch.backends.cudnn.conv, torch.backends.cuda.matmul)
    saved = [flag.fp32_precision for flag in flags]
    try:
        for flag in flags:
            flag.fp32_precision = "ieee"
        yield
    finally:
        for flag, value in zip(flags, saved):
            flag.fp32_precision = value


@contextlib.contextmanager
def inference(device: str | torch.device) -> Iterator[None]:
    """How the torch runtimes run a call: ``torch.inference_mode``, and on CUDA :func:`ieee_float32`."""
    with torch.inference_mode(), (ieee_float32() if torch.device(device).type == "cuda" else contextlib.nullcontext()):
        yield

"""The table of runtimes: the single place that knows which runtimes exist and which files they read.

Each runtime lives in its own module, imported only when used (so a missing package never breaks
``import ssd_deploy``). A runtime module provides:

- ``availability() -> Availability``: whether it can run here and, if not, why.
- ``open_runner(path, device, precision, **options) -> Runner``: load a file.
"""

from __future__ import annotations

import importlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ..errors import RuntimeUnavailableError, SSDDeployError
from ..lookup import lookup


@dataclass(frozen=True)
class Availability:
    """Whether a runtime can run on this machine.

    Attributes:
        usable: it can load and run a model here.
        version: the runtime package's version ("" when not installed).
        devices: the devices (or execution providers) it can use here.
        reason: why it is not usable, or notes on what is missing for more devices.
    """

    usable: bool
    version: str = ""
    devices: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class RuntimeSpec:
    """A runtime: its name, the module that implements it and the files it reads."""

    name: str
    module: str
    suffixes: tuple[str, ...]
    description: str
    extra: str = ""  # the pip extra that installs it

    def implementation(self) -> ModuleType:
        return importlib.import_module(f"{__package__}.{self.module}")

    def availability(self) -> Availability:
        try:
            return self.implementation().availability()
        except ImportError as error:  # our module imports only what is always installed
            return Availability(False, reason=f"cannot import: {error}")


RUNTIMES: dict[str, RuntimeSpec] = {
    spec.name: spec
    for spec in (
        RuntimeSpec("pytorch", "pytorch", (".pt", ".pth", ".ckpt"), "eager PyTorch from a training checkpoint (optionally torch.compile)"),
        RuntimeSpec("torchscript", "torchscript", (".ts", ".pt"), "exported TorchScript via torch.jit.load (what LibTorch runs)"),
        RuntimeSpec("aotinductor", "aotinductor", (".pt2",), "exported AOTInductor package via torch._inductor.aoti_load_package"),
        RuntimeSpec("onnxruntime", "onnxruntime", (".onnx",), "exported ONNX on ONNX Runtime (CPU, CUDA, TensorRT providers)", "cpu"),
        RuntimeSpec("openvino", "openvino", (".onnx", ".xml"), "exported ONNX or OpenVINO IR on OpenVINO (CPU, GPU, NPU)", "openvino"),
        RuntimeSpec("tensorrt", "tensorrt", (".engine", ".plan", ".onnx"), "TensorRT engine, built from exported ONNX and cached", "gpu"),
        RuntimeSpec("opencv", "opencv", (".onnx",), "exported ONNX on OpenCV's DNN module (cv2.dnn, CPU; ssd-export --opencv-dnn)"),
    )
}


def get_runtime(name: str) -> RuntimeSpec:
    """The runtime called ``name``; a typo gets the closest names suggested."""
    return lookup(RUNTIMES, name, "runtime")


def runtime_for_file(path: Path) -> str:
    """The runtime ``auto`` picks for ``path``, from its kind.

    A training checkpoint -> ``pytorch``; a TorchScript archive (``.ts``, or a ``.pt`` holding
    code) -> ``torchscript``; ``.pt2`` -> ``aotinductor``; ``.onnx`` -> ``onnxruntime``;
    ``.engine``/``.plan`` -> ``tensorrt``; OpenVINO IR ``.xml`` -> ``openvino``.
    """
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth", ".ckpt", ".ts"):
        return "torchscript" if suffix == ".ts" or _is_torchscript_archive(path) else "pytorch"
    by_suffix = {".pt2": "aotinductor", ".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt", ".xml": "openvino"}
    if suffix in by_suffix:
        return by_suffix[suffix]
    raise SSDDeployError(
        f"{path}: cannot tell which runtime reads a {suffix or 'suffix-less'} file. Note: expected a checkpoint "
        "(.pt/.pth/.ckpt), TorchScript (.ts), .pt2, .onnx, .engine/.plan or OpenVINO .xml; or pass runtime=NAME"
    )


def _is_torchscript_archive(path: Path) -> bool:
    """TorchScript archives hold compiled code (``<name>/code/``); checkpoints only pickled data."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def require_available(name: str) -> Availability:
    """The runtime's :class:`Availability`, or RuntimeUnavailableError saying why it cannot run here."""
    spec = get_runtime(name)
    status = spec.availability()
    if not status.usable:
        install = f" Note: pip install 'ssd-deploy[{spec.extra}]'" if spec.extra and not status.version else ""
        raise RuntimeUnavailableError(name, f"not usable here: {status.reason}.{install}".replace("..", "."))
    return status

"""Exported AOTInductor packages (``.pt2``) via ``torch._inductor.aoti_load_package``.

A package is compiled for one device: run it where ``ssd-export --format pt2 --device`` built it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from ..errors import ExportError
from ..export import pt2 as pt2_format
from ..devices import file_device, inference
from .pytorch import availability as torch_availability
from .registry import Availability
from .torchscript import ExportedTorchRunner


def availability() -> Availability:
    return torch_availability()


def _load_package(path: Path, device_index: int):
    import torchvision  # noqa: F401  (registers torchvision::nms, which the package calls)

    try:
        return torch._inductor.aoti_load_package(str(path), device_index=device_index)
    except Exception as error:  # the loader raises RuntimeError or zip/JSON errors
        raise ExportError(path, f"not a loadable AOTInductor package: {str(error).strip().splitlines()[0][:200]}") from None


def check_compiled_device(path: Path, compiled: str, device: str | torch.device) -> None:
    """Refuse to run a package on another device type than the one it was compiled for.

    Args:
        compiled: the package's ``AOTI_DEVICE_KEY`` (``cpu``, ``cuda``). device: where it is asked to run.
    """
    asked = torch.device(device)
    if compiled != asked.type:
        raise ExportError(
            path,
            f"compiled for {compiled}, asked to run on {asked}. Note: run it with device={compiled!r}, "
            f"or export another with ssd-export --format pt2 --device {asked.type}",
        )


def device_index(device: str | torch.device) -> int:
    """The loader's ``device_index``: N for ``cuda:N``, -1 (the current device) for ``cuda`` and ``cpu``."""
    device = torch.device(device)
    return device.index if device.type == "cuda" and device.index is not None else -1


def load_package(path: Path, device: str | torch.device = "cpu") -> Callable[[Tensor], tuple[Tensor, ...]]:
    """The compiled package as a function of the input batch on ``device``, which must be of the
    type it was compiled for (its ``AOTI_DEVICE_KEY``, read without loading the model).

    Raises:
        ExportError: a package of another device type, CUDA asked on a machine without it, or not a package.
    """
    file_device(device, path)  # no CUDA here is the first thing to say
    check_compiled_device(path, pt2_format.read_metadata(path).get(pt2_format.DEVICE_KEY, "cpu"), device)
    runner = _load_package(path, device_index(device))

    def run(images: Tensor) -> tuple[Tensor, ...]:
        with inference(device):
            return tuple(runner(images.to(device)))

    return run


class AOTInductorRunner(ExportedTorchRunner):
    name = "aotinductor"


def open_runner(path: Path, device: str = "cpu", precision: str = "auto") -> AOTInductorRunner:
    """Load a ``.pt2`` package on the device it was compiled for; precision is the file's."""
    return AOTInductorRunner(path, device, precision, load_package)

"""Exported AOTInductor packages (``.pt2``) via ``torch._inductor.aoti_load_package``.

A package is compiled for one device: run it where ``ssd-export --format pt2 --device`` built it.
"""

from __future__ import annotations

from pathlib import Path

from ..export import pt2 as pt2_format
from .pytorch import availability as torch_availability
from .registry import Availability
from .torchscript import ExportedTorchRunner


def availability() -> Availability:
    return torch_availability()


class AOTInductorRunner(ExportedTorchRunner):
    name = "aotinductor"


def open_runner(path: Path, device: str = "cpu", precision: str = "auto") -> AOTInductorRunner:
    """Load a ``.pt2`` package on the device it was compiled for; precision is the file's."""
    return AOTInductorRunner(path, device, precision, pt2_format.load)

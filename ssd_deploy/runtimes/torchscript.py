"""Exported TorchScript (``.ts``) via ``torch.jit.load``: what a LibTorch C++ program runs."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..export import torchscript as torchscript_format
from ..export.formats import read_metadata
from .base import Runner, as_torch_batch, check_precision
from .devices import torch_device
from .pytorch import availability as torch_availability
from .registry import Availability


def availability() -> Availability:
    return torch_availability()


class ExportedTorchRunner(Runner):
    """A function loaded from an exported torch file (TorchScript or AOTInductor)."""

    def __init__(self, path: Path, device: str, precision: str, load: Callable[[Path, torch.device], Callable]) -> None:
        metadata = read_metadata(path)
        target = torch_device(self.name, device)
        precision = check_precision(
            self.name,
            precision,
            (metadata.precision,),
            f"Note: {path.name} was exported in {metadata.precision}; re-export it for another precision",
            metadata.precision,
        )
        super().__init__(path, metadata, str(target), precision)
        self._run = load(path, target)
        self._target = target

    def _infer(self, batch: np.ndarray | torch.Tensor) -> Sequence[torch.Tensor]:
        return self._run(as_torch_batch(batch, self._target))


class TorchScriptRunner(ExportedTorchRunner):
    name = "torchscript"


def open_runner(path: Path, device: str = "cpu", precision: str = "auto") -> TorchScriptRunner:
    """Load an exported TorchScript file on ``cpu`` or ``cuda[:N]``; precision is the file's."""
    return TorchScriptRunner(path, device, precision, torchscript_format.load)

"""Exported TorchScript (``.ts``) via ``torch.jit.load``: what a LibTorch C++ program runs."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import ExportError
from ..export.formats import read_metadata
from ..devices import file_device, inference, torch_device
from .base import Runner, as_torch_batch, check_precision
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


def load_module(path: Path, device: str | torch.device = "cpu") -> Callable[[Tensor], tuple[Tensor, ...]]:
    """The scripted module on ``device`` (its map location), as a function of the input batch
    Tensor[N, 3, H, W] returning the contract's outputs (the module's own input check answers a bad batch).

    Raises:
        ExportError: CUDA asked on a machine without it, or not a loadable TorchScript file.
    """
    file_device(device, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        try:
            module = torch.jit.load(str(path), map_location=device)
        except (RuntimeError, ValueError) as error:
            raise ExportError(path, f"not a loadable TorchScript file: {str(error).strip().splitlines()[0][:200]}") from None
    module.eval()

    def run(images: Tensor) -> tuple[Tensor, ...]:
        with inference(device):
            return tuple(module(images.to(device)))

    return run


def open_runner(path: Path, device: str = "cpu", precision: str = "auto") -> TorchScriptRunner:
    """Load an exported TorchScript file on ``cpu`` or ``cuda[:N]``; precision is the file's."""
    return TorchScriptRunner(path, device, precision, load_module)

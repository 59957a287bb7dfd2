"""The runner contract every runtime fills in: load a file, run a ready batch, close.

A :class:`Runner` owns the lifecycle (context manager, ``close``), the input check against the
file's metadata and the naming of outputs, once. A runtime implements only ``_infer`` (and
``_close`` when it holds resources). Pre-processing and mapping detections back to images live in
:mod:`ssd_deploy.runtimes.detector`, shared by all runtimes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np
import torch

from ..errors import RuntimeUnavailableError, SSDDeployError
from ..export.metadata import PRECISIONS, ExportMetadata


class InputError(SSDDeployError):
    """A batch handed to ``Runner.infer`` does not match the model's input contract."""


class Runner(ABC):
    """One loaded model on one runtime and device.

    Attributes:
        name: the runtime's name (``pytorch``, ``onnxruntime``, ...).
        path: the file it was loaded from.
        metadata: the file's :class:`ExportMetadata` (input size, class names, NMS, batch).
        device: where it runs, in the runtime's words (``cpu``, ``cuda:0``, ``CPU``, ...).
        precision: ``fp32``, ``fp16``, ``bf16`` or ``int8``: the network's arithmetic, as the
            runtime applied it (a device without native bf16 may run fp32 instead).
        notes: what the runtime did differently from what was asked, one line each (e.g. such a
            precision fallback); empty when it did just what was asked.
    """

    name: ClassVar[str] = "runner"

    def __init__(self, path: Path, metadata: ExportMetadata, device: str, precision: str) -> None:
        self.path = Path(path)
        self.metadata = metadata
        self.device = device
        self.precision = precision
        self.notes: list[str] = []
        self._closed = False

    def infer(self, batch: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
        """Run the model on a ready batch; the raw contract of :mod:`ssd_deploy.export.metadata`.

        Args:
            batch: float32 [N, 3, H, W] RGB in [0, 1], H x W the model's input size (N must equal
                the file's batch size when that is fixed).

        Returns:
            ``{output name: array}`` in the contract's order: with NMS ``num_detections`` int32
            [N], ``boxes`` float32 [N, K, 4] xyxy in [0, 1], ``scores`` [N, K], ``labels`` int32
            [N, K]; without NMS ``boxes`` [N, P, 4] and ``scores`` [N, P, C].
        """
        if self._closed:
            raise SSDDeployError(f"{self.path}: the {self.name} runner is closed")
        self.check_batch(batch)
        outputs = self._infer(batch)
        names = self.metadata.output_names
        if len(outputs) != len(names):
            raise SSDDeployError(f"{self.path}: {self.name} returned {len(outputs)} outputs, the contract has {len(names)}: {names}")
        return {name: _to_numpy(value) for name, value in zip(names, outputs)}

    def check_batch(self, batch: np.ndarray | torch.Tensor) -> None:
        """Raise :class:`InputError` naming the problem unless ``batch`` fits the model's input."""
        height, width = self.metadata.input_size
        shape = tuple(batch.shape) if hasattr(batch, "shape") else None
        dtype = str(getattr(batch, "dtype", type(batch).__name__)).replace("torch.", "")
        expected = f"float32 [N, 3, {height}, {width}] RGB in [0, 1]" + (
            f" with N = {self.metadata.batch} (exported with a fixed batch)" if self.metadata.batch else ""
        )
        if shape is None or dtype != "float32":
            raise InputError(f"{self.path}: input of type {dtype}. Note: expected {expected}")
        if len(shape) != 4 or shape[1] != 3 or shape[2:] != (height, width) or shape[0] < 1:
            raise InputError(f"{self.path}: input of shape {list(shape)}. Note: expected {expected}")
        if self.metadata.batch is not None and shape[0] != self.metadata.batch:
            raise InputError(f"{self.path}: batch of {shape[0]} images. Note: expected {expected}")

    @abstractmethod
    def _infer(self, batch: np.ndarray | torch.Tensor) -> Sequence[np.ndarray | torch.Tensor]:
        """Run the network; outputs in ``metadata.output_names`` order (numpy or torch, any device)."""

    def _close(self) -> None:
        """Release the runtime's resources (sessions, engines, device memory)."""

    def close(self) -> None:
        if not self._closed:
            self._close()
            self._closed = True

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, device={self.device!r}, precision={self.precision!r})"


def _to_numpy(value: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def as_numpy_batch(batch: np.ndarray | torch.Tensor) -> np.ndarray:
    """A contiguous float32 numpy array of ``batch`` (no copy when it already is one)."""
    array = _to_numpy(batch)
    return np.ascontiguousarray(array, dtype=np.float32)


def as_torch_batch(batch: np.ndarray | torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """``batch`` as a float32 tensor on ``device`` (no copy when it already is one)."""
    tensor = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(batch))
    return tensor.to(device=device, dtype=torch.float32)


def check_precision(runtime: str, precision: str, supported: Sequence[str], hint: str = "", default: str = "fp32") -> str:
    """The precision to run: ``default`` (the file's) for ``auto``, else ``precision`` if ``runtime``
    supports it here; otherwise a RuntimeUnavailableError listing what it supports."""
    if precision == "auto":
        return default
    if precision not in PRECISIONS:
        raise SSDDeployError(f"precision {precision!r} is unknown. Note: expected auto or one of {', '.join(PRECISIONS)}")
    if precision not in supported:
        raise RuntimeUnavailableError(runtime, f"precision {precision} is not supported here ({', '.join(supported)} are). {hint}".rstrip())
    return precision

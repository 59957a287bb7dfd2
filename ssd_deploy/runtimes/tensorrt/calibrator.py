"""INT8 entropy calibration for TensorRT 10's implicit quantisation (TensorRT 11 removed it)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from ...calibration import CalibrationBatches
from ...files import atomic_write


def entropy_calibrator(
    trt: ModuleType, make_batches: Callable[[], CalibrationBatches], batch_size: int, cache_path: Path, device: torch.device
) -> Any:
    """A ``trt.IInt8EntropyCalibrator2`` feeding ``make_batches()`` from ``device`` memory.

    The batches are made on the first ``get_batch`` only, so a build that finds the calibration
    cache never reads the images. An exception inside a callback would be swallowed by TensorRT:
    it is kept in ``calibrator.error`` for :func:`build_engine` to raise.
    """

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches_used = 0
            self.error: BaseException | None = None
            self._batches: Iterator[np.ndarray] | None = None
            self._device_batch: torch.Tensor | None = None  # alive while TensorRT reads it

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: Sequence[str]) -> list[int] | None:
            try:
                if self._batches is None:
                    self._batches = iter(make_batches())
                batch = next(self._batches, None)
                if batch is None:
                    return None
                self._device_batch = torch.from_numpy(batch).to(device)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)  # TensorRT reads it on its own stream
                self.batches_used += 1
                return [int(self._device_batch.data_ptr())]
            except Exception as error:  # noqa: BLE001 - re-raised by build_engine
                self.error = error
                return None

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            try:
                atomic_write(cache_path, lambda tmp: tmp.write_bytes(bytes(cache)))
            except Exception as error:  # noqa: BLE001 - re-raised by build_engine
                self.error = error

    return EntropyCalibrator()

"""Exported ONNX on OpenCV's DNN module (``cv2.dnn.readNetFromONNX``), on the CPU.

What OpenCV DNN needs from the file (measured with the opencv-python-headless 5.0.0 wheel):

- SSDLite-MobileNetV3 files exported with ``ssd-export --opencv-dnn``: OpenCV's importer turns the
  squeeze-and-excitation products into a HardSwish of the wrong tensor otherwise
  (:mod:`ssd_deploy.export.opencv_dnn`); such a file is refused here before OpenCV reads it,
  saying so. Other architectures run as exported.
- OpenCV 5: its DNN module has a NonMaxSuppression layer. OpenCV 4.x has none, and 4.6 (Debian
  12's C++ library) reads not even a ``--no-nms`` file (no Clip with min/max inputs, no Squeeze
  with an axes input); a ``--no-nms`` file gets the same host NMS as on every runtime.
- A dynamic batch runs: OpenCV re-plans the network when the batch size changes.

``engine`` picks OpenCV 5's implementation: ``auto`` (its default: the new engine, falling back to
the classic one for a graph the new one cannot take), ``new`` or ``classic``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ExportError, RuntimeUnavailableError, SSDDeployError
from ..export.formats import read_metadata
from ..export.onnx import read_model
from ..export.opencv_dnn import misread_nodes
from .base import Runner, as_numpy_batch, check_precision
from .registry import Availability

ENGINES = ("auto", "new", "classic")
# The contract's dtype of each output name (OpenCV hands back what the graph says; cast if not).
OUTPUT_DTYPES = {"num_detections": np.int32, "labels": np.int32, "boxes": np.float32, "scores": np.float32}


def availability() -> Availability:
    try:
        import cv2
    except ImportError:
        return Availability(False, reason="opencv-python(-headless) is not installed")
    if not hasattr(cv2, "dnn"):
        return Availability(False, cv2.__version__, reason=f"OpenCV {cv2.__version__} was built without its dnn module")
    reason = "" if _major(cv2.__version__) >= 5 else f"OpenCV {cv2.__version__}: 4.x has no NonMaxSuppression layer, and 4.6 reads none of our files (OpenCV 5 does)"
    return Availability(True, cv2.__version__, ("cpu",), reason)


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


class OpenCVRunner(Runner):
    """A ``cv2.dnn.Net`` read from an exported ONNX file, run by OpenCV's own CPU backend.

    Args:
        device: ``cpu`` (OpenCV's CUDA backend needs a CUDA build of OpenCV, not the pip wheels).
        precision: ``auto`` or the file's: ``fp32``, or ``fp16`` (an SSDLite-MobileNetV2 fp16 file ran within the
            fp16 tolerances of ONNX Runtime on it); INT8 files are refused.
        engine: ``auto``, ``new`` or ``classic`` (OpenCV 5; ignored by OpenCV 4).
    """

    name = "opencv"

    def __init__(self, path: Path, device: str = "cpu", precision: str = "auto", engine: str = "auto") -> None:
        import cv2

        if path.suffix.lower() != ".onnx":
            raise SSDDeployError(f"{path}: OpenCV DNN reads .onnx files")
        if str(device).lower() != "cpu":
            raise RuntimeUnavailableError(self.name, f"device {device}: OpenCV DNN runs here on the CPU only. Note: pass device='cpu'", path)
        if engine not in ENGINES:
            raise SSDDeployError(f"{path}: engine {engine!r}. Note: expected one of {', '.join(ENGINES)}")
        metadata = read_metadata(path)
        supported = (metadata.precision,) if metadata.precision in ("fp32", "fp16") else ()
        precision = check_precision(
            self.name, precision, supported, f"Note: {path.name} holds a {metadata.precision} model; OpenCV DNN runs float files", metadata.precision
        )
        super().__init__(path, metadata, "cpu", precision)
        _refuse_misread(path, cv2.__version__)
        # OpenCV's own backend on the CPU: the default (setting it warns on OpenCV 5's new engine)
        self.net = _read_net(path, engine)

    def _infer(self, batch: np.ndarray | torch.Tensor) -> list[np.ndarray]:
        import cv2

        names = list(self.metadata.output_names)
        self.net.setInput(as_numpy_batch(batch), self.metadata.input_name)
        try:
            outputs = self.net.forward(names)
        except cv2.error as error:
            raise SSDDeployError(f"{self.path}: OpenCV DNN {cv2.__version__} failed to run it: {_first_line(error)}") from None
        return [np.asarray(output, dtype=OUTPUT_DTYPES.get(name, np.float32)) for name, output in zip(names, outputs)]

    def _close(self) -> None:
        del self.net


def _refuse_misread(path: Path, version: str) -> None:
    """ExportError when OpenCV would misread the graph (see :mod:`ssd_deploy.export.opencv_dnn`)."""
    misread = misread_nodes(read_model(path))
    if misread:
        raise ExportError(
            path,
            f"OpenCV DNN ({version}) misreads {len(misread)} HardSigmoid x Mul products of this graph (squeeze-and-excitation "
            f"blocks, e.g. node {misread[0]}) as HardSwish and then fails in forward. "
            "Note: export it with ssd-export --opencv-dnn (ExportOptions(opencv_dnn=True))",
        )


def _read_net(path: Path, engine: str) -> Any:
    """``cv2.dnn.readNetFromONNX`` of ``path`` with ``engine`` (where OpenCV has engines)."""
    import cv2

    try:
        if hasattr(cv2.dnn, "ENGINE_AUTO"):
            return cv2.dnn.readNetFromONNX(str(path), engine=getattr(cv2.dnn, f"ENGINE_{engine.upper()}"))
        return cv2.dnn.readNetFromONNX(str(path))
    except cv2.error as error:
        note = ""
        if "NonMaxSuppression" in str(error):
            note = ". Note: this OpenCV has no NonMaxSuppression layer; OpenCV 5 has (pip install 'opencv-python-headless>=5')"
        raise ExportError(path, f"OpenCV DNN {cv2.__version__} cannot read it: {_first_line(error)}{note}") from None


def _first_line(error: Exception) -> str:
    """The line of an OpenCV error that says what failed (they start with the source location)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    for line in lines:
        if "error:" in line:
            return line.split("error:", 1)[1].strip()[:200]
    return (lines[0] if lines else type(error).__name__)[:200]


open_runner = OpenCVRunner

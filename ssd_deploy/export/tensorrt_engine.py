"""TensorRT engines (``model.engine`` + ``model.engine.json``): the ONNX export built by the
TensorRT runtime's own builder (:func:`ssd_deploy.runtimes.tensorrt.build_engine`).

    network + decode + NMS -> ONNX (the ONNX writer, in a temporary folder)
      -> build_engine(EngineOptions(precision, calibration)) on the CUDA device
      -> x.engine + x.engine.json (the sidecar: our metadata and what it was built with)

A serialised engine cannot hold our metadata, so it lives in the sidecar, as for the engines the
runtime caches; the sidecar is moved into place with the engine (see :func:`companion_files`).
Precision: ``fp32`` and ``fp16`` build the ONNX of that precision as exported; ``int8`` builds
the float32 ONNX with TensorRT 10's entropy calibration on ``calibration`` (TensorRT 11 refuses:
see :mod:`ssd_deploy.runtimes.tensorrt`).

Engines run only on the TensorRT version and GPU they were built on, so building needs both here:
:func:`build_problem` says what is missing before anything is exported. The TensorRT runtime
imports this package's format table, so it is imported inside the functions here.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

from ..calibration import Calibration
from ..devices import cuda_problem, parse_device
from ..files import atomic_write
from .graph import GraphSpec
from .onnx import DEFAULT_OPSET
from .onnx import write as write_onnx


# Ten parameters: the format table's writer contract (network, graph, example, path, metadata) plus
# the options it names for TensorRT (opset, simplify, precision, calibration, device).
def write(
    network: nn.Module,
    spec: GraphSpec,
    example: Tensor,
    path: Path,
    metadata: dict[str, str],
    opset: int = DEFAULT_OPSET,
    simplify: bool = False,
    precision: str = "fp32",
    calibration: Calibration = Calibration(),
    device: str = "cuda",
) -> None:
    """Export ``spec.build(network)`` on ``example`` to ONNX and build the engine ``path`` from it
    on ``device`` (its sidecar, :func:`companion_files`, beside it) with ``metadata``.

    Args:
        precision: the engine's arithmetic; ``network`` is already cast for ``fp16``.
        calibration: INT8 calibration images (``int8`` only).
    """
    from ..runtimes.tensorrt import EngineOptions, build_engine, sidecar_path

    # The ONNX is an intermediate: an INT8 engine is calibrated from the float32 graph.
    onnx_precision = "fp32" if precision == "int8" else precision
    onnx_metadata = {**metadata, "format": json.dumps("onnx"), "precision": json.dumps(onnx_precision)}
    options = EngineOptions(precision=precision, calibration=calibration if precision == "int8" else Calibration())
    with tempfile.TemporaryDirectory(prefix="ssd-trt-") as folder:
        onnx_file = Path(folder) / "model.onnx"
        write_onnx(network, spec, example, onnx_file, onnx_metadata, opset=opset, simplify=simplify)
        build_engine(onnx_file, path, options, device, calibration_cache=Path(folder) / "model.calib")
    _forget_onnx_path(sidecar_path(path))


def _forget_onnx_path(sidecar: Path) -> None:
    """Drop the temporary ONNX's path from the sidecar (its sha256 stays: it names the graph)."""
    record = json.loads(sidecar.read_text())
    record["onnx"]["path"] = None
    atomic_write(sidecar, lambda tmp: tmp.write_text(json.dumps(record, indent=2)))


def companion_files(path: Path) -> tuple[Path, ...]:
    """The files an engine ``path`` needs beside it: its sidecar, ``<engine>.json``."""
    from ..runtimes.tensorrt.cache import sidecar_path

    return (sidecar_path(path),)


def read_metadata(path: Path) -> dict[str, str]:
    """The metadata strings of the engine ``path``, from its sidecar (no ``tensorrt`` needed)."""
    from ..runtimes.tensorrt.cache import read_engine_record

    record, _ = read_engine_record(path)
    return dict(record["metadata"])


def build_problem(device: str) -> str | None:
    """Why an engine cannot be built here on ``device``, or None: no ``tensorrt`` package (or one
    that cannot be imported), no CUDA GPU, or a device that is not one of this machine's GPUs."""
    from ..runtimes.tensorrt.machine import INSTALL_HINT, import_problem

    package = None
    try:
        import tensorrt  # noqa: F401
    except ImportError as error:
        package = import_problem(error)
    parsed = parse_device(device)
    if parsed is None or parsed.type != "cuda":
        gpu = f"device {device}: TensorRT builds engines on an NVIDIA GPU"
    else:
        gpu = cuda_problem(device, parsed.index)
    problems = [problem for problem in (package, gpu) if problem]
    if not problems:
        return None
    missing = package is not None or not torch.cuda.is_available()
    return f"{'; '.join(problems)}. {INSTALL_HINT if missing else 'Note: --device cuda (or cuda:N) on one of its GPUs'}"

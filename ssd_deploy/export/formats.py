"""The table of export formats: the single place that knows which formats exist."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import ExportError, SSDDeployError
from ..lookup import lookup
from .metadata import ExportMetadata
# Each writer module by name, not ``from . import``: that would run this package's __init__,
# which imports this module back.
from .openvino_ir import companion_files as ir_companion_files
from .openvino_ir import read_metadata as read_ir_metadata
from .openvino_ir import write as write_ir
from .onnx import read_metadata as read_onnx_metadata
from .onnx import write as write_onnx
from .pt2 import read_metadata as read_pt2_metadata
from .pt2 import write as write_pt2
from .tensorrt_engine import build_problem as tensorrt_build_problem
from .tensorrt_engine import companion_files as engine_companion_files
from .tensorrt_engine import read_metadata as read_engine_metadata
from .tensorrt_engine import write as write_engine
from .torchscript import read_metadata as read_torchscript_metadata
from .torchscript import write as write_torchscript


@dataclass(frozen=True)
class ExportFormat:
    """An export format: its file suffix, its writer, and how to read a file's metadata.

    ``write(network, spec, example, path, metadata, **options)`` takes the ``options`` named.
    ``companions(path)``: the other files a file of this format needs beside it (an OpenVINO IR's
    ``.bin``), written with it. ``package``: the Python package writing it needs, when optional.
    ``problem(device)``: why it cannot be written on this machine for ``device``, or None (checked
    before any work). ``calibrates``: the writer makes INT8 itself from the calibration images
    (TensorRT); otherwise an INT8 file is the ONNX export quantised (ONNX only).
    Files are loaded by the runtimes (:func:`ssd_deploy.runtimes.load`), never here.
    """

    name: str
    suffix: str
    description: str
    write: Callable[..., None]
    options: tuple[str, ...]
    read_metadata: Callable[[Path], dict[str, str]]
    companions: Callable[[Path], tuple[Path, ...]] = field(default=lambda path: ())
    package: str | None = None
    problem: Callable[[str], str | None] = field(default=lambda device: None)
    calibrates: bool = False


FORMATS = {
    "torchscript": ExportFormat(
        "torchscript", ".ts", "TorchScript for LibTorch (C++) and torch.jit.load; NMS in plain tensor code",
        write_torchscript, (), read_torchscript_metadata,
    ),
    "onnx": ExportFormat(
        "onnx", ".onnx", "ONNX (opset >= 17) with the standard NonMaxSuppression operator",
        write_onnx, ("opset", "simplify", "opencv_dnn"), read_onnx_metadata,
    ),
    "pt2": ExportFormat(
        "pt2", ".pt2", "torch.export program compiled by AOTInductor (Python or C++ AOTIModelPackageLoader)",
        write_pt2, (), read_pt2_metadata,
    ),
    "openvino": ExportFormat(
        "openvino", ".xml", "OpenVINO IR (.xml + .bin beside it, FP32 weights unless --fp16), converted from the ONNX export",
        write_ir, ("opset", "simplify"), read_ir_metadata, ir_companion_files, "openvino",
    ),
    "tensorrt": ExportFormat(
        "tensorrt", ".engine", "TensorRT engine (.engine + .engine.json sidecar) built from the ONNX export; "
        "runs only on this TensorRT version and GPU model",
        write_engine, ("opset", "simplify", "precision", "calibration", "device"), read_engine_metadata,
        engine_companion_files, problem=tensorrt_build_problem, calibrates=True,
    ),
}


def get_format(name: str) -> ExportFormat:
    """The format called ``name``; a typo gets the closest names suggested."""
    return lookup(FORMATS, name, "export format")


def format_of_file(path: Path) -> ExportFormat:
    """The format of an exported file, from its suffix (``.pt`` is TorchScript too)."""
    suffix = path.suffix.lower()
    for export_format in FORMATS.values():
        if suffix == export_format.suffix:
            return export_format
    if suffix == ".pt":
        return FORMATS["torchscript"]
    raise SSDDeployError(f"{path}: unknown exported-file suffix {suffix!r}; expected one of .ts/.pt, .onnx, .pt2, .xml, .engine")


def read_metadata(path: str | Path) -> ExportMetadata:
    """The :class:`ExportMetadata` of an exported file of any format."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(path, "no such file")
    return ExportMetadata.from_strings(format_of_file(path).read_metadata(path), path)

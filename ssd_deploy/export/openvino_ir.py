"""OpenVINO IR (``model.xml`` + ``model.bin``): the ONNX export converted by ``openvino.convert_model``.

    network + decode + NMS -> ONNX (the ONNX writer, metadata in metadata_props)
      -> openvino.convert_model (OpenVINO keeps metadata_props in rt_info["framework"])
      -> openvino.save_model(compress_to_fp16=False): the weights as the network holds them

``save_model`` compresses weights to FP16 by default, which moves scores by ~1e-3 while the
metadata would say fp32; an ``--fp16`` export already holds FP16 weights, so nothing is compressed
here. The IR is two files: the ``.bin`` is moved into place first, the ``.xml`` that names it last
(see :func:`companion_files`), so a reader never sees a new ``.xml`` with an old ``.bin``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ..errors import ExportError
from .graph import GraphSpec
from .onnx import DEFAULT_OPSET
from .onnx import write as write_onnx

RT_INFO_KEY = "framework"  # where OpenVINO keeps an ONNX file's metadata_props


def write(
    network: nn.Module,
    spec: GraphSpec,
    example: Tensor,
    path: Path,
    metadata: dict[str, str],
    opset: int = DEFAULT_OPSET,
    simplify: bool = False,
) -> None:
    """Export ``spec.build(network)`` on ``example`` to the IR ``path`` (``.xml``; the weights go to
    :func:`companion_files`) with ``metadata``; ``simplify``: from the simplified ONNX."""
    import openvino

    with tempfile.TemporaryDirectory(prefix="ssd-ir-") as folder:
        onnx_file = Path(folder) / "model.onnx"
        write_onnx(network, spec, example, onnx_file, metadata, opset=opset, simplify=simplify)
        model = openvino.convert_model(str(onnx_file))
    openvino.save_model(model, str(path), compress_to_fp16=False)


def companion_files(path: Path) -> tuple[Path, ...]:
    """The files an IR ``path`` needs beside it: its weights, ``<stem>.bin``."""
    return (path.with_suffix(".bin"),)


def model_metadata(model: Any, path: Path) -> dict[str, str]:
    """The ssd-deploy metadata strings of an OpenVINO model read from ``path`` (an IR, or an ONNX
    file read by OpenVINO)."""
    if RT_INFO_KEY not in model.get_rt_info():
        raise ExportError(path, "no ssd-deploy metadata in this model. Note: export with ssd-export --format openvino, or convert an ONNX file from ssd-export")
    return {key: value.astype(str) for key, value in model.get_rt_info([RT_INFO_KEY]).astype(dict).items()}


def read_metadata(path: Path) -> dict[str, str]:
    """The metadata strings of the IR ``path`` (OpenVINO reads the ``.xml`` and its weights)."""
    try:
        import openvino
    except ImportError:
        raise ExportError(path, "reading an OpenVINO IR needs the openvino package (pip install openvino)") from None
    try:
        model = openvino.Core().read_model(str(path))
    except Exception as error:  # OpenVINO raises RuntimeError subclasses with long messages
        raise ExportError(path, f"not a readable OpenVINO IR: {str(error).strip().splitlines()[0][:200]}") from None
    return model_metadata(model, path)

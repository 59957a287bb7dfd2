"""Export a detector with decoding and NMS inside the graph: TorchScript, ONNX, AOTInductor.

    from ssd_deploy.export import ExportOptions, export_model, read_metadata
    result = export_model("model.pt", "model.onnx", ExportOptions(format="onnx", dynamic_batch=True))
    read_metadata("model.onnx").class_names

The exported contract is described in :mod:`ssd_deploy.export.metadata`.
"""

from .api import ExportResult, default_output, export_int8_from_float, export_model
from .options import EXPORT_PRECISIONS, ExportOptions
from .formats import FORMATS, ExportFormat, format_of_file, get_format, read_metadata
from .metadata import CONTRACT_VERSION, ExportMetadata, describe_model

__all__ = [
    "CONTRACT_VERSION",
    "FORMATS",
    "ExportFormat",
    "ExportMetadata",
    "EXPORT_PRECISIONS",
    "ExportOptions",
    "ExportResult",
    "default_output",
    "describe_model",
    "export_int8_from_float",
    "export_model",
    "format_of_file",
    "get_format",
    "read_metadata",
]

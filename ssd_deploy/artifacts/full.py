"""The full cached file of a kind: exactly what ``ssd-export`` writes (dynamic batch, verified once).

An INT8 ONNX file quantises the cached float32 ONNX file when there is one, instead of exporting
the graph again; a float file that does not match (e.g. an older version's) is exported in full.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import ExportError
from ..export import ExportOptions, ExportResult, export_int8_from_float, export_model
from .kinds import ExportSettings, FileKind, file_names, int8_quantizer

FLOAT_ONNX, INT8_ONNX = FileKind("onnx", "fp32"), FileKind("onnx", "int8")


def export_options(kind: FileKind, settings: ExportSettings) -> ExportOptions:
    """The :class:`ExportOptions` of the cached full file of ``kind``."""
    on_device = kind.format == "pt2" or kind.precision == "fp16"
    return ExportOptions(
        format=kind.format,
        dynamic_batch=True,
        precision=kind.precision,
        calibration=settings.calibration,
        int8_quantizer=int8_quantizer(),
        device=settings.device if on_device else "cpu",
        verify=settings.verify,
        postprocess=settings.postprocess,
        opencv_dnn=kind.opencv_dnn,
    )


def write_full(checkpoint: Path, path: Path, options: ExportOptions, float_onnx: Path | None = None) -> ExportResult:
    """:func:`~ssd_deploy.export.export_model`, or with ``float_onnx``
    :func:`~ssd_deploy.export.export_int8_from_float` (quantise that file instead of exporting)."""
    if float_onnx is None:
        return export_model(checkpoint, path, options)
    return export_int8_from_float(checkpoint, path, float_onnx, options)


def export_full(checkpoint: Path, kind: FileKind, full: Path, folder: Path, settings: ExportSettings, log: Callable[[str], None]) -> None:
    """Export the full file of ``kind`` from ``checkpoint`` to ``full`` (in the cache ``folder``)."""
    options = export_options(kind, settings)
    float_onnx = _cached_float_onnx(kind, folder, settings)
    if float_onnx is not None:
        log(f"exporting {checkpoint.name} -> {full} (quantising {float_onnx.name}; once; cached)")
        try:
            _log_verification(full, write_full(checkpoint, full, options, float_onnx), log)
            return
        except ExportError as error:
            if error.path != str(float_onnx):
                raise
            log(f"{error}; exporting {full.name} in full instead")
    else:
        log(f"exporting {checkpoint.name} -> {full} (once; cached)")
    _log_verification(full, write_full(checkpoint, full, options), log)


def _log_verification(path: Path, result: ExportResult, log: Callable[[str], None]) -> None:
    if result.verification is not None:
        log(f"{path.name} verified against PyTorch: {result.verification.summary()}")


def _cached_float_onnx(kind: FileKind, folder: Path, settings: ExportSettings) -> Path | None:
    """The cached float32 ONNX file that an INT8 ONNX ``kind`` can quantise, if there is one."""
    if kind != INT8_ONNX:
        return None
    path = folder / file_names(FLOAT_ONNX, settings)[0]
    return path if path.is_file() else None

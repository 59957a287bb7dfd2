"""The engine cache: keys (ONNX bytes, resolved options, TensorRT version, GPU), paths, and the
JSON sidecar ``<engine>.json`` that holds our metadata and the build facts beside each engine.

Engines run only on the TensorRT version and GPU they were built for: :func:`check_engine_matches`
reads that from the sidecar before deserialising. Pure Python: no ``tensorrt`` is needed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from ...errors import SSDDeployError
from ...export.metadata import ExportMetadata
from ...files import file_sha256
from .options import RUNTIME, EngineOptions, profile_shapes

# Bump when build_engine changes what it builds, so cached engines of older code are not reused.
BUILD_RECIPE = 1
SIDECAR_FORMAT = "ssd-deploy-tensorrt-engine"
MIB = 1 << 20


def _onnx_digest(onnx: bytes | str) -> str:
    if isinstance(onnx, (bytes, bytearray, memoryview)):
        return hashlib.sha256(onnx).hexdigest()
    if not re.fullmatch(r"[0-9a-f]{64}", onnx):
        raise SSDDeployError(f"engine cache: {onnx!r} is not a sha256. Note: pass the ONNX bytes or file_sha256(path)")
    return onnx


def options_record(options: EngineOptions) -> dict[str, Any]:
    """``options`` as plain JSON data; the calibration settings only when they matter (int8)."""
    record = dataclasses.asdict(options)
    del record["calibration"], record["calibration_batch"]
    if options.precision == "int8":
        folder = options.calibration.folder
        record["calibration_images"] = str(folder.resolve()) if folder is not None else None
        record["calibration_batch"] = options.calibration_batch
        record["calibration_count"] = options.calibration.count
    return record


def _sha256_json(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def engine_cache_key(onnx: bytes | str, options: EngineOptions, trt_version: str, gpu_name: str, compute_capability: str) -> str:
    """Hex sha256 naming the engine built from ``onnx`` with ``options`` by this TensorRT on this GPU.

    Args:
        onnx: the ONNX file's bytes, or their hex sha256 (:func:`file_sha256`).
        options: as returned by :func:`resolve_options` (so defaults and equal explicit values
            share an engine). Calibration settings count only for int8.
        trt_version: ``tensorrt.__version__``. gpu_name, compute_capability: :func:`gpu_identity`.
    """
    return _sha256_json(
        {
            "recipe": BUILD_RECIPE,
            "onnx_sha256": _onnx_digest(onnx),
            "options": options_record(options),
            "tensorrt_version": trt_version,
            "gpu_name": gpu_name,
            "compute_capability": compute_capability,
        }
    )


def calibration_cache_key(onnx: bytes | str, options: EngineOptions, trt_version: str) -> str:
    """Hex sha256 naming an INT8 calibration cache: same ONNX, images and TensorRT, any GPU or profile."""
    record = options_record(options)
    return _sha256_json(
        {
            "recipe": BUILD_RECIPE,
            "onnx_sha256": _onnx_digest(onnx),
            "tensorrt_version": trt_version,
            "calibration": [record.get(name) for name in ("calibration_images", "calibration_batch", "calibration_count")],
        }
    )


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ssd-deploy/engines`` (``~/.cache/ssd-deploy/engines``): one place per user, so
    engines are shared between projects and a read-only model folder still works."""
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "ssd-deploy" / "engines"


def engine_cache_path(cache_dir: str | Path, onnx_path: str | Path, key: str) -> Path:
    """``<cache_dir>/<onnx stem>-<first 16 hex of key>.engine`` (its sidecar adds ``.json``)."""
    return Path(cache_dir) / f"{Path(onnx_path).stem}-{key[:16]}.engine"


def sidecar_path(engine_path: str | Path) -> Path:
    """``<engine>.json``: our metadata and the facts the engine was built with."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")



def engine_record(
    metadata: ExportMetadata,
    options: EngineOptions,
    trt_version: str,
    gpu_name: str,
    compute_capability: str,
    onnx_path: str | Path,
    onnx_sha256: str,
) -> dict[str, Any]:
    """The sidecar's content for an engine built from an ONNX of ``metadata`` with resolved ``options``.

    ``metadata`` is the ONNX's with ``format`` ``tensorrt``, the engine's precision, and NMS on when
    EfficientNMS was appended.
    """
    engine_metadata = dataclasses.replace(
        metadata, format=RUNTIME, precision=options.precision, nms=metadata.nms or options.efficient_nms
    )
    low, opt, high = profile_shapes(metadata, options)
    return {
        "format": SIDECAR_FORMAT,
        "format_version": 1,
        "metadata": engine_metadata.to_strings(),
        "tensorrt_version": trt_version,
        "gpu_name": gpu_name,
        "compute_capability": compute_capability,
        "build_options": options_record(options),
        "profile": {"min": list(low), "opt": list(opt), "max": list(high)},
        "onnx": {"path": str(onnx_path), "sha256": onnx_sha256},
    }


def read_engine_record(engine_path: str | Path) -> tuple[dict[str, Any], ExportMetadata]:
    """The sidecar of ``engine_path`` and the engine's metadata.

    Raises:
        SSDDeployError: no sidecar (an engine ssd-deploy did not build), or a malformed one.
    """
    engine_path = Path(engine_path)
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise SSDDeployError(
            f"{engine_path}: no {path.name} beside it (the engine's metadata). Note: ssd-deploy runs engines it built; "
            "open the exported .onnx with runtime tensorrt, or call build_engine"
        )
    try:
        record = json.loads(path.read_text())
        if record.get("format") != SIDECAR_FORMAT:
            raise ValueError(f"format {record.get('format')!r}")
        for key in ("tensorrt_version", "gpu_name", "compute_capability", "metadata"):
            record[key]  # noqa: B018 - presence check
    except (OSError, ValueError, KeyError, AttributeError) as error:
        raise SSDDeployError(f"{path}: not an ssd-deploy engine sidecar ({error!r}). Note: rebuild the engine") from None
    return record, ExportMetadata.from_strings(record["metadata"], path)


def check_engine_matches(engine_path: str | Path, record: dict[str, Any], trt_version: str, gpu_name: str, compute_capability: str) -> None:
    """Raise SSDDeployError unless the engine was built by this TensorRT for this GPU (name and
    compute capability): TensorRT engines do not move between versions or GPU models."""
    built = (record["tensorrt_version"], record["gpu_name"], record["compute_capability"])
    here = (trt_version, gpu_name, compute_capability)
    if built != here:
        raise SSDDeployError(
            f"{engine_path}: built with TensorRT {built[0]} for GPU {built[1]} (compute capability {built[2]}); "
            f"this machine has TensorRT {here[0]} / GPU {here[1]} (compute capability {here[2]}). "
            "Note: rebuild it (delete the file, or open the exported .onnx with runtime tensorrt, which builds and "
            "caches an engine for this machine)"
        )

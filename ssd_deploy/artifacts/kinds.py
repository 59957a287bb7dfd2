"""What a cached file is (format and precision), how the cache exports it, and its name.

    <cache_dir>/<checkpoint stem>-<digest>/<format>-<precision>[-<int8 quantiser and calibration>][-<device>][-<thresholds>]<suffix>
                                          └ the same name + ``-network``: its network-only companion
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

from ..calibration import Calibration, as_calibration
from ..export import get_format
from ..files import file_sha256
from ..postprocess import PostprocessConfig

# Part of every cache key: raise it when cached files change meaning, so that older entries are
# exported again instead of being misread. 2: network-only ONNX outputs are ``loc``/``logits``
# (``boxes``/``scores`` before) and companions say ``network_only`` in their metadata.
CACHE_VERSION = 2


@dataclass(frozen=True)
class FileKind:
    """An exported file a variant needs: format (``onnx``, ``torchscript``, ``pt2``) and the
    precision of its weights (``fp32``, ``fp16``, ``int8``); None for the checkpoint itself.
    ``opencv_dnn``: an ONNX file exported for OpenCV DNN (``ssd-export --opencv-dnn``)."""

    format: str | None
    precision: str = "fp32"
    opencv_dnn: bool = False


@dataclass(frozen=True)
class ExportSettings:
    """How cached files are exported (their names encode everything that changes them).

    Attributes:
        cache_dir: the folder for exported files (``<out>/cache`` by default).
        calibration: the INT8 calibration images: a Calibration (folder and count) or a folder.
        device: ``cpu`` or ``cuda``: pt2 is compiled for it; fp16 files are checked on it.
        verify: check each exported file against PyTorch once, when it is written.
        postprocess: the thresholds inside exported graphs (and of the pytorch runtime).
        jobs: on the CPU, export up to this many missing files at once, each in its own process
            (AOTInductor compiles and ONNX exports are mostly single-threaded); 1: one at a time,
            in this process. It does not change the files.
    """

    cache_dir: Path
    calibration: Calibration = Calibration()
    device: str = "cpu"
    verify: bool = True
    postprocess: PostprocessConfig = PostprocessConfig()
    jobs: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "calibration", as_calibration(self.calibration))


def int8_quantizer() -> str:
    """The quantiser ``ssd-export --int8`` picks by default (NNCF when installed)."""
    return "nncf" if importlib.util.find_spec("nncf") else "ort"


def checkpoint_digest(path: Path) -> str:
    """First 10 hex digits of the SHA-256 of :data:`CACHE_VERSION` and the file: the cache key of
    everything exported from it."""
    return file_sha256(path, f"ssd-deploy export cache {CACHE_VERSION}\n".encode())[:10]


def cache_folder(settings: ExportSettings, checkpoint: Path) -> Path:
    """Where the files exported from ``checkpoint`` are cached: ``<cache_dir>/<stem>-<digest>``."""
    return settings.cache_dir / f"{checkpoint.stem}-{checkpoint_digest(checkpoint)}"


def file_names(kind: FileKind, settings: ExportSettings) -> tuple[str, str]:
    """Cache file names of the full file and its companion, e.g. ``onnx-int8-nncf-200-1a2b3c4d.onnx``."""
    suffix = get_format(kind.format).suffix
    tag = f"{kind.format}-{kind.precision}"
    if kind.precision == "int8":
        calibration = settings.calibration
        tag += f"-{int8_quantizer()}-{calibration.count}-{_short_hash(str(Path(calibration.folder).resolve()))}"
    if kind.format == "pt2" or kind.precision == "fp16":
        tag += f"-{torch.device(settings.device).type}"
    if kind.opencv_dnn:
        tag += "-opencv"
    post = settings.postprocess
    if post != PostprocessConfig():
        tag += f"-s{post.score_threshold:g}-iou{post.iou_threshold:g}-k{post.max_detections}-top{post.topk_candidates}-pre{post.pre_nms_topk}"
    return f"{tag}{suffix}", f"{tag}-network{suffix}"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def exported_kinds(kinds: Iterable[FileKind]) -> list[FileKind]:
    """The exported files among ``kinds`` (not the checkpoint itself), each once, in a fixed order."""
    return sorted({kind for kind in kinds if kind.format is not None}, key=lambda k: (k.format, k.precision, k.opencv_dnn))

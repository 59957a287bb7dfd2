"""Datasets: VOC, COCO and Open Images CSV readers checked into one ``DetectionDataset``, and the
generated shapes dataset.

``load_dataset`` and ``DetectionDataset`` import torch, so they are imported on first use: the
``ssd-shapes`` command (which only needs ``shapes``) then starts without it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "DetectionDataset": "dataset",
    "load_dataset": "dataset",
    "detect_format": "dataset",
    "ImageRecord": "records",
    "DataReport": "records",
    "Problem": "records",
    "with_background": "labels",
    "VOC_CLASSES": "voc",
    "read_voc": "voc",
    "read_coco": "coco",
    "read_open_images": "openimages",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)

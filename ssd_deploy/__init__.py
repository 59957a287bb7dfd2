"""ssd-deploy: train SSD detectors, export them with decoding and NMS in the graph, and run
them with identical results on every runtime.

    import ssd_deploy

    detector = ssd_deploy.load("model.onnx")      # a checkpoint or any exported file; runtime from the file
    detections = detector("photo.jpg")            # a path, an OpenCV array, a PIL image, or a list of them
    print(detections.boxes, detections.scores, detections.names())
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .version import __version__

__all__ = ["__version__", "load"]


def load(path: str | Path, **options: Any):
    """The :class:`~ssd_deploy.runtimes.Detector` of a model file: :func:`ssd_deploy.runtimes.load`
    (runtime, device, precision, ... as keywords), imported on first use so that
    ``import ssd_deploy`` stays light."""
    from .runtimes import load as load_detector

    return load_detector(path, **options)

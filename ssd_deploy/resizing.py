"""The names of the resize methods a model can record (see :mod:`ssd_deploy.pipeline`, which
implements them). Kept apart so that configs and metadata can name a method without importing
the image pipeline."""

from __future__ import annotations

from .errors import ConfigError

RESIZE_METHODS = ("opencv", "torchvision")
DEFAULT_RESIZE = "opencv"  # every file and checkpoint written before the method was recorded


def check_resize(resize: str, where: object) -> str:
    """``resize`` if it is a known method, else a ConfigError naming ``where`` it came from."""
    if resize not in RESIZE_METHODS:
        raise ConfigError(f"{where}: resize method {resize!r} is unknown. Note: expected one of {', '.join(RESIZE_METHODS)}")
    return resize

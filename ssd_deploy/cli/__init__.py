"""Console scripts. Each is a thin layer over library functions."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from ..errors import SSDDeployError
from ..postprocess import DEFAULT_PRE_NMS_TOPK

PRE_NMS_TOPK_HELP = (
    f"per image, only the best this many candidates over all classes enter NMS, as in TensorRT's EfficientNMS "
    f"(default {DEFAULT_PRE_NMS_TOPK}); the detections are then the first ones of the exact result, all of them "
    "unless fewer than --max-det survive NMS among those candidates; 0: every candidate, exactly torchvision's selection"
)


class _StderrHandler(logging.Handler):
    """Writes each record as ``warning: <message>`` to the current ``sys.stderr`` (looked up at
    each record, so that redirections, e.g. a test capturing the output, see it)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"{record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)


def log_warnings_to_stderr() -> None:
    """Show ssd-deploy's warnings (e.g. each bad file a dataset skips) as one line each on stderr.

    Without a handler Python prints them anyway, but only while no other handler is configured
    anywhere in the process; this makes the console scripts' output the same everywhere."""
    logger = logging.getLogger("ssd_deploy")
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler(logging.WARNING)
        logger.addHandler(handler)


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run ``main``; expected errors print one line (no traceback) and give exit code 2."""
    log_warnings_to_stderr()
    try:
        return main(argv)
    except SSDDeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

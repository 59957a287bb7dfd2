"""Console scripts. Each is a thin layer over library functions."""

from __future__ import annotations

import argparse
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

DEVICE_HELP = "auto: CUDA when this machine has it, else the CPU; or cpu, cuda, cuda:N"


def add_device_flag(parser: argparse.ArgumentParser, help: str = DEVICE_HELP) -> None:
    """``--device``, ``auto`` by default in every console script (see :func:`ssd_deploy.devices.resolve_auto`)."""
    parser.add_argument("--device", default="auto", help=help)


def add_progress_flag(parser: argparse.ArgumentParser, help: str = "progress bars") -> None:
    """``--progress/--no-progress``, on by default in every console script."""
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help=help)


def duration(text: str) -> float | None:
    """``--time``'s argument: hours from 90s, 5m, 1.5h or a number of hours; 0 or none: no limit."""
    from ..training.budget import parse_duration

    if text.strip().lower() in ("0", "none", "off"):
        return None
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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

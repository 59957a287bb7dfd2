"""What a training run shows and logs: the step's progress bar, the epoch's log row and line, and
Ctrl-C deferred to the end of the step in progress."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from typing import Any

import torch
from tqdm import tqdm


def show_progress(bar: tqdm, sums: dict[str, float], elapsed: float, optimizer: torch.optim.Optimizer) -> None:
    """Advance the epoch's bar by one step: mean losses so far, images per second, learning rate."""
    steps = sums["steps"]
    bar.set_postfix(loss=f"{sums['loss'] / steps:.3f}", loc=f"{sums['loss_loc'] / steps:.3f}",
                    cls=f"{sums['loss_cls'] / steps:.3f}", img_s=f"{sums['images'] / max(elapsed, 1e-9):.1f}",
                    lr=f"{optimizer.param_groups[0]['lr']:.2e}")
    bar.update(1)


@contextlib.contextmanager
def deferred_interrupt():
    """Turn the first Ctrl-C (SIGINT) into a request to stop after the current step; a second one
    interrupts at once. Outside the main thread (no signal handlers there) Ctrl-C stays immediate."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request_stop(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        tqdm.write("stopping after this step (Ctrl-C again to stop now)")

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def epoch_row(epoch: int, sums: dict[str, float] | None, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The log row of epoch ``epoch`` (0-based) from its loss sums and counts."""
    sums = sums or {}
    steps = max(1, sums.get("steps", 0))
    return {
        "epoch": epoch + 1,
        "lr": optimizer.param_groups[0]["lr"],
        "loss": sums.get("loss", math.nan) / steps,
        "loss_loc": sums.get("loss_loc", math.nan) / steps,
        "loss_cls": sums.get("loss_cls", math.nan) / steps,
        "images_per_s": sums.get("images", 0) / max(sums.get("seconds", 0.0), 1e-9),
        "epoch_s": sums.get("seconds", 0.0),
    }


def print_epoch(row: dict[str, Any], epochs: int) -> None:
    """The epoch's line: ``row`` (:func:`epoch_row`, validation metrics if any) of ``epochs``."""
    text = (f"epoch {row['epoch']}/{epochs}: loss {row['loss']:.3f} (loc {row['loss_loc']:.3f}, cls {row['loss_cls']:.3f}), "
            f"{row['images_per_s']:.1f} img/s, {row['epoch_s']:.0f} s")
    if "map50" in row:
        text += f"; val mAP@0.5 {_number(row['map50'])} (VOC07 {_number(row['map50_voc07'])}), COCO AP {_number(row['coco_ap'])}"
    tqdm.write(text)


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-"

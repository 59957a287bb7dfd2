"""A time limit on training (``ssd-train --time``): how many steps fit, and a schedule over them.

Ultralytics' ``time=`` trains for a wall-clock budget; here the limit caps a run (``--epochs``
stays the most it trains) and the run is planned rather than cut: a cosine schedule stopped by the
clock would end at a high learning rate, so the schedule is fitted to the steps that fit instead.

    the end of every epoch: planned steps = steps done + the steps the time left buys at that
        epoch's seconds per step, after keeping the time the run's end needs
        (:attr:`StepPlan.finish_images`)
    step PROBE_STEPS (timed from step WARM_STEPS, past the first steps' set-up costs): the same,
        but only when the first epoch alone would not fit in the time left. Its first steps are
        the slowest (images decoded for the first time, kernels set up), so planning there would
        shorten the schedule of runs that have time for every step.
    every step: once the time is spent, the run ends at that step

The learning-rate schedule reads the planned total at every step (:func:`.optim.build_scheduler`),
so it anneals over the steps that fit. The plan and the time spent are saved in ``last.pt``:
``--resume`` continues both.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from tqdm import tqdm

from ..errors import ConfigError

PROBE_STEPS = 30
WARM_STEPS = 5
# Precise BN and validation run the network forward only, about a third of a training step per
# image here; counted as half, so that the plan errs towards ending early.
FORWARD_COST = 0.5

_UNITS = {"s": 1 / 3600, "m": 1 / 60, "h": 1.0}


def parse_duration(text: str | float) -> float:
    """Hours from ``"90s"``, ``"5m"``, ``"1.5h"`` or a bare number of hours (Ultralytics' ``time=``)."""
    if isinstance(text, (int, float)):
        hours = float(text)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([smh]?)\s*", text)
        if match is None:
            raise ConfigError(f"time {text!r}. Note: expected a duration such as 90s, 5m, 1.5h or a number of hours")
        hours = float(match.group(1)) * _UNITS.get(match.group(2) or "h", 1.0)
    if not hours > 0:
        raise ConfigError(f"time {text!r}. Note: must be positive")
    return hours


@dataclass
class StepPlan:
    """How many optimiser steps a run takes: every epoch's, or those that fit in ``seconds``.

    Attributes:
        max_steps: the steps of all ``--epochs``.
        seconds: the time limit of the whole run (resumed parts included); None: no limit.
        finish_images: the work after the last step, in training images' worth of time (precise
            BN and validation images at :data:`FORWARD_COST`, plus any the caller reserves).
        images_per_step: training images per optimiser step, over all processes.
        total: the planned number of steps (``max_steps`` until a limit revises it).
    """

    max_steps: int
    seconds: float | None
    finish_images: float
    images_per_step: int
    total: int = 0

    def __post_init__(self) -> None:
        self.total = self.total or self.max_steps

    @property
    def limited(self) -> bool:
        return self.seconds is not None

    def epochs(self, steps_per_epoch: int) -> int:
        """Epochs the plan reaches into (the last may end part-way)."""
        return -(-self.total // steps_per_epoch)

    def revise(self, step: int, elapsed: float, seconds_per_step: float) -> str | None:
        """Plan from ``step`` (steps done), ``elapsed`` seconds spent and the measured speed;
        returns a line saying what changed, or None."""
        if self.seconds is None or seconds_per_step <= 0:
            return None
        fitting = int(max(0.0, self.seconds - elapsed - self._finish(seconds_per_step)) // seconds_per_step)
        total = max(step, min(self.max_steps, step + fitting))
        if total == self.total:
            return None
        self.total = total
        return (f"time limit {self.seconds / 60:.1f} min: {total} of the {self.max_steps} steps fit ({total / self.max_steps:.0%}) "
                f"at {seconds_per_step * 1000:.0f} ms per step; the learning-rate schedule now ends there")

    def spent(self, elapsed: float, seconds_per_step: float) -> bool:
        """Whether the time is up: what is left would not pay for one more step and the run's end."""
        if self.seconds is None:
            return False
        return elapsed + self._finish(seconds_per_step) + seconds_per_step > self.seconds

    def _finish(self, seconds_per_step: float) -> float:
        """Seconds the run's end takes at this speed."""
        return self.finish_images / self.images_per_step * seconds_per_step


class Pacer:
    """Times a run's steps and keeps its :class:`StepPlan` to the time limit.

    ``agree`` makes every process take the main process's decision (a broadcast under DDP, where
    each process measures its own clock); by default the value itself. ``log`` prints a revised
    plan (None: silent, as on the other processes).
    """

    def __init__(self, plan: StepPlan, steps_per_epoch: int, elapsed_before: float = 0.0, agree=None, log=tqdm.write) -> None:
        self.plan, self.steps_per_epoch, self.elapsed_before, self.log = plan, steps_per_epoch, elapsed_before, log
        self.agree = agree or (lambda value: value)
        self.started = time.perf_counter()
        self.steps = 0  # steps taken by this process since it started (or resumed)
        self.warm_at: float | None = None
        self.seconds_per_step: float | None = None

    def elapsed(self) -> float:
        """Seconds the run has spent, its resumed parts included."""
        return self.elapsed_before + time.perf_counter() - self.started

    def after_step(self, step: int) -> bool:
        """Record a step (``step`` steps done in all); True when the run must end here."""
        if not self.plan.limited:
            return step >= self.plan.total
        self.steps += 1
        if self.steps == WARM_STEPS:
            self.warm_at = time.perf_counter()
        elif self.steps == PROBE_STEPS and self.warm_at is not None:
            self.seconds_per_step = (time.perf_counter() - self.warm_at) / (PROBE_STEPS - WARM_STEPS)
            if self.agree(int(self.steps_per_epoch * self.seconds_per_step > self.plan.seconds - self.elapsed())):
                self._revise(step, self.seconds_per_step)
        if self.seconds_per_step is not None and self.agree(int(self.plan.spent(self.elapsed(), self.seconds_per_step))):
            self.plan.total = step
        return step >= self.plan.total

    def after_epoch(self, step: int, seconds: float, steps: int) -> None:
        """Revise the plan with an epoch's speed (``steps`` steps in ``seconds``), unless the planned
        steps are done (the run ends with this epoch)."""
        if self.plan.limited and steps > 0 and step < self.plan.total:
            self._revise(step, seconds / steps)

    def _revise(self, step: int, seconds_per_step: float) -> None:
        self.seconds_per_step = seconds_per_step
        before = self.plan.total
        message = self.plan.revise(step, self.elapsed(), seconds_per_step)
        self.plan.total = self.agree(self.plan.total)
        if message and self.plan.total != before and self.log is not None:
            self.log(message)

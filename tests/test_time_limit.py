"""Training under a time limit (``ssd-train --time``, ``ssd-demo --time``): the durations it reads,
the steps it plans, and a run that ends early with its schedule annealed over the steps that fit.

Time is a fake clock here that advances only when a training step runs, so the plans below are
the arithmetic of :mod:`ssd_deploy.training.budget`, the same on any CPU."""

from __future__ import annotations

import argparse
import dataclasses
import time

import pytest

from ssd_deploy import demo
from ssd_deploy.checkpoint import load_checkpoint
from ssd_deploy.cli import duration
from ssd_deploy.errors import ConfigError
from ssd_deploy.training import TrainConfig
from ssd_deploy.training import budget, trainer
from ssd_deploy.training.budget import Pacer, StepPlan, parse_duration
from ssd_deploy.training.trainer import train

from helpers import tiny_config


@pytest.mark.parametrize("text, hours", [("90s", 0.025), ("5m", 5 / 60), ("1.5h", 1.5), ("2", 2.0), (" 30 m ", 0.5), ("1e-2h", 0.01)])
def test_durations_read_as_hours(text, hours):
    assert parse_duration(text) == pytest.approx(hours, rel=1e-12)


@pytest.mark.parametrize("text, problem", [("5x", "expected a duration such as 90s, 5m, 1.5h"), ("m", "expected a duration"),
                                           ("-1h", "expected a duration"), ("1.5 hours", "expected a duration"), ("0s", "must be positive")])
def test_bad_durations_say_what_is_expected(text, problem):
    with pytest.raises(ConfigError, match=problem):
        parse_duration(text)


def test_a_config_file_takes_the_flags_durations():
    assert TrainConfig.from_dict({"time": "90m"}).time == pytest.approx(1.5)
    with pytest.raises(ConfigError, match="expected a duration"):
        TrainConfig.from_dict({"time": "soon"})


def test_the_flag_takes_0_or_none_as_no_limit():
    assert duration("0") is None and duration("none") is None and duration("8.5m") == pytest.approx(8.5 / 60)
    with pytest.raises(argparse.ArgumentTypeError, match="'soon'"):
        duration("soon")


def test_plan_spends_what_is_left_after_the_runs_end():
    # 100 s allowed, 10 s spent at step 30, 0.125 s per step (binary fractions: exact arithmetic);
    # the end (80 images at 8 per step) costs 10 steps' time, 1.25 s: 88.75 s buy 710 more steps.
    plan = StepPlan(max_steps=1000, seconds=100.0, finish_images=80, images_per_step=8)
    assert plan.revise(30, 10.0, 0.125) is not None and plan.total == 740
    assert plan.epochs(300) == 3 and plan.epochs(200) == 4
    plan.revise(30, 10.0, 0.0625)  # fast enough for every step: capped at the epochs'
    assert plan.total == 1000
    plan.revise(500, 99.5, 0.125)  # nothing left: ends where it is, never before
    assert plan.total == 500
    unlimited = StepPlan(max_steps=1000, seconds=None, finish_images=0, images_per_step=8)
    assert unlimited.revise(30, 1e9, 1.0) is None and unlimited.total == 1000 and not unlimited.spent(1e9, 1.0)


class FakeClock:
    """``time.perf_counter`` for the budget and the trainer: moves ``step_seconds(n)`` at the n-th
    training step (1-based) and not otherwise."""

    def __init__(self, step_seconds):
        self.now, self.steps, self.step_seconds = 0.0, 0, step_seconds

    def perf_counter(self) -> float:
        return self.now

    def step(self) -> None:
        self.steps += 1
        self.now += self.step_seconds(self.steps)


@pytest.fixture
def fake_clock(monkeypatch):
    def install(step_seconds):
        clock = FakeClock(step_seconds)
        monkeypatch.setattr(budget, "time", clock)
        monkeypatch.setattr(trainer, "time", clock)
        monkeypatch.setattr(budget, "WARM_STEPS", 1)
        monkeypatch.setattr(budget, "PROBE_STEPS", 3)
        real_forward = trainer.MultiBoxLoss.forward

        def timed_forward(self, *args, **kwargs):
            clock.step()
            return real_forward(self, *args, **kwargs)

        monkeypatch.setattr(trainer.MultiBoxLoss, "forward", timed_forward)
        return clock

    return install


def test_a_limited_run_plans_the_steps_that_fit_and_anneals_over_them(tiny_data, tmp_path, fake_clock):
    # 3 steps per epoch (24 images, batch 8), 6 epochs: 18 steps of 1 s; 12 s allowed. The run's
    # end (12 precise-BN + 3 validation images' worth at batch 8) is 1.875 s: 10 steps fit.
    fake_clock(lambda step: 1.0)
    config = tiny_config(tiny_data, tmp_path / "run", epochs=6, schedule="cosine", precise_bn_images=24, time=12 / 3600)
    result = train(config)
    assert (result.steps_done, result.all_steps) == (10, 18)
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]  # the 4th epoch ends after 1 of its 3 steps
    assert "map50" in result.history[-1]  # the last epoch is validated
    assert result.history[-1]["lr"] == 0.0  # the cosine reached its end at step 10, not at 18
    data = load_checkpoint(result.last_checkpoint)[2]
    assert (data["steps_done"], data["planned_steps"], data["all_steps"]) == (10, 10, 18)
    assert data["elapsed_s"] == pytest.approx(10.0)
    assert demo._steps(data, 6) == (10, 10, 18)  # the demo reuses it as finished


def test_a_run_falling_behind_its_plan_stops_when_the_time_is_spent(tiny_data, tmp_path, fake_clock):
    # Planned at 1 s per step (10 steps, as above), then steps 7 on take 3 s: after step 8 (12 s
    # spent) one more step and the run's end no longer fit, and the run ends there.
    fake_clock(lambda step: 1.0 if step <= 6 else 3.0)
    config = tiny_config(tiny_data, tmp_path / "run", epochs=6, schedule="cosine", precise_bn_images=24, time=12 / 3600)
    result = train(config)
    assert result.steps_done == 8 and result.best_checkpoint is not None
    assert [row["epoch"] for row in result.history] == [1, 2, 3]


def test_an_epoch_longer_than_the_time_is_planned_after_its_first_steps(tiny_data, tmp_path, fake_clock):
    # One epoch of 12 steps (batch 2) at 1 s, 6 s allowed: at step 3 the epoch alone would not fit,
    # so the run plans there. Its end (3 validation images' worth at 2 per step) is 1.5 s: 4 steps.
    fake_clock(lambda step: 1.0)
    config = tiny_config(tiny_data, tmp_path / "run", epochs=1, batch_size=2, schedule="cosine", warmup_epochs=0.0,
                         precise_bn_images=0, time=6 / 3600)
    result = train(config)
    assert (result.steps_done, result.all_steps) == (4, 12)
    assert result.history[-1]["lr"] == 0.0 and "map50" in result.history[-1]


def test_without_a_limit_nothing_changes(tiny_data, tmp_path, fake_clock):
    fake_clock(lambda step: 1000.0)
    result = train(tiny_config(tiny_data, tmp_path / "run", epochs=2))
    assert (result.steps_done, result.all_steps) == (6, 6)
    assert load_checkpoint(result.last_checkpoint)[2]["planned_steps"] == 6


def test_pacer_keeps_the_main_processes_decision():
    # Time for about 50 steps on this process; the main process's plan (42) is the one kept.
    plan = StepPlan(max_steps=100, seconds=0.5, finish_images=0, images_per_step=8)
    lines = []
    pacer = Pacer(plan, 10, agree=lambda value: 42 if value > 1 else value, log=lines.append)
    pacer._revise(5, 0.01)
    assert plan.total == 42 and len(lines) == 1


def test_the_demo_reuses_a_limited_run_and_trains_every_step_without_the_limit(tiny_data, tmp_path, fake_clock, capsys):
    # The demo keeps the time of RESERVE_IMAGES training images for its later steps: at 1 s per
    # step of 8 images that is (6000 + 12 precise-BN + 3 validation images' worth) / 8 = 751.875 s.
    # 756.4 s leave time for 4 of the 6 steps (2 epochs of 24 images at batch 8).
    fake_clock(lambda step: 1.0)
    config = demo.DemoConfig(out=tmp_path / "demo", epochs=2, time=756.4 / 3600, progress=False)
    train_dir, val_dir = tiny_data / "train", tiny_data / "val"
    _, summary = demo._train(config, train_dir, val_dir, time.perf_counter())
    assert (summary["steps"], summary["all_steps"]) == (4, 6)
    assert "4 of the recipe's 6 steps" in demo._cut(summary)

    _, again = demo._train(config, train_dir, val_dir, time.perf_counter())
    assert again["reused"] and (again["steps"], again["all_steps"]) == (4, 6)
    assert "reusing the finished run" in capsys.readouterr().out

    _, full = demo._train(dataclasses.replace(config, time=None), train_dir, val_dir, time.perf_counter())
    assert not full["reused"] and (full["steps"], full["all_steps"]) == (6, 6) and demo._cut(full) == ""
    assert "stopped at a time limit after 4 of 6 steps; training every step again" in capsys.readouterr().out

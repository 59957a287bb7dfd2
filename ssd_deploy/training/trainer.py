"""The training loop: epochs of MultiBoxLoss steps, validation, logs and atomic checkpoints.

    data (augmented, per-epoch seeded) -> SSD -> MultiBoxLoss -> optimiser + per-step schedule
    each epoch: validate (mAP through the deployed pipeline) -> log.csv / TensorBoard -> last.pt,
    best.pt -> at the end curves.png

``<output>/last.pt`` is written after every epoch (and on Ctrl-C, mid-epoch); ``--resume`` from it
continues exactly where the run stopped. Ctrl-C is deferred to the end of the step in progress
(a step interrupted half-way would have updated BatchNorm statistics without its weight update);
a second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm import tqdm

from ..checkpoint import load_checkpoint, save_checkpoint
from ..errors import CheckpointError
from ..loss import LossConfig, MultiBoxLoss
from .budget import FORWARD_COST, Pacer, StepPlan
from .config import TrainConfig
from .console import deferred_interrupt, epoch_row, print_epoch, show_progress
from .data import MemoryCachedDataset, epoch_loader, load_datasets, train_transform
from .distributed import DistContext, any_rank, barrier, broadcast_int, init_distributed, shutdown, weights_in_sync
from .history import History
from .model import build_training_model
from .optim import build_optimizer, build_scheduler
from .precise_bn import precise_bn
from .validate import evaluate_detector, model_detector

# Settings a resumed run may change; everything else comes from the checkpoint.
RESUMABLE_OVERRIDES = ("epochs", "time", "workers", "device", "progress", "output", "tensorboard", "eval_every", "cache_images")


@dataclass
class TrainResult:
    """What a run produced."""

    output: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    history: list[dict[str, Any]]
    best_value: float | None
    interrupted: bool = False
    steps_done: int = 0
    all_steps: int = 0  # the steps of every epoch; more than steps_done when a time limit ended the run early


@dataclass
class _State:
    """Where the run is: the next batch to run is batch ``iteration`` of epoch ``epoch``."""

    epoch: int = 0
    iteration: int = 0
    sums: dict[str, float] | None = None  # loss sums and counts of the epoch in progress
    best_value: float | None = None
    elapsed_s: float = 0.0  # seconds the run spent before this process (resumed) began
    steps: int = 0  # optimiser steps done in all (the last epoch may end part-way under a time limit)


def resume_config(path: str | Path, overrides: dict[str, Any]) -> TrainConfig:
    """The configuration stored in checkpoint ``path`` with the allowed ``overrides`` applied."""
    _, _, data = load_checkpoint(path)
    if "train_config" not in data:
        raise CheckpointError(path, "not a training checkpoint (no train_config). Note: resume from <output>/last.pt")
    config = TrainConfig.from_dict(data["train_config"], source=str(path))
    changes = {k: v for k, v in overrides.items() if k in RESUMABLE_OVERRIDES}
    return replace(config, **changes)


def train(config: TrainConfig, resume: str | Path | None = None, reserve_images: int = 0) -> TrainResult:
    """Train a detector as ``config`` says; ``resume`` continues from a ``last.pt``.

    Run under ``torchrun`` for DistributedDataParallel (see :mod:`.distributed`). With a time
    limit (``config.time``), ``reserve_images`` keeps time after the run for work that costs as
    much as training that many images (the demo's export and benchmarks; :mod:`.budget`).
    """
    context = init_distributed(config.device)
    try:
        return Trainer(config, context, resume, reserve_images).run()
    finally:
        shutdown(context)


class Trainer:
    """One training run. Set-up (fresh or resumed) happens in the constructor, in a fixed order:
    every draw of torch's RNG (weight initialisation, then data order and augmentation) follows
    the seed as it always has, so a run with a given seed gives the same weights.

    Attributes:
        model: the SSD being trained; ``network`` is the same model, wrapped for DDP when
            distributed. state: the epoch and batch reached (what ``last.pt`` records).
        history: the log (CSV, TensorBoard, curves) on the main process; None on the others.
    """

    def __init__(self, config: TrainConfig, context: DistContext, resume: str | Path | None = None, reserve_images: int = 0) -> None:
        self.config, self.context, self.resume = config, context, resume
        output = Path(config.output)
        self.output, self.last, self.best = output, output / "last.pt", output / "best.pt"
        torch.manual_seed(config.seed)
        self.train_set, self.val_set = load_datasets(config, context)
        self.class_names = list(self.train_set.class_names)
        self.state = _State()
        checkpoint = self._set_up_model()
        self._set_up_data()
        self.plan = self._step_plan(reserve_images)
        self._set_up_optimisation()
        if checkpoint is not None:
            self._restore(checkpoint)
        self.network = self._wrap_network()
        self.loss_fn = MultiBoxLoss(self.model.priors, LossConfig(classification=config.loss)).to(context.device)
        self.pacer = Pacer(self.plan, self.steps_per_epoch, self.state.elapsed_s, lambda value: broadcast_int(context, value),
                           tqdm.write if context.is_main else None)

    @property
    def epochs(self) -> int:
        """Epochs the run reaches into: ``config.epochs``, or fewer under a time limit."""
        return self.plan.epochs(self.steps_per_epoch)

    def _set_up_model(self) -> dict[str, Any] | None:
        """Build the model, or load it from the checkpoint to resume (returned, else None)."""
        if self.resume is not None:
            model, names, checkpoint = load_checkpoint(self.resume)
            if names != self.class_names:
                raise CheckpointError(self.resume, f"checkpoint classes {names[1:]} differ from the dataset's {self.class_names[1:]}")
        else:
            model, checkpoint = build_training_model(self.config, len(self.class_names)), None
        model.to(self.context.device)
        if self.config.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        return checkpoint

    def _set_up_data(self) -> None:
        """The training transform for the model's input, the optional image cache, steps per epoch."""
        config, model = self.config, self.model
        self.train_set.transform = train_transform(config, model.config.input_size, model.config.mean)
        if config.cache_images:
            self.train_set = MemoryCachedDataset(self.train_set)
            if self.context.is_main:
                print(f"data: caching the {len(self.train_set)} resized training images in memory as they are first read "
                      f"(~{self.train_set.estimated_bytes(model.config.input_size) / 2**20:.0f} MiB per training process)")
        self.steps_per_epoch = len(epoch_loader(self.train_set, config, 0, self.context))
        if self.steps_per_epoch == 0:
            raise CheckpointError(config.data, f"{len(self.train_set)} training images: fewer than one batch per process")

    def _step_plan(self, reserve_images: int) -> StepPlan:
        """Every epoch's steps, or with a time limit those that fit (:mod:`.budget`)."""
        config = self.config
        finish = reserve_images + FORWARD_COST * min(config.precise_bn_images, len(self.train_set))
        if self.val_set is not None:
            finish += FORWARD_COST * len(self.val_set)
        seconds = config.time * 3600 if config.time is not None else None
        return StepPlan(config.epochs * self.steps_per_epoch, seconds, finish, config.batch_size * self.context.world_size)

    def _set_up_optimisation(self) -> None:
        """Optimiser, per-step schedule, AMP loss scaler, and the log (main process only)."""
        config, context = self.config, self.context
        self.use_amp = config.amp if config.amp is not None else context.device.type == "cuda"
        self.scaler = _grad_scaler(context.device, self.use_amp)
        self.optimizer = build_optimizer(self.model, config, loss_scaling=self.scaler.is_enabled())
        self.scheduler = build_scheduler(self.optimizer, config, self.steps_per_epoch, lambda: self.plan.total)
        self.history = History(self.output, tensorboard=config.tensorboard and context.is_main) if context.is_main else None

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        """Continue from ``checkpoint``: optimiser, schedule, scaler, position and log."""
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        load_scaler_state(self.scaler, checkpoint.get("scaler") or {})
        self.state = _State(int(checkpoint["epoch"]), int(checkpoint["iteration"]), checkpoint.get("epoch_sums"), checkpoint.get("best_value"),
                            float(checkpoint.get("elapsed_s") or 0.0),
                            int(checkpoint.get("steps_done", int(checkpoint["epoch"]) * self.steps_per_epoch + int(checkpoint["iteration"]))))
        if self.plan.limited and checkpoint.get("planned_steps"):
            self.plan.total = min(int(checkpoint["planned_steps"]), self.plan.max_steps)
        if self.history is not None:
            self.history.rows = list(checkpoint.get("history", []))
        if self.context.is_main:
            print(f"resume: {self.resume} at epoch {self.state.epoch + 1}, batch {self.state.iteration} of {self.steps_per_epoch}")

    def _wrap_network(self) -> nn.Module:
        """The model itself, or under DistributedDataParallel when several processes train."""
        context, model = self.context, self.model
        if not context.distributed:
            return model
        if context.is_main:
            print(f"distributed: {context.world_size} processes ({dist.get_backend()})")
        find_unused = model.config.feature_indices is not None  # e.g. VGG's conv4_3 L2Norm when map 0 is unused
        return nn.parallel.DistributedDataParallel(
            model, device_ids=[context.device.index] if context.device.type == "cuda" else None, find_unused_parameters=find_unused
        )

    def save(self, path: Path) -> Path:
        """Write a training checkpoint (model, optimiser, schedule, scaler, position, log, config)."""
        state = self.state
        return save_checkpoint(
            path, self.model, self.class_names,
            optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(), scaler=self.scaler.state_dict(),
            epoch=state.epoch, iteration=state.iteration, epoch_sums=state.sums, best_value=state.best_value,
            steps_done=self.state.steps, planned_steps=self.plan.total, all_steps=self.plan.max_steps, elapsed_s=self.pacer.elapsed(),
            history=self.history.rows if self.history is not None else [], train_config=self.config.to_dict(),
        )

    def run(self) -> TrainResult:
        """Train the remaining epochs; Ctrl-C saves ``last.pt`` and returns (``interrupted``)."""
        interrupted = False
        try:
            with deferred_interrupt() as stop_requested:
                while self.state.epoch < self.epochs:
                    self.train_epoch(stop_requested)
                    self.end_epoch()
        except KeyboardInterrupt:
            interrupted = True
            if self.context.is_main:
                self.save(self.last)
                print(f"\ninterrupted: saved {self.last} (epoch {self.state.epoch + 1}, batch {self.state.iteration} of "
                      f"{self.steps_per_epoch}). Note: continue with ssd-train --resume {self.last}")
        self._finish(interrupted)
        history = self.history.rows if self.history else []
        best = self.best if self.best.exists() else None
        return TrainResult(self.output, self.last, best, history, self.state.best_value, interrupted, self.state.steps, self.plan.max_steps)

    def train_epoch(self, stop_requested: threading.Event) -> None:
        """One epoch from batch ``state.iteration``; ``state`` is updated after every step. After a
        Ctrl-C (``stop_requested``, on any rank) it raises KeyboardInterrupt between two steps, so
        ``state`` describes exactly the batches done."""
        config, context, state = self.config, self.context, self.state
        self.network.train()
        loader = epoch_loader(self.train_set, config, state.epoch, context)
        sums = state.sums or {"loss": 0.0, "loss_loc": 0.0, "loss_cls": 0.0, "steps": 0, "images": 0, "seconds": 0.0}
        state.sums = sums
        bar = tqdm(total=self.steps_per_epoch, initial=state.iteration, desc=f"epoch {state.epoch + 1}/{self.epochs}",
                   unit="batch", disable=not (config.progress and context.is_main), dynamic_ncols=True)
        started = time.perf_counter()
        for index, (images, targets) in enumerate(loader):
            if index < state.iteration:
                continue  # resumed mid-epoch: these batches were trained on before the interruption
            losses = self._step(images, targets, index)
            state.iteration, state.steps = index + 1, state.steps + 1
            sums["steps"] += 1
            sums["images"] += images.shape[0] * context.world_size
            for key, name in (("loss", "total"), ("loss_loc", "loc"), ("loss_cls", "cls")):
                sums[key] += float(losses[name].detach())
            show_progress(bar, sums, sums["seconds"] + time.perf_counter() - started, self.optimizer)
            if any_rank(context, stop_requested.is_set()):
                sums["seconds"] += time.perf_counter() - started
                bar.close()
                raise KeyboardInterrupt
            if self.pacer.after_step(state.steps):
                break  # the planned steps are done (a time limit ended the run part-way through this epoch)
        sums["seconds"] += time.perf_counter() - started
        bar.close()

    def _step(self, images: Tensor, targets: list[dict[str, Tensor]], index: int) -> dict[str, Tensor]:
        """One optimiser step on a batch (images Tensor[N, 3, H, W] in [0, 1]; targets' boxes as
        fractions of the image); returns the losses ("total", "loc", "cls")."""
        config, device = self.config, self.context.device
        images = images.to(device, non_blocking=True)
        if config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = [{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device)} for t in targets]
        autocast = torch.autocast(device.type, dtype=torch.float16) if self.use_amp and device.type == "cuda" else contextlib.nullcontext()
        with autocast:
            loc, logits = self.network(images)
        losses = self.loss_fn(loc.float(), logits.float(), targets)
        if not torch.isfinite(losses["total"]):
            raise FloatingPointError(f"epoch {self.state.epoch + 1}, batch {index}: the loss is {losses['total'].item()}. Note: lower --lr or set --clip-grad-norm")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["total"]).backward()
        if config.clip_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), config.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return losses

    def end_epoch(self) -> None:
        """Validate when due, then record the epoch: history row, ``last.pt``, ``best.pt`` if improved."""
        config, context, state = self.config, self.context, self.state
        row = epoch_row(state.epoch, state.sums, self.optimizer)
        epoch_done = state.epoch + 1
        self.pacer.after_epoch(state.steps, row["epoch_s"], int((state.sums or {}).get("steps", 0)))
        if epoch_done % config.eval_every == 0 or epoch_done >= self.epochs:
            row.update(self.validate())
        improved = _improves(row.get(config.best_metric), state.best_value)
        if improved:
            state.best_value = row[config.best_metric]
        state.epoch, state.iteration, state.sums = epoch_done, 0, None
        if context.is_main:
            self.history.add(row)
            self.save(self.last)
            if improved:
                self.save(self.best)
            print_epoch(row, self.epochs)
        barrier(context)

    def validate(self) -> dict[str, float]:
        """On the main process: precise BatchNorm statistics, then the validation metrics (none
        without a validation set); the other processes wait."""
        metrics: dict[str, float] = {}
        if self.context.is_main:
            precise_bn(self.model, self.train_set, self.config, self.context, self.state.epoch)
            if self.val_set is not None:
                metrics = _validate(self.model, self.class_names, self.val_set, self.config, self.context)
            self.model.train()
        barrier(self.context)
        return metrics

    def _finish(self, interrupted: bool) -> None:
        """Check the ranks agree (DDP), plot the curves and close the log."""
        context, config = self.context, self.config
        if context.distributed and not interrupted:
            in_sync = weights_in_sync(self.model, context)
            if context.is_main:
                print(f"distributed: weights identical on all {context.world_size} ranks" if in_sync
                      else "distributed: WARNING: the ranks' weights differ (the processes diverged)")
        history = self.history
        if history is None:
            return
        curves = history.plot() if history.rows else None
        history.close()
        if not interrupted:
            best = self.state.best_value
            print(f"done: {self.last}" + (f", best {config.best_metric} {best:.4f} in {self.best}" if best is not None else "")
                  + (f"; log {history.csv_path}" + (f", curves {curves}" if curves else "")))


def _grad_scaler(device: torch.device, use_amp: bool) -> torch.amp.GradScaler:
    """The loss scaler of a run: active for float16 autocast on CUDA, a pass-through otherwise."""
    return torch.amp.GradScaler("cuda", enabled=use_amp and device.type == "cuda")


def load_scaler_state(scaler: torch.amp.GradScaler, state: dict[str, Any]) -> None:
    """Restore a checkpoint's loss-scaler state into ``scaler``, when there is one to restore.

    A run without AMP (on the CPU, or ``--amp false``) saves a disabled scaler's empty state, and
    an enabled GradScaler raises on an empty state: resuming such a run with AMP on starts from a
    fresh scale instead, which the scaler adjusts within its first steps. A disabled scaler ignores
    any state (GradScaler.load_state_dict is a no-op then).
    """
    if state:
        scaler.load_state_dict(state)


def _validate(model: nn.Module, class_names: list[str], val_set: Any, config: TrainConfig, context: DistContext) -> dict[str, float]:
    detector = model_detector(model, class_names, context.device, max_batch=config.batch_size)
    result = evaluate_detector(detector, val_set, batch_size=config.batch_size, progress=config.progress)
    coco = result.coco or {}
    return {
        "map50": result.map_voc,
        "map50_voc07": result.map_voc07,
        "coco_ap": coco.get("AP"),
        "coco_ap50": coco.get("AP50"),
        "coco_ap75": coco.get("AP75"),
    }


def _improves(value: Any, best: float | None) -> bool:
    return isinstance(value, float) and not math.isnan(value) and (best is None or value > best)

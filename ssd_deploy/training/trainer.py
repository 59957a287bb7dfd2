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
import itertools
import math
import signal
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from ..checkpoint import load_checkpoint, save_checkpoint
from ..errors import CheckpointError
from ..loss import LossConfig, MultiBoxLoss
from .config import TrainConfig
from .data import MemoryCachedDataset, epoch_loader, load_datasets, train_transform
from .distributed import DistContext, any_rank, barrier, init_distributed, shutdown, weights_in_sync
from .history import History
from .model import build_training_model
from .optim import build_optimizer, build_scheduler
from .precise_bn import recompute_batchnorm_statistics
from .validate import evaluate_detector, model_detector

# Settings a resumed run may change; everything else comes from the checkpoint.
RESUMABLE_OVERRIDES = ("epochs", "workers", "device", "progress", "output", "tensorboard", "eval_every", "cache_images")


@dataclass
class TrainResult:
    """What a run produced."""

    output: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    history: list[dict[str, Any]]
    best_value: float | None
    interrupted: bool = False


@dataclass
class _State:
    """Where the run is: the next batch to run is batch ``iteration`` of epoch ``epoch``."""

    epoch: int = 0
    iteration: int = 0
    sums: dict[str, float] | None = None  # loss sums and counts of the epoch in progress
    best_value: float | None = None


def resume_config(path: str | Path, overrides: dict[str, Any]) -> TrainConfig:
    """The configuration stored in checkpoint ``path`` with the allowed ``overrides`` applied."""
    _, _, data = load_checkpoint(path)
    if "train_config" not in data:
        raise CheckpointError(path, "not a training checkpoint (no train_config). Note: resume from <output>/last.pt")
    config = TrainConfig.from_dict(data["train_config"], source=str(path))
    changes = {k: v for k, v in overrides.items() if k in RESUMABLE_OVERRIDES}
    return replace(config, **changes)


def train(config: TrainConfig, resume: str | Path | None = None) -> TrainResult:
    """Train a detector as ``config`` says; ``resume`` continues from a ``last.pt``.

    Run under ``torchrun`` for DistributedDataParallel (see :mod:`.distributed`).
    """
    context = init_distributed(config.device)
    try:
        return _train(config, context, resume)
    finally:
        shutdown(context)


def _train(config: TrainConfig, context: DistContext, resume: str | Path | None) -> TrainResult:
    output = Path(config.output)
    torch.manual_seed(config.seed)
    train_set, val_set = load_datasets(config, context)
    class_names = list(train_set.class_names)
    state = _State()
    if resume is not None:
        model, names, checkpoint = load_checkpoint(resume)
        if names != class_names:
            raise CheckpointError(resume, f"checkpoint classes {names[1:]} differ from the dataset's {class_names[1:]}")
    else:
        model, checkpoint = build_training_model(config, len(class_names)), None
    model.to(context.device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    train_set.transform = train_transform(config, model.config.input_size, model.config.mean)
    if config.cache_images:
        train_set = MemoryCachedDataset(train_set)
        if context.is_main:
            print(f"data: caching the {len(train_set)} resized training images in memory as they are first read "
                  f"(~{train_set.estimated_bytes(model.config.input_size) / 2**20:.0f} MiB per training process)")
    steps_per_epoch = len(epoch_loader(train_set, config, 0, context))
    if steps_per_epoch == 0:
        raise CheckpointError(config.data, f"{len(train_set)} training images: fewer than one batch per process")
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch)
    use_amp = config.amp if config.amp is not None else context.device.type == "cuda"
    scaler = _grad_scaler(context.device, use_amp)
    history = History(output, tensorboard=config.tensorboard and context.is_main) if context.is_main else None
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        load_scaler_state(scaler, checkpoint.get("scaler") or {})
        state = _State(int(checkpoint["epoch"]), int(checkpoint["iteration"]), checkpoint.get("epoch_sums"), checkpoint.get("best_value"))
        if history is not None:
            history.rows = list(checkpoint.get("history", []))
        if context.is_main:
            print(f"resume: {resume} at epoch {state.epoch + 1}, batch {state.iteration} of {steps_per_epoch}")

    network: nn.Module = model
    if context.distributed:
        if context.is_main:
            print(f"distributed: {context.world_size} processes ({dist.get_backend()})")
        find_unused = model.config.feature_indices is not None  # e.g. VGG's conv4_3 L2Norm when map 0 is unused
        network = nn.parallel.DistributedDataParallel(
            model, device_ids=[context.device.index] if context.device.type == "cuda" else None, find_unused_parameters=find_unused
        )
    loss_fn = MultiBoxLoss(model.priors, LossConfig(classification=config.loss)).to(context.device)

    def save(path: Path) -> Path:
        return save_checkpoint(
            path, model, class_names,
            optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), scaler=scaler.state_dict(),
            epoch=state.epoch, iteration=state.iteration, epoch_sums=state.sums, best_value=state.best_value,
            history=history.rows if history is not None else [], train_config=config.to_dict(),
        )

    last, best = output / "last.pt", output / "best.pt"
    interrupted = False
    try:
        with _deferred_interrupt() as stop_requested:
            while state.epoch < config.epochs:
                _train_epoch(network, loss_fn, optimizer, scheduler, scaler, use_amp, train_set, config, context, state,
                             steps_per_epoch, stop_requested)
                row = _epoch_row(state, optimizer)
                epoch_done = state.epoch + 1
                if epoch_done % config.eval_every == 0 or epoch_done == config.epochs:
                    if context.is_main:
                        _precise_bn(model, train_set, config, context, state.epoch)
                        if val_set is not None:
                            row.update(_validate(model, class_names, val_set, config, context))
                        model.train()
                    barrier(context)
                improved = _improves(row.get(config.best_metric), state.best_value)
                if improved:
                    state.best_value = row[config.best_metric]
                state.epoch, state.iteration, state.sums = epoch_done, 0, None
                if context.is_main:
                    history.add(row)
                    save(last)
                    if improved:
                        save(best)
                    _print_epoch(row, config, steps_per_epoch)
                barrier(context)
    except KeyboardInterrupt:
        interrupted = True
        if context.is_main:
            save(last)
            print(f"\ninterrupted: saved {last} (epoch {state.epoch + 1}, batch {state.iteration} of {steps_per_epoch}). "
                  f"Note: continue with ssd-train --resume {last}")
    if context.distributed and not interrupted:
        in_sync = weights_in_sync(model, context)
        if context.is_main:
            print(f"distributed: weights identical on all {context.world_size} ranks" if in_sync
                  else "distributed: WARNING: the ranks' weights differ (the processes diverged)")
    if history is not None:
        curves = history.plot() if history.rows else None
        history.close()
        if not interrupted:
            print(f"done: {last}" + (f", best {config.best_metric} {state.best_value:.4f} in {best}" if state.best_value is not None else "")
                  + (f"; log {history.csv_path}" + (f", curves {curves}" if curves else "")))
    return TrainResult(output, last, best if best.exists() else None, history.rows if history else [], state.best_value, interrupted)


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


def _train_epoch(
    network: nn.Module, loss_fn: MultiBoxLoss, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
    use_amp: bool, dataset: Any, config: TrainConfig, context: DistContext, state: _State, steps_per_epoch: int,
    stop_requested: threading.Event,
) -> None:
    """One epoch from batch ``state.iteration``; ``state`` is updated after every step. After a
    Ctrl-C (``stop_requested``, on any rank) it raises KeyboardInterrupt between two steps, so
    ``state`` describes exactly the batches done."""
    network.train()
    loader = epoch_loader(dataset, config, state.epoch, context)
    sums = state.sums or {"loss": 0.0, "loss_loc": 0.0, "loss_cls": 0.0, "steps": 0, "images": 0, "seconds": 0.0}
    state.sums = sums
    bar = tqdm(total=steps_per_epoch, initial=state.iteration, desc=f"epoch {state.epoch + 1}/{config.epochs}",
               unit="batch", disable=not (config.progress and context.is_main), dynamic_ncols=True)
    device = context.device
    autocast = torch.autocast(device.type, dtype=torch.float16) if use_amp and device.type == "cuda" else contextlib.nullcontext()
    started = time.perf_counter()
    for index, (images, targets) in enumerate(loader):
        if index < state.iteration:
            continue  # resumed mid-epoch: these batches were trained on before the interruption
        images = images.to(device, non_blocking=True)
        if config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = [{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device)} for t in targets]
        with autocast:
            loc, logits = network(images)
        losses = loss_fn(loc.float(), logits.float(), targets)
        if not torch.isfinite(losses["total"]):
            raise FloatingPointError(f"epoch {state.epoch + 1}, batch {index}: the loss is {losses['total'].item()}. Note: lower --lr or set --clip-grad-norm")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses["total"]).backward()
        if config.clip_grad_norm is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(network.parameters(), config.clip_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        state.iteration = index + 1
        sums["steps"] += 1
        sums["images"] += images.shape[0] * context.world_size
        for key, name in (("loss", "total"), ("loss_loc", "loc"), ("loss_cls", "cls")):
            sums[key] += float(losses[name].detach())
        elapsed = sums["seconds"] + time.perf_counter() - started
        bar.set_postfix(loss=f"{sums['loss'] / sums['steps']:.3f}", loc=f"{sums['loss_loc'] / sums['steps']:.3f}",
                        cls=f"{sums['loss_cls'] / sums['steps']:.3f}", img_s=f"{sums['images'] / max(elapsed, 1e-9):.1f}",
                        lr=f"{optimizer.param_groups[0]['lr']:.2e}")
        bar.update(1)
        if any_rank(context, stop_requested.is_set()):
            sums["seconds"] += time.perf_counter() - started
            bar.close()
            raise KeyboardInterrupt
    sums["seconds"] += time.perf_counter() - started
    bar.close()


@contextlib.contextmanager
def _deferred_interrupt():
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


def _epoch_row(state: _State, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    sums, steps = state.sums or {}, max(1, (state.sums or {}).get("steps", 0))
    return {
        "epoch": state.epoch + 1,
        "lr": optimizer.param_groups[0]["lr"],
        "loss": sums.get("loss", math.nan) / steps,
        "loss_loc": sums.get("loss_loc", math.nan) / steps,
        "loss_cls": sums.get("loss_cls", math.nan) / steps,
        "images_per_s": sums.get("images", 0) / max(sums.get("seconds", 0.0), 1e-9),
        "epoch_s": sums.get("seconds", 0.0),
    }


def _precise_bn(model: nn.Module, dataset: Any, config: TrainConfig, context: DistContext, epoch: int) -> None:
    """Recompute BatchNorm statistics on ``precise_bn_images`` augmented training images (the
    epoch's own seeded order), so validation and the saved checkpoint use statistics of the final
    weights (see :mod:`.precise_bn`)."""
    if config.precise_bn_images <= 0:
        return
    loader = epoch_loader(dataset, config, epoch, DistContext(device=context.device))
    limit = max(1, config.precise_bn_images // config.batch_size)
    batches = (images for images, _ in itertools.islice(loader, limit) if images.shape[0] > 1)
    recompute_batchnorm_statistics(model, batches, context.device)


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


def _print_epoch(row: dict[str, Any], config: TrainConfig, steps: int) -> None:
    text = (f"epoch {row['epoch']}/{config.epochs}: loss {row['loss']:.3f} (loc {row['loss_loc']:.3f}, cls {row['loss_cls']:.3f}), "
            f"{row['images_per_s']:.1f} img/s, {row['epoch_s']:.0f} s")
    if "map50" in row:
        text += f"; val mAP@0.5 {_number(row['map50'])} (VOC07 {_number(row['map50_voc07'])}), COCO AP {_number(row['coco_ap'])}"
    tqdm.write(text)


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-"

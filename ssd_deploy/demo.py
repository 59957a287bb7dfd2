"""The one-command demo: train → evaluate → export → parity and latency on every runtime → report.

    generate shapes (reused) ─ ssd-train (reused when done, resumed when interrupted)
        └─ evaluate the checkpoint (PyTorch, VOC and COCO metrics)
        └─ export TorchScript and ONNX with NMS inside (and every other file the benchmarks run)
        └─ ssd-bench parity (mAP on every runtime vs PyTorch FP32) and latency (vs torchvision)
        └─ report folder: README.md, report.json, plots, pictures with detections drawn

Every step is a library call that the console scripts also make; this module only chains them
and decides what a second run can reuse.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .calibration import Calibration
from .checkpoint import load_state_dict_file
from .data.shapes import ensure_shapes_dataset
from .errors import SSDDeployError
from .files import atomic_write

# The demo's training recipe, measured on 2 CPU cores (README, "Train"). SSDLite from scratch on
# shapes: 160 px learns ~3x faster per image than 128 px (whose 8/4/2/1/1/1 maps cover mid-size
# objects poorly), AdamW 3e-3 beats 1e-3 and 1e-2, batch 8 gives more steps per image, and within
# a few thousand steps augmentation only slows learning. 3000 images x 5 epochs: mAP@0.5 0.64
# (4 epochs gave 0.55-0.60 over three runs: too close to the 0.6 the demo promises).
DEMO_TRAINING: dict[str, Any] = {
    "arch": "ssdlite_mobilenet_v3",
    "input_size": (160, 160),
    "augment": False,
    "batch_size": 8,
    "optimizer": "adamw",
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "schedule": "cosine",
    "warmup_epochs": 0.2,
    "precise_bn_images": 256,
    "workers": 0,  # decoding a PNG is ~2.4 ms against ~30 ms of training per image; loader processes would only compete for the cores
    "cache_images": True,  # ...and without augmentation each image is decoded once, not once per epoch (~220 MiB)
    "eval_every": 5,  # validate after epoch 5 (the last, by default) only: each validation costs ~10 s here
    "tensorboard": False,
}
# With a time limit, training leaves time for the steps after it (evaluation, export, parity,
# latency). They took as long as training 5,000 images on a 2-core Xeon (103 s at 48 images/s)
# and 5,900 on a 2-core AVX2-only EPYC (206 s at 28.7 images/s): they slow down with the CPU as
# training does, so the time kept is counted in training images and follows this machine's speed.
RESERVE_IMAGES = 6000


@dataclass(frozen=True)
class DemoConfig:
    """What the demo does (``ssd-demo``'s flags).

    Attributes:
        out: the demo folder: ``data/``, ``train/``, ``models/``, ``bench/``, ``report/``.
        train_images, val_images: generated shapes images (320 x 320).
        epochs: training epochs over ``train_images``.
        time: the demo's time limit in hours, set-up excluded (None: none). Training then takes
            what is left after the data step and the time :data:`RESERVE_IMAGES` says the steps
            after it need; on a CPU too slow for every epoch within it, it trains fewer steps
            (its schedule planned for them, :mod:`~ssd_deploy.training.budget`) and says so.
        runtimes: runtimes for parity and latency; None: every runtime usable here.
        precisions: precisions for parity and latency; None: every one a runtime supports here.
        latency_warmup: untimed calls per runtime and batch size first.
        latency_iterations: timed calls per runtime and batch size.
        threads: CPU threads (training and every runtime); None: torch's default.
        export_jobs: files exported at once, one process each (``ssd-demo`` uses 2; see
            :class:`~ssd_deploy.bench.latency.LatencyConfig`).
        seed: data and training seed.
        verify: check every exported file against PyTorch on sample images when it is written.
        progress: progress bars.
    """

    out: Path = Path("runs/demo")
    train_images: int = 3000
    val_images: int = 200
    epochs: int = 5
    time: float | None = 8.5 / 60  # with the ~1 min set-up of a fresh machine, the quickstart stays within 10 minutes
    runtimes: tuple[str, ...] | None = None
    precisions: tuple[str, ...] | None = None
    latency_warmup: int = 3
    latency_iterations: int = 15
    threads: int | None = None
    export_jobs: int = 1
    seed: int = 0
    verify: bool = True
    progress: bool = True


def run_demo(config: DemoConfig = DemoConfig()) -> dict[str, Any]:
    """Run every step (see the module docstring); returns what ``report.json`` holds."""
    if config.export_jobs < 1:
        raise SSDDeployError(f"--export-jobs {config.export_jobs}: expected 1 or more")
    out = Path(config.out)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    train_dir, val_dir = _step(timings, "data", 1, "data: the synthetic shapes dataset", lambda: _data(config))
    checkpoint, training = _step(timings, "train", 2, f"train: {DEMO_TRAINING['arch']} at {DEMO_TRAINING['input_size'][0]} px, "
                                 f"{config.epochs} epochs" + (" or the steps that fit in the demo's time limit" if config.time else ""),
                                 lambda: _train(config, train_dir, val_dir, started))
    evaluation = _step(timings, "evaluate", 3, "evaluate: PyTorch FP32 on the held-out images (VOC and COCO metrics)",
                       lambda: _evaluate(checkpoint, val_dir, config))
    models = _step(timings, "export", 4, "export: TorchScript and ONNX with decoding and NMS inside, and the other files parity "
                   "and latency run", lambda: _export(checkpoint, val_dir, config))
    parity = _step(timings, "parity", 5, "parity: the same mAP on every runtime?", lambda: _parity(checkpoint, val_dir, config))
    latency = _step(timings, "latency", 6, "latency: every runtime against torchvision's eager pipeline",
                    lambda: _latency(checkpoint, val_dir, config))

    report_dir = out / "report"
    # The benchmark files beside the cache, as ssd-bench writes them: the report links their plots.
    bench_files = {"parity": parity.write(out / "bench"), "latency": latency.write(out / "bench")}
    pictures = _pictures(models["onnx"], val_dir, report_dir / "detections")
    timings["total_s"] = time.perf_counter() - started
    report = {
        "training": training,
        "evaluation": evaluation.to_dict(),
        "models": {name: str(path) for name, path in models.items()},
        "parity": parity.to_dict(),
        "latency": latency.to_dict(),
        "pictures": [str(p) for p in pictures],
        "bench_files": {step: {kind: str(path) for kind, path in files.items()} for step, files in bench_files.items()},
        "timings": timings,
        "config": {**dataclasses.asdict(config), "out": str(config.out)},
    }
    _write_report(report_dir, report, evaluation.table(), parity, latency)
    print("\nparity (mAP in points; Δ against PyTorch FP32):\n" + parity.markdown())
    print("\nlatency (milliseconds per call; speed-up against torchvision's eager pipeline):\n" + latency.markdown())
    print(f"\ndemo: done in {timings['total_s'] / 60:.1f} min; report in {report_dir / 'README.md'}")
    if _cut(training):
        print(f"demo: training {_cut(training)}")
    return report


def _step(timings: dict[str, float], name: str, number: int, title: str, run: Callable[[], Any]) -> Any:
    """Announce step ``number`` of 6, run it and record its seconds as ``timings[name + "_s"]``."""
    print(f"\n[{number}/6] {title}", flush=True)
    start = time.perf_counter()
    result = run()
    timings[f"{name}_s"] = time.perf_counter() - start
    return result


def _data(config: DemoConfig) -> tuple[Path, Path]:
    """The training and held-out shapes datasets (generated once, then reused)."""
    out = Path(config.out)
    train_dir = ensure_shapes_dataset(out / "data" / f"train-{config.train_images}-seed{config.seed}", config.train_images,
                                      seed=config.seed, progress=config.progress)
    val_dir = ensure_shapes_dataset(out / "data" / f"val-{config.val_images}-seed{config.seed + 1}", config.val_images,
                                    seed=config.seed + 1, progress=config.progress)
    return train_dir, val_dir


def _parity(checkpoint: Path, val_dir: Path, config: DemoConfig):
    from .bench import ParityConfig, run_parity

    return run_parity(checkpoint, ParityConfig(runtimes=config.runtimes, precisions=config.precisions, data=val_dir,
                                               calibration=_calibration(val_dir), threads=config.threads, verify=config.verify,
                                               export_jobs=config.export_jobs, progress=config.progress), Path(config.out) / "bench")


def _latency(checkpoint: Path, val_dir: Path, config: DemoConfig):
    from .bench import LatencyConfig, run_latency

    return run_latency([checkpoint], LatencyConfig(runtimes=config.runtimes, precisions=config.precisions, images=val_dir / "JPEGImages",
                                                   calibration=_calibration(val_dir), warmup=config.latency_warmup,
                                                   iterations=config.latency_iterations, max_seconds=20.0, threads=config.threads,
                                                   verify=config.verify, export_jobs=config.export_jobs, progress=config.progress),
                       Path(config.out) / "bench")


def _train(config: DemoConfig, train_dir: Path, val_dir: Path, started: float) -> tuple[Path, dict[str, Any]]:
    """Train, or reuse a finished run with the same settings, or resume an interrupted one.

    ``started``: when the demo began (``time.perf_counter()``), for its time limit."""
    from .training import TrainConfig
    from .training.trainer import train

    output = config.out / "train"
    settings = TrainConfig(
        **DEMO_TRAINING, data=str(train_dir), val=str(val_dir), epochs=config.epochs, seed=config.seed,
        output=str(output), progress=config.progress,
    )
    last, best = output / "last.pt", output / "best.pt"
    previous = load_state_dict_file(last) if last.is_file() else None
    resume, elapsed_before = None, 0.0
    if previous is not None and _same_run(previous.get("train_config"), settings.to_dict()):
        done, planned, every = _steps(previous, settings.epochs)
        if done >= planned and best.is_file() and (config.time is not None or planned >= every):
            cut = f", {done} of {every} steps within the time limit" if planned < every else ""
            print(f"train: reusing the finished run in {output} (same settings{cut}; delete it to train again)")
            return best, _training_summary(previous.get("history", []), settings, True, done, every)
        if done < planned:
            print(f"train: resuming the interrupted run in {output}")
            resume, elapsed_before = last, float(previous.get("elapsed_s") or 0.0)
        else:
            print(f"train: the run in {output} stopped at a time limit after {done} of {every} steps; training every step again")
    elif previous is not None:
        print(f"train: the run in {output} used other settings; training again")
    if config.time is not None:
        left = config.time * 3600 - (time.perf_counter() - started)
        settings = dataclasses.replace(settings, time=(max(left, 1.0) + elapsed_before) / 3600)
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    result = train(settings, resume=resume, reserve_images=RESERVE_IMAGES if config.time is not None else 0)
    if result.interrupted:
        raise KeyboardInterrupt
    if result.best_checkpoint is None:
        raise SSDDeployError(f"{output}: training wrote no best.pt (no validation result)")
    return result.best_checkpoint, _training_summary(result.history, settings, False, result.steps_done, result.all_steps)


def _steps(checkpoint: dict[str, Any], epochs: int) -> tuple[int, int, int]:
    """Steps a saved run (of the same settings, so of ``epochs`` epochs) has done, planned, and
    would take without a time limit (checkpoints from before time limits: counted in epochs)."""
    if "steps_done" not in checkpoint:
        return int(checkpoint.get("epoch", 0)), epochs, epochs
    return int(checkpoint["steps_done"]), int(checkpoint["planned_steps"]), int(checkpoint["all_steps"])


# Settings that change how fast a run trains, or how long it may take, not what its steps do.
SPEED_ONLY_SETTINGS = ("workers", "cache_images", "progress", "tensorboard", "time")


def _same_run(saved: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    """Whether a saved run's training config takes the same steps as ``wanted``'s."""
    if saved is None:
        return False
    return {k: v for k, v in saved.items() if k not in SPEED_ONLY_SETTINGS} == {k: v for k, v in wanted.items() if k not in SPEED_ONLY_SETTINGS}


def _training_summary(history: list[dict[str, Any]], settings: Any, reused: bool, steps: int, all_steps: int) -> dict[str, Any]:
    """What the report says of training; ``steps`` of ``all_steps`` were taken (fewer: the time limit)."""
    seconds = sum(float(row.get("epoch_s", 0.0)) for row in history)
    rates = [float(row["images_per_s"]) for row in history if row.get("images_per_s")]
    maps = [row.get("map50") for row in history if row.get("map50") is not None]
    return {
        "settings": settings.to_dict(), "reused": reused, "epochs": history, "train_s": seconds,
        "images_per_s": sum(rates) / len(rates) if rates else None, "best_map50": max(maps) if maps else None,
        "steps": steps, "all_steps": all_steps,
    }


def _evaluate(checkpoint: Path, val_dir: Path, config: DemoConfig):
    from .data import load_dataset
    from .runtimes import load
    from .training.validate import evaluate_detector

    detector = load(checkpoint, runtime="pytorch")  # the paper's evaluation settings (score 0.01)
    dataset = load_dataset(val_dir, class_names=detector.class_names)
    evaluation = evaluate_detector(detector, dataset, progress=config.progress)
    print(evaluation.table())
    return evaluation


def _calibration(val_dir: Path) -> Calibration:
    """INT8 calibration images of every step (the exported files' names depend on them)."""
    return Calibration(val_dir / "JPEGImages")


def _export(checkpoint: Path, val_dir: Path, config: DemoConfig) -> dict[str, Path]:
    """TorchScript and ONNX with NMS into ``models/``.

    They are exported into the benchmarks' cache (``bench/cache``) exactly as parity and latency
    export them, together with every other file those steps run (AOTInductor packages, INT8 ONNX,
    the network-only companions), ``config.export_jobs`` at a time: parity and latency find them there.
    """
    from .artifacts import ExportSettings, FileKind, cached_file, ready_files
    from .bench import plan_variants

    settings = ExportSettings(config.out / "bench" / "cache", _calibration(val_dir), verify=config.verify, jobs=config.export_jobs)
    copied = {"torchscript": FileKind("torchscript", "fp32"), "onnx": FileKind("onnx", "fp32")}
    planned, _ = plan_variants(checkpoint, config.runtimes, config.precisions, "cpu")
    for kind in copied.values():
        cached = cached_file(checkpoint, kind, settings)
        if cached is not None:
            print(f"export: reusing {cached} (exported from this checkpoint before)")
    kinds = [p.kind for p in planned] + list(copied.values())
    files, errors = ready_files(checkpoint, kinds, settings, log=lambda line: print(f"export: {line}", flush=True))
    paths = {}
    for name, kind in copied.items():
        if kind in errors:
            raise SSDDeployError(f"{checkpoint}: the {name} export failed: {errors[kind]}")
        cached = files[kind][0]
        paths[name] = atomic_write(config.out / "models" / f"model{cached.suffix}", lambda tmp, source=cached: shutil.copyfile(source, tmp))
        print(f"export: copied to {paths[name]}")
    return paths


def _pictures(model: Path, val_dir: Path, folder: Path, count: int = 4, min_score: float = 0.3) -> list[Path]:
    """A few held-out images with the exported model's detections drawn."""
    from .draw import draw_detections
    from .images import list_images, read_image, write_image
    from .runtimes import load

    detector = load(model)  # the runtime "auto" picks for the file
    written = []
    for path in list_images(val_dir / "JPEGImages")[:count]:
        image = read_image(path)
        written.append(write_image(folder / f"{path.stem}.jpg", draw_detections(image, detector.detect(image).above(min_score))))
    return written


def _bench_links(written: dict[str, str]) -> list[str]:
    """The plot (when matplotlib drew it) and the tables of one benchmark, relative to ``report/``."""
    names = {kind: f"../bench/{Path(path).name}" for kind, path in written.items()}
    lines = [f"![{Path(names['png']).stem}]({names['png']})", ""] if "png" in names else []
    return lines + ["Files: " + ", ".join(f"[{Path(name).name}]({name})" for kind, name in names.items() if kind != "png")]


def _cut(training: dict[str, Any]) -> str:
    """What the time limit left out of training, if anything."""
    steps, every = training.get("steps"), training.get("all_steps")
    if not steps or not every or steps >= every:
        return ""
    return (f"took {steps} of the recipe's {every} steps ({steps / every:.0%}), the last epoch part-way: the most this "
            f"machine trains within the demo's time limit, with the learning-rate schedule planned for them "
            f"(`ssd-demo --time 0` trains every step).")


def _write_report(folder: Path, report: dict[str, Any], evaluation_table: str, parity: Any, latency: Any) -> None:
    training = report["training"]
    timings = report["timings"]
    cut = f" It {_cut(training)}" if _cut(training) else ""
    lines = [
        "# ssd-deploy demo report", "",
        f"Trained {training['settings']['arch']} at {training['settings']['input_size'][0]} px for "
        f"{len(training['epochs'])} epochs ({training['train_s'] / 60:.1f} min, "
        f"{training['images_per_s'] or 0:.1f} images/s){' (reused)' if training['reused'] else ''}; "
        f"best validation mAP@0.5 {training['best_map50'] or 0:.3f}.{cut} The whole demo took {timings['total_s'] / 60:.1f} min.", "",
        "## Evaluation (PyTorch FP32, held-out shapes)", "", evaluation_table, "",
        "## Parity: mAP on every runtime", "", parity.markdown(), "", *_bench_links(report["bench_files"]["parity"]), "",
        "## Latency", "", latency.markdown(), "", *_bench_links(report["bench_files"]["latency"]), "",
        "## Training curves", "", "![curves](../train/curves.png)", "",
        "## Detections (ONNX Runtime, score ≥ 0.3)", "",
        *[f"![{Path(p).stem}](detections/{Path(p).name})" for p in report["pictures"]], "",
        "## Time per step", "", "| step | seconds |", "|---|---|",
        *[f"| {name.removesuffix('_s')} | {value:.1f} |" for name, value in timings.items()], "",
    ]
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "README.md", lambda tmp: tmp.write_text("\n".join(lines)))
    atomic_write(folder / "report.json", lambda tmp: tmp.write_text(json.dumps(report, indent=2, default=str)))

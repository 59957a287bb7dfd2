"""The checks (each returns its numbers, or raises SkipCheck / CheckFailed), in the order
:func:`plan` runs them, and :func:`run_gpu_check`, which runs them within a time budget."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import torch

from .environment import CORE_PACKAGES, EXPORT_PACKAGES, machine_facts, needs, require_cuda
from .report import CheckFailed, CheckResult, GpuCheckReport, SkipCheck, run_check
from .suite import check_suite
from .workspace import MODELS, TIMED_BATCHES, Workspace, detector_outputs, compare_with_cpu, time_batches


def check_runtime(
    ws: Workspace, runtime: str, precision: str, file: Callable[[Workspace], Path] | None = None, **options: Any
) -> dict[str, Any]:
    """``runtime`` at ``precision`` on CUDA, on the demo model's checkpoint or ``file(ws)``,
    against CPU FP32, and its latency at batch 1 and 64."""
    needs(CORE_PACKAGES)
    require_cuda(ws.device)
    from ..runtimes import load

    from ..errors import RuntimeUnavailableError

    path = file(ws) if file else ws.checkpoint("demo")
    try:
        detector = load(path, runtime=runtime, device=ws.device, precision=precision, max_batch=max(ws.batches), **options)
    except RuntimeUnavailableError as error:
        raise SkipCheck(str(error)) from None
    with detector:
        numbers = compare_with_cpu(ws.reference("demo"), detector_outputs(detector, ws.sample("demo")), precision, ws.tolerances("demo"))
        numbers.update(time_batches(detector, MODELS["demo"][1], ws.device, ws.batches))
    return numbers


def torchscript_file(ws: Workspace) -> Path:
    """The demo model traced to TorchScript (dynamic batch; traced on the CPU, it runs anywhere)."""
    from ..export import ExportOptions, export_model

    options = ExportOptions(format="torchscript", dynamic_batch=True, verify=False)
    return export_model(ws.checkpoint("demo"), ws.folder / "exports" / "demo.ts", options).path


def aotinductor_file(ws: Workspace) -> Path:
    """The demo model compiled by AOTInductor for the check's device; a CUDA package must also be
    refused on the CPU."""
    needs(EXPORT_PACKAGES)
    from ..errors import ExportError
    from ..export import ExportOptions, export_model
    from ..runtimes import load

    kind = torch.device(ws.device).type
    options = ExportOptions(format="pt2", dynamic_batch=True, verify=False, device=ws.device)
    path = export_model(ws.checkpoint("demo"), ws.folder / "exports" / f"demo-{kind}.pt2", options).path
    if kind == "cpu":
        return path  # the dry run: a CPU package runs on the CPU, there is no refusal to check
    try:
        load(path, runtime="aotinductor", device="cpu").close()
    except ExportError as error:
        if "compiled for cuda" not in str(error):
            raise
    else:
        raise CheckFailed(f"{path.name}: a package compiled for CUDA loaded on the CPU")
    return path


def check_amp_training(ws: Workspace) -> dict[str, Any]:
    """AMP on CUDA for an epoch, resumed for a second; and a CPU run without AMP resumed with AMP
    (its checkpoint's scaler state is empty), on generated shapes."""
    needs(CORE_PACKAGES)
    require_cuda(ws.device)
    if torch.device(ws.device).type != "cuda":
        raise SkipCheck("AMP (float16 autocast with a loss scaler) is the trainer's CUDA path; the CPU trains in float32")
    from ..checkpoint import load_checkpoint
    from ..data.shapes import generate_shapes_dataset
    from ..training import TrainConfig
    from ..training.trainer import train

    data = ws.folder / "shapes"
    for split, count, seed in (("train", 64, 0), ("val", 16, 1)):
        if not (data / split).is_dir():
            generate_shapes_dataset(data / split, count, seed=seed, size=(96, 96), progress=False)

    def config(output: str, epochs: int, device: str, amp: bool) -> TrainConfig:
        return TrainConfig(data=str(data / "train"), val=str(data / "val"), output=str(ws.folder / "train" / output),
                           arch="ssdlite_mobilenet_v2", input_size=(96, 96), batch_size=16, workers=0, epochs=epochs,
                           device=device, amp=amp, progress=False, tensorboard=False, lr=0.01, warmup_epochs=0.5,
                           precise_bn_images=0)

    first = train(config("amp", 1, ws.device, True))
    scaler = load_checkpoint(first.last_checkpoint)[2].get("scaler") or {}
    if not scaler:
        raise CheckFailed("an AMP run on CUDA saved no loss-scaler state")
    resumed = train(config("amp", 2, ws.device, True), resume=first.last_checkpoint)
    cpu = train(config("cpu", 1, "cpu", False))
    crossed = train(config("cpu", 2, ws.device, True), resume=cpu.last_checkpoint)
    numbers = {"scale": scaler.get("scale"), "amp_losses": [row["loss"] for row in resumed.history],
               "cpu_then_amp_losses": [row["loss"] for row in crossed.history],
               "amp_images_per_s": resumed.history[-1].get("images_per_s")}
    if [row["epoch"] for row in resumed.history] != [1, 2] or [row["epoch"] for row in crossed.history] != [1, 2]:
        raise CheckFailed("a resumed run did not continue at epoch 2", numbers)
    return numbers


def check_bench(ws: Workspace, model: str) -> dict[str, Any]:
    """``ssd-bench latency`` (batch 1 and 64) and ``ssd-bench parity`` on CUDA for ``model``: every
    runtime present here; the others listed as skipped with the reason."""
    needs(CORE_PACKAGES)
    require_cuda(ws.device)
    from ..bench.latency import LatencyConfig, run_latency
    from ..bench.parity import ParityConfig, run_parity

    out = ws.folder / "bench" / model
    latency = run_latency([ws.checkpoint(model)], LatencyConfig(
        device=ws.device, batch_sizes=ws.batches, warmup=3, iterations=10, max_seconds=15.0, split=False, verify=False,
        progress=False), out)
    latency.write(out, plot=False)
    parity = run_parity(ws.checkpoint(model), ParityConfig(device=ws.device, shapes_images=64, batch_size=max(ws.batches),
                                                           verify=False, progress=False), out)
    parity.write(out, plot=False)
    numbers = {
        "latency": [{"runtime": r.runtime, "precision": r.precision, "batch": r.batch, "median_ms": r.median_ms,
                     "images_per_s": r.images_per_s} for r in latency.rows],
        "parity": [{"runtime": r.runtime, "precision": r.precision, "map_voc07": r.map_voc07, "delta_voc07": r.delta_voc07,
                    "max_box_diff": r.max_box_diff, "max_score_diff": r.max_score_diff, "ok": r.ok} for r in parity.rows],
        "skipped": sorted({f"{s.runtime} {s.precision or ''}: {s.reason}" for s in [*latency.skipped, *parity.skipped]}),
        "report": str(out),
    }
    problems = [f"{f.runtime} {f.precision}: {f.reason}" for f in [*latency.failed, *parity.failed]] + parity.violations
    if problems:
        raise CheckFailed("; ".join(problems[:3]), numbers)
    return numbers


def plan(ws: Workspace) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
    """The checks in the order they run: the issue's must-haves first, the longest last."""
    return [
        ("eager fp32", lambda: check_runtime(ws, "pytorch", "fp32")),
        ("eager fp16", lambda: check_runtime(ws, "pytorch", "fp16")),
        ("eager bf16", lambda: check_runtime(ws, "pytorch", "bf16")),
        ("torchscript", lambda: check_runtime(ws, "torchscript", "fp32", torchscript_file)),
        ("aotinductor", lambda: check_runtime(ws, "aotinductor", "fp32", aotinductor_file)),
        ("torch.compile", lambda: check_runtime(ws, "pytorch", "fp32", compile=True)),
        ("amp training + resume", lambda: check_amp_training(ws)),
        ("suite", lambda: check_suite(ws)),
        ("bench demo", lambda: check_bench(ws, "demo")),
        ("bench ssdlite320-coco91", lambda: check_bench(ws, "ssdlite320-coco91")),
    ]


def run_gpu_check(
    out: Path, device: str = "cuda", budget_s: float = 390.0, skip: tuple[str, ...] = (), batches: tuple[int, ...] = TIMED_BATCHES
) -> GpuCheckReport:
    """Run every check of :func:`plan` (except names in ``skip``) and write the report to ``out``.

    Args:
        budget_s: seconds after which checks not yet started are skipped (the last one started
            may run past it; 390 is meant to keep the whole run under 8 minutes on an H200).
        batches: batch sizes timed (images per call).
    """
    deadline = time.monotonic() + budget_s
    ws = Workspace(out / "work", device, batches)
    report = GpuCheckReport(machine_facts(device))
    report.results.append(CheckResult("environment", "passed", numbers={"missing": report.machine["missing"]}))
    for name, check in plan(ws):
        if name in skip:
            report.results.append(CheckResult(name, "skipped", reason="--skip"))
            continue
        report.results.append(run_check(name, check, deadline))
        report.write(out)  # a partial report survives an interrupted run
        print(f"gpu_check: {name}: {report.results[-1].status} {report.results[-1].reason}", flush=True)
    report.write(out)
    return report

"""``run_latency``: end-to-end latency of every runtime × precision × batch size, against
torchvision's eager pipeline.

    for each input (checkpoint or exported file):
      plan variants -> export what they need (cached) -> [baseline] -> for each variant and batch:
        warm-up, timed detect() calls (end to end), then full graph vs network-only companion
        alternately on one ready batch (the decode + NMS share)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..artifacts import ExportSettings
from ..calibration import Calibration, as_calibration
from ..checkpoint import load_checkpoint
from ..errors import SSDDeployError
from ..models.hub import resolve_model
from ..pipeline import preprocess
from ..postprocess import PostprocessConfig
from ..runtimes import Detector, StageTimes, load
from .baseline import TorchvisionBaseline, baseline_unsupported, build_torchvision_model
from .images import bench_images, default_calibration
from .machine import machine_info
from .report import LatencyReport
from .rows import LatencyRow, Measured, SkipRecord
from .variants import Planned, Skipped, Variant, cpu_has_native_bf16, is_checkpoint, plan_variants, prepare_variants


@dataclass(frozen=True)
class LatencyConfig:
    """Settings of a latency run (``ssd-bench latency``'s flags).

    Attributes:
        runtimes: runtimes to run; None: every runtime usable here (the others are listed as skipped).
        precisions: fp32, fp16, bf16, int8; None: every precision a runtime supports here.
        batch_sizes: images per ``detect`` call.
        warmup: untimed calls before timing (TorchScript's profiling executor needs several). iterations: timed calls (per stage split too).
        max_seconds: stop a warm-up, and a measurement, after this long (at least ``min_iterations``
            timed runs): bounds runtimes that stay slow (TorchScript's profiling executor).
        threads: CPU threads for every runtime (torch, ONNX Runtime, OpenVINO); None: torch's
            default (one per physical core).
        device: ``cpu`` or ``cuda[:N]``.
        images: folder of images to detect on (any sizes; searched recursively); None: generated
            shapes scenes of ``image_size`` (height, width).
        calibration: INT8 calibration images; without a folder: ``images``, else generated shapes scenes.
        postprocess: score threshold, NMS IoU, detections kept and top-k candidates, inside every
            exported graph, the pytorch runtime and the baseline alike (default: the SSD paper's
            evaluation settings, score 0.01; deployments often use a higher score, which leaves
            NMS fewer candidates).
        baseline: also time torchvision's eager pipeline (where the architecture has one).
        split: measure the decode + NMS share with the network-only companions.
        verify: check each exported file against PyTorch once, when it is written.
        export_jobs: on the CPU, export up to this many missing files at once, one process each
            (at most one per usable core; ``ssd-bench`` uses 2); 1: one at a time, in this process.
            Worker processes are spawned: a script that asks for more than 1 needs Python's
            ``if __name__ == "__main__":`` guard.
        progress: tqdm progress bars.
    """

    runtimes: tuple[str, ...] | None = None
    precisions: tuple[str, ...] | None = None
    batch_sizes: tuple[int, ...] = (1, 8)
    warmup: int = 10
    iterations: int = 50
    max_seconds: float = 60.0
    min_iterations: int = 5
    threads: int | None = None
    device: str = "cpu"
    images: Path | None = None
    image_size: tuple[int, int] = (480, 640)
    calibration: Calibration = Calibration()
    postprocess: PostprocessConfig = PostprocessConfig()
    baseline: bool = True
    split: bool = True
    verify: bool = True
    export_jobs: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "calibration", as_calibration(self.calibration))

    def check(self) -> None:
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise SSDDeployError(f"--batch-sizes {list(self.batch_sizes)}: expected one or more sizes of 1 or more images")
        if self.warmup < 0 or self.iterations < 1 or self.min_iterations < 1:
            raise SSDDeployError(f"--warmup {self.warmup} --iterations {self.iterations}: expected warm-up >= 0 and iterations >= 1")
        if self.threads is not None and self.threads < 1:
            raise SSDDeployError(f"--threads {self.threads}: expected 1 or more")
        if self.export_jobs < 1:
            raise SSDDeployError(f"--export-jobs {self.export_jobs}: expected 1 or more")
        if self.max_seconds <= 0:
            raise SSDDeployError(f"--max-seconds {self.max_seconds}: expected a positive number of seconds")


@dataclass
class Samples:
    """Timed runs of one measurement: totals and per-stage times, milliseconds."""

    total: list[float]
    preprocess: list[float]
    infer: list[float]
    postprocess: list[float]


def run_latency(
    inputs: Sequence[str | Path],
    config: LatencyConfig = LatencyConfig(),
    out_dir: str | Path = "runs/bench",
    on_progress: Callable[[LatencyReport], None] | None = None,
) -> LatencyReport:
    """Measure every chosen runtime × precision × batch size of every input.

    Args:
        inputs: training checkpoints (every format a runtime needs is exported into
            ``out_dir/cache``) or exported files (run as they are).
        config: see :class:`LatencyConfig`.
        out_dir: where the cache (and, through :meth:`LatencyReport.write`, the results) go.
        on_progress: called with the report so far after each runtime (e.g. to write partial
            results, so a long run that is stopped keeps what it measured); speed-ups are filled in.

    Returns:
        A :class:`LatencyReport` (call ``.write(out_dir)`` for Markdown, CSV, JSON and the plot).

    Raises:
        SSDDeployError: a missing input, a named runtime or precision unusable here, bad settings.
    """
    config.check()
    out = Path(out_dir)
    threads = _set_threads(config.threads)
    images, unreadable = bench_images(config.images, max(config.batch_sizes), config.image_size)
    report = LatencyReport(rows=[], machine=machine_info(), settings=_settings(config, threads), unreadable_images=unreadable)
    log = tqdm.write if config.progress else (lambda _line: None)
    paths = [resolve_model(p) for p in inputs]
    _check_distinct_names(paths)
    for path in paths:
        if not path.exists():
            raise SSDDeployError(f"{path}: no such file")
        planned, skipped = plan_variants(path, config.runtimes, config.precisions, config.device)
        planned, skipped = _without_emulated(planned, skipped, config.device)
        report.skipped += [SkipRecord(path.name, s.runtime, s.precision, s.reason) for s in skipped]
        calibration = config.calibration if config.images is None else config.calibration.or_folder(config.images)
        if calibration.folder is None and any(p.precision == "int8" for p in planned) and is_checkpoint(path):
            calibration = calibration.or_folder(default_calibration(out / "cache", log))
        settings = ExportSettings(out / "cache", calibration, config.device, config.verify, config.postprocess, jobs=config.export_jobs)
        variants = prepare_variants(path, planned, settings, _runtime_options(threads), log)
        _measure_input(path, variants, images, config, report, log, on_progress)
    _add_speedups(report.rows)
    return report


def _measure_input(path: Path, variants: list[Variant], images: list[np.ndarray], config: LatencyConfig, report: LatencyReport,
                   log: Callable[[str], None], on_progress: Callable[[LatencyReport], None] | None) -> None:
    """Add the baseline's and every variant's rows (or failures) of one input to ``report``."""
    arch = ""
    if is_checkpoint(path):
        baseline_rows, arch, reason = _measure_baseline(path, images, config)
        report.rows += baseline_rows
        if reason:
            report.skipped.append(SkipRecord(path.name, "torchvision baseline", None, reason))
    for variant in variants:
        try:
            variant.check_exported()
            report.rows += _measure_variant(path, arch, variant, images, config)
        except SSDDeployError as error:
            report.failed.append(SkipRecord(path.name, variant.runtime, variant.precision, str(error)))
            log(f"{path.name}: {variant.label} failed: {error}")
        if on_progress is not None:
            _add_speedups(report.rows)
            on_progress(report)


def _measure_variant(path: Path, arch: str, variant: Variant, images: list[np.ndarray], config: LatencyConfig) -> list[LatencyRow]:
    """Every batch size of one runtime x precision: end to end, then the network-only split."""
    detector = load(variant.path, runtime=variant.runtime, device=config.device, precision=variant.precision,
                    max_batch=max(config.batch_sizes), **variant.options)
    network, close_network = None, (lambda: None)
    rows = []
    try:
        network, close_network = _network_call(variant, detector, config)
        for batch in _bar(config.batch_sizes, f"{path.name}: {variant.label}", config.progress):
            chosen = images[:batch]
            samples = _time_calls(detector.detect, lambda: detector.last_times, chosen, config)
            split_net = split_post = None
            if network is not None:
                ready, _ = preprocess(chosen, detector.metadata.input_size, detector.metadata.resize)
                split_net, split_post = _time_split(detector.runner.infer, network, ready, config)
            measured = Measured(path.name, arch or detector.metadata.arch, variant.runtime, variant.precision, batch, config.device,
                                str(variant.path))
            rows.append(_row(measured, samples, "host only" if split_net is None else "network-only run", split_net, split_post))
    finally:
        close_network()
        detector.close()
    return rows


def _measure_baseline(path: Path, images: list[np.ndarray], config: LatencyConfig) -> tuple[list[LatencyRow], str, str | None]:
    """torchvision's eager pipeline on the checkpoint's weights: (rows, arch, why not measured)."""
    model, names, _ = load_checkpoint(path)
    arch = model.config.arch
    reason = baseline_unsupported(model) if config.baseline else "--no-baseline"
    if reason is None and config.device != "cpu":
        reason = "the baseline is timed on the CPU only"
    if reason is not None:
        return [], arch, reason
    baseline = TorchvisionBaseline(build_torchvision_model(model, config.postprocess), names)
    rows = []
    for batch in _bar(config.batch_sizes, f"{path.name}: torchvision eager", config.progress):
        samples = _time_calls(baseline.detect, lambda: baseline.last_times, images[:batch], config)
        measured = Measured(path.name, arch, "torchvision", "fp32", batch, "cpu", "torchvision.models.detection (eager)", baseline=True)
        rows.append(_row(measured, samples, "forward hooks", None, None))
    return rows, arch, None


def _network_call(variant: Variant, detector: Detector, config: LatencyConfig) -> tuple[Callable[[Any], Any] | None, Callable[[], None]]:
    """The network alone on the same runtime and precision (None where there is no companion),
    and how to release it."""
    if not config.split:
        return None, lambda: None
    if variant.runtime == "pytorch":
        runner = detector.runner  # its own network, cast or compiled as it runs it

        def run(batch):
            out = runner.infer_network(batch)
            if out[0].is_cuda:
                torch.cuda.synchronize()
            return out

        return run, lambda: None
    if variant.network_path is None:
        return None, lambda: None
    companion = load(variant.network_path, runtime=variant.runtime, device=config.device, precision=variant.precision,
                     max_batch=max(config.batch_sizes), **variant.options)
    return companion.runner.infer, companion.close


def _warm_up(calls: Sequence[Callable[[], Any]], config: LatencyConfig, least: int = 0) -> None:
    """Run each of ``calls`` ``warmup`` times (at least ``least``), stopping early after ``max_seconds``."""
    deadline = time.perf_counter() + config.max_seconds
    for i in range(max(config.warmup, least)):
        if i >= least and time.perf_counter() > deadline:
            break
        for call in calls:
            call()


def _time_calls(call: Callable[[list], Any], times: Callable[[], StageTimes], images: list, config: LatencyConfig) -> Samples:
    """Warm up, then time ``call(images)`` until ``iterations`` runs or ``max_seconds``."""
    _warm_up([lambda: call(images)], config)
    samples = Samples([], [], [], [])
    deadline = time.perf_counter() + config.max_seconds
    for i in range(config.iterations):
        start = time.perf_counter()
        call(images)
        samples.total.append((time.perf_counter() - start) * 1e3)
        stages = times()
        samples.preprocess.append(stages.preprocess_ms)
        samples.infer.append(stages.infer_ms)
        samples.postprocess.append(stages.postprocess_ms)
        if i + 1 >= config.min_iterations and time.perf_counter() > deadline:
            break
    return samples


def _time_split(full: Callable, network: Callable, batch: torch.Tensor, config: LatencyConfig) -> tuple[float, float]:
    """(network-only median ms, median of paired full − network-only ms), alternating the two."""
    _warm_up([lambda: network(batch), lambda: full(batch)], config, least=1)
    network_ms, differences = [], []
    deadline = time.perf_counter() + config.max_seconds
    for i in range(config.iterations):
        start = time.perf_counter()
        full(batch)
        middle = time.perf_counter()
        network(batch)
        end = time.perf_counter()
        network_ms.append((end - middle) * 1e3)
        differences.append(((middle - start) - (end - middle)) * 1e3)
        if i + 1 >= config.min_iterations and time.perf_counter() > deadline:
            break
    return float(np.median(network_ms)), max(0.0, float(np.median(differences)))


def _row(measured: Measured, samples: Samples, split: str, network: float | None, in_graph: float | None) -> LatencyRow:
    """The row of ``samples``; ``network`` and ``in_graph``: the network-only split's medians (ms),
    None where it was not measured (the stages are then the runner's own)."""
    baseline, batch = measured.baseline, measured.batch
    total = np.asarray(samples.total)
    median = float(np.median(total))
    pre = float(np.median(samples.preprocess))
    host_post = float(np.median(samples.postprocess))
    if baseline or network is None:
        network_ms = float(np.median(samples.infer))
        post = host_post
    else:
        network_ms = network
        post = host_post + (in_graph or 0.0)
    own_call = None if baseline or network is None or in_graph is None else network + in_graph
    return LatencyRow(
        **asdict(measured), iterations=len(total), median_ms=median, p90_ms=float(np.percentile(total, 90)), p99_ms=float(np.percentile(total, 99)),
        mean_ms=float(total.mean()), min_ms=float(total.min()), images_per_s=batch * 1e3 / median,
        preprocess_ms=pre, network_ms=network_ms, postprocess_ms=post, post_in_graph_ms=None if baseline else in_graph,
        post_host_ms=host_post, post_share=post / median, split=split,
        other_ms=median - pre - network_ms - post, own_call_ms=own_call,
    )


def _check_distinct_names(paths: list[Path]) -> None:
    """Rows, speed-ups and plots name each model by its file name, so two inputs must not share one."""
    seen: dict[str, Path] = {}
    for path in paths:
        if path.name in seen and seen[path.name] != path:
            raise SSDDeployError(
                f"{seen[path.name]} and {path} have the same file name; the report tells models apart by it. "
                "Note: copy or link one of them under another name"
            )
        seen[path.name] = path


def _without_emulated(planned: list[Planned], skipped: list[Skipped], device: str) -> tuple[list[Planned], list[Skipped]]:
    """Leave out PyTorch bf16 on a CPU without native bf16, as OpenVINO's is left out: PyTorch
    emulates it there, slower than fp32, which times the emulation, not the precision (parity
    still runs it: the emulated arithmetic is exact bf16)."""
    if device != "cpu" or cpu_has_native_bf16():
        return planned, skipped
    emulated = [p for p in planned if p.runtime == "pytorch" and p.precision == "bf16"]
    reason = "this CPU has no native bf16 (PyTorch would emulate it, slower than fp32)"
    return [p for p in planned if p not in emulated], skipped + [Skipped(p.runtime, p.precision, reason) for p in emulated]


def _add_speedups(rows: list[LatencyRow]) -> None:
    """Speed-up over the baseline, and the ceiling: baseline over the fastest network-only time."""
    baselines = {(r.model, r.batch): r.median_ms for r in rows if r.baseline}
    fastest: dict[tuple[str, int], float] = {}
    for row in rows:
        if not row.baseline and row.own_call_ms is not None:
            key = (row.model, row.batch)
            fastest[key] = min(fastest.get(key, row.network_ms), row.network_ms)
    for row in rows:
        reference = baselines.get((row.model, row.batch))
        row.speedup = None if reference is None else reference / row.median_ms
        network = fastest.get((row.model, row.batch))
        row.ceiling = None if reference is None or network is None else reference / network


def _set_threads(threads: int | None) -> int:
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def _runtime_options(threads: int) -> dict[str, dict[str, Any]]:
    """The same thread count for every CPU runtime (torch's is set process-wide)."""
    return {"onnxruntime": {"intra_op_threads": threads}, "openvino": {"threads": threads}}


def _settings(config: LatencyConfig, threads: int) -> dict[str, Any]:
    settings = {key: (list(value) if isinstance(value, tuple) else value) for key, value in asdict(config).items()}
    settings["threads"] = threads
    settings["images"] = str(config.images) if config.images else f"generated shapes scenes {config.image_size[0]}x{config.image_size[1]} (HxW)"
    settings.update(config.calibration.settings())
    settings["postprocess"] = asdict(config.postprocess)
    return settings


def _bar(items: Sequence[int], desc: str, progress: bool):
    return tqdm(items, desc=desc, unit="batch size", disable=not progress, leave=False)

"""The GPU machine's first run in one call: what runs on CUDA, how it compares with CPU FP32, how fast.

    python benchmarks/gpu_check.py [--out runs/gpu-check] [--wheels DIR] [--device cpu]

Every check ends passed, failed or skipped with the reason (a package not installed, no CUDA
device, the time budget spent), and the report says which: ``OUT/gpu_check.md`` and
``OUT/gpu_check.json``. ``--device cpu`` runs the same checks on the CPU: a dry run of the script.

    environment        versions, GPU, the packages present and missing
    eager fp32/16/bf16 the pytorch runtime on CUDA against the CPU FP32 reference
    torchscript        an exported .ts on CUDA against CPU FP32
    aotinductor        a .pt2 compiled for CUDA against CPU FP32, and refused on the CPU
    torch.compile      the pytorch runtime through torch.compile on CUDA against CPU FP32
    amp training       AMP steps on CUDA, a resume, and an AMP resume of a CPU (no AMP) checkpoint
    suite              the suite's TensorRT, AMP and TensorRT-provider tests (pytest)
    bench              ssd-bench latency and parity on CUDA: the demo model, a 91-class SSDLite320

The models are untrained with spread weights (:func:`~ssd_deploy.models.informative.informative_init`):
nothing is downloaded, and their varied scores make the comparisons meaningful. This module imports
only the standard library and torch at the top, so it reports what is missing even where the
package's own dependencies (pillow, tqdm, pyyaml, onnxscript) are not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

REPO = Path(__file__).resolve().parent.parent
# Import name -> distribution, for what the checks need beyond torch, torchvision, numpy, onnx, cv2.
CORE_PACKAGES = {"PIL": "pillow", "tqdm": "tqdm", "yaml": "pyyaml"}
EXPORT_PACKAGES = {"onnxscript": "onnxscript", "onnx_ir": "onnx-ir"}
TEST_PACKAGES = {"pytest": "pytest"}
OPTIONAL_PACKAGES = {"onnxruntime": "onnxruntime", "tensorrt": "tensorrt", "openvino": "openvino", "pycocotools": "pycocotools"}
# Wheels to bring to a machine without them (pure Python or manylinux, 11 MiB in all).
WHEELS = ("pillow", "tqdm", "pyyaml", "onnxscript", "onnx-ir", "ml-dtypes", "pytest", "pluggy", "iniconfig", "packaging", "pygments")
# The suite's tests that matter on a GPU machine: TensorRT engines (skipped without tensorrt, with
# the reason), resume across AMP on and off, the process-group timeout, ONNX Runtime's TensorRT provider.
SUITE = (
    ["tests/test_tensorrt.py"],
    ["tests/test_training.py", "-k", "amp or scaler or nccl"],
    ["tests/test_runtimes.py", "-k", "tensorrt_provider"],
)
SAMPLE_BATCH = 8  # images compared with CPU FP32 per check
TIMED_BATCHES = (1, 64)  # batch sizes timed per runtime
# cuDNN convolutions run TF32 by default (torch.backends.cudnn.allow_tf32), so CUDA FP32 is
# compared like a close float format, not bit for bit.
CUDA_FP32 = dict(box_atol=2e-3, score_atol=2e-3, min_iou=0.99)


class SkipCheck(Exception):
    """Raised inside a check that cannot run here; its message is the reason."""


class CheckFailed(Exception):
    """Raised inside a check whose result is wrong; its message says how, ``numbers`` what was measured."""

    def __init__(self, message: str, numbers: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.numbers = numbers or {}


@dataclass
class CheckResult:
    """One check: ``status`` passed, failed or skipped; ``reason`` why (failed, skipped); ``numbers``
    what it measured (milliseconds, differences, counts); ``seconds`` its wall time."""

    name: str
    status: str
    seconds: float = 0.0
    reason: str = ""
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass
class GpuCheckReport:
    """The machine's facts and every check's result, written as Markdown and JSON."""

    machine: dict[str, Any]
    results: list[CheckResult] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {status: sum(r.status == status for r in self.results) for status in ("passed", "failed", "skipped")}

    def markdown(self) -> str:
        counts = self.counts()
        lines = ["# GPU check", "", f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped.", ""]
        lines += [f"- {key}: {value}" for key, value in self.machine.items()]
        lines += ["", "| check | status | seconds | reason / numbers |", "|---|---|---|---|"]
        for result in self.results:
            detail = result.reason or _short_numbers(result.numbers)
            lines.append(f"| {result.name} | {result.status} | {result.seconds:.1f} | {detail.replace('|', '/')} |")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {"machine": self.machine, "counts": self.counts(), "results": [asdict(r) for r in self.results]}

    def write(self, out: Path) -> dict[str, Path]:
        out.mkdir(parents=True, exist_ok=True)
        paths = {"md": out / "gpu_check.md", "json": out / "gpu_check.json"}
        paths["md"].write_text(self.markdown())
        paths["json"].write_text(json.dumps(self.to_dict(), indent=2, default=str))
        return paths


def _short_numbers(numbers: dict[str, Any], limit: int = 300) -> str:
    text = ", ".join(f"{k}={_round(v)}" for k, v in numbers.items() if not isinstance(v, (list, dict)))
    return text[:limit]


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


# ---------------------------------------------------------------------------------------------
# Preconditions: packages, CUDA, time


def missing_packages(packages: dict[str, str]) -> list[str]:
    """Distributions of ``packages`` (import name -> distribution) that cannot be imported here."""
    missing = []
    for module, distribution in packages.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package missing, or a module set to None
            found = False
        if not found:
            missing.append(distribution)
    return missing


def needs(packages: dict[str, str]) -> None:
    """SkipCheck naming the missing distributions of ``packages`` (none missing: nothing)."""
    missing = missing_packages(packages)
    if missing:
        raise SkipCheck(f"needs {', '.join(missing)} (not installed; bring the wheels: --wheels DIR, see the README)")


def cuda_problem(device: str) -> str | None:
    """Why ``device`` cannot run the checks here, or None. ``cpu`` always can: a dry run of the
    checks themselves (the comparisons are then CPU against CPU)."""
    if torch.device(device).type == "cpu":
        return None
    if not torch.cuda.is_available():
        return f"no CUDA device (torch {torch.__version__}, torch.cuda.is_available() is False)"
    index = torch.device(device).index or 0
    if index >= torch.cuda.device_count():
        return f"{device}: this machine has {torch.cuda.device_count()} CUDA device(s)"
    return None


def run_check(name: str, check: Callable[[], dict[str, Any]], deadline: float) -> CheckResult:
    """Run ``check`` (returns its numbers) unless the time budget is spent; never raises."""
    if time.monotonic() > deadline:
        return CheckResult(name, "skipped", reason="time budget spent (--budget-s) before it started")
    started = time.monotonic()
    try:
        numbers = check()
        return CheckResult(name, "passed", time.monotonic() - started, numbers=numbers)
    except SkipCheck as skip:
        return CheckResult(name, "skipped", time.monotonic() - started, reason=str(skip))
    except CheckFailed as failure:
        return CheckResult(name, "failed", time.monotonic() - started, reason=str(failure), numbers=failure.numbers)
    except Exception as error:  # noqa: BLE001 - a failed check is a result, the others still run
        where = traceback.extract_tb(error.__traceback__)[-1]
        reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:400] if str(error).strip() else ''} "
        reason += f"({Path(where.filename).name}:{where.lineno})"
        return CheckResult(name, "failed", time.monotonic() - started, reason=reason)


def machine_facts(device: str) -> dict[str, Any]:
    """Versions, the GPU and which packages are present (``missing`` says which are not)."""
    facts: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda (torch)": torch.version.cuda,
        "device": device,
    }
    if torch.device(device).type == "cuda" and cuda_problem(device) is None:
        index = torch.device(device).index or 0
        major, minor = torch.cuda.get_device_capability(index)
        facts["gpu"] = f"{torch.cuda.get_device_name(index)} (compute capability {major}.{minor})"
    else:
        facts["gpu"] = cuda_problem(device)
    for module in ("torchvision", "numpy", "onnx", "cv2", "onnxruntime", "onnxscript"):
        facts[module] = _version(module)
    everything = {**CORE_PACKAGES, **EXPORT_PACKAGES, **TEST_PACKAGES, **OPTIONAL_PACKAGES}
    facts["missing"] = ", ".join(missing_packages(everything)) or "none"
    if facts["onnxruntime"] != "not installed":
        import onnxruntime

        facts["onnxruntime providers"] = ", ".join(onnxruntime.get_available_providers())
    return facts


def _version(module: str) -> str:
    if missing_packages({module: module}):
        return "not installed"
    try:
        return str(getattr(__import__(module), "__version__", "installed"))
    except Exception as error:  # noqa: BLE001 - a broken install is a fact to report
        return f"cannot be imported ({type(error).__name__})"


def install_wheels(wheels: Path, target: Path) -> list[str]:
    """Install every ``*.whl`` of ``wheels`` into ``target`` (no index, no dependencies resolved: the
    folder holds them all) and put ``target`` first on this process's and its children's path.

    Returns:
        The wheel file names installed.
    """
    files = sorted(wheels.glob("*.whl"))
    if not files:
        raise SystemExit(f"gpu_check: {wheels} holds no .whl files. Note: see the README's GPU check section")
    command = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet", "--target", str(target), *map(str, files)]
    subprocess.run(command, check=True)
    add_to_path(target)
    return [file.name for file in files]


def add_to_path(folder: Path) -> None:
    """``folder`` first on ``sys.path`` and on the PYTHONPATH that subprocesses (pytest) inherit."""
    sys.path.insert(0, str(folder))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(folder), *filter(None, [os.environ.get("PYTHONPATH")])])
    importlib.invalidate_caches()


# ---------------------------------------------------------------------------------------------
# The models and the CPU FP32 reference the checks share


# name -> (architecture, input size (height, width), classes including the background)
MODELS = {"demo": ("ssdlite_mobilenet_v3", (160, 160), 6), "ssdlite320-coco91": ("ssdlite_mobilenet_v3", (320, 320), 91)}


@dataclass
class Workspace:
    """What the checks share under ``folder``: checkpoints, exports, datasets, CPU references."""

    folder: Path
    device: str
    batches: tuple[int, ...] = TIMED_BATCHES  # batch sizes timed per runtime
    _references: dict[str, list[torch.Tensor]] = field(default_factory=dict)

    def checkpoint(self, name: str) -> Path:
        """The checkpoint of model ``name`` (:data:`MODELS`), written on first use."""
        path = self.folder / "models" / f"{name}.pt"
        if path.is_file():
            return path
        from .checkpoint import save_checkpoint
        from .data.shapes import CLASS_NAMES
        from .models import create_model
        from .models.informative import informative_init

        arch, size, classes = MODELS[name]
        # The shapes' names first, so ssd-bench parity's generated shapes data fits either model.
        names = [*CLASS_NAMES, *(f"class_{i}" for i in range(len(CLASS_NAMES), classes))][:classes]
        model = informative_init(create_model(arch, num_classes=classes, input_size=size))
        return save_checkpoint(path, model, names)

    def sample(self, name: str) -> torch.Tensor:
        """Tensor[SAMPLE_BATCH, 3, H, W] of generated scenes at model ``name``'s input size."""
        from .export.verify import sample_batch

        return sample_batch(MODELS[name][1], SAMPLE_BATCH, seed=11)

    def reference(self, name: str) -> list[torch.Tensor]:
        """The pytorch runtime's FP32 outputs on the CPU for :meth:`sample` (num, boxes, scores, labels)."""
        if name not in self._references:
            from .runtimes import load

            with load(self.checkpoint(name), runtime="pytorch", device="cpu") as detector:
                self._references[name] = _outputs(detector, self.sample(name))
        return self._references[name]


def _outputs(detector: Any, batch: torch.Tensor) -> list[torch.Tensor]:
    return [torch.as_tensor(value) for value in detector.infer(batch).values()]


def compare_with_cpu(reference: list[torch.Tensor], outputs: list[torch.Tensor], precision: str) -> dict[str, Any]:
    """How ``outputs`` agree with the CPU FP32 ``reference`` (padded detections of one batch).

    fp32: the same detections within :data:`CUDA_FP32`; fp16/bf16: judged as detectors, with the
    criterion ssd-export uses for reduced precisions (:class:`~ssd_deploy.export.verify.RecallCriterion`:
    each run finds 85% of the other's detections scoring above 0.3, same label, IoU >= 0.5). The
    untrained models fill all 200 slots above 0.1, so a lower score would only count reshuffles
    at the capacity's edge (measured on the CPU: bf16 finds 87-88% above 0.3, 83% above 0.1).

    Raises:
        CheckFailed: beyond those bounds (the numbers are kept).
    """
    from .compare import Tolerances, compare_detections, detection_recall
    from .export.verify import RecallCriterion
    from .postprocess import PostprocessConfig

    post = PostprocessConfig()
    if precision == "fp32":
        comparison = compare_detections(reference, outputs, Tolerances(**CUDA_FP32), post.score_threshold, post.iou_threshold)
        numbers = {"matched": comparison.matched, "max_box_diff": comparison.max_box_diff, "max_score_diff": comparison.max_score_diff}
        if not comparison.ok:
            raise CheckFailed(f"differs from CPU FP32: {'; '.join(comparison.problems[:3])}", numbers)
        return numbers
    criterion = RecallCriterion()
    found, total = detection_recall(reference, outputs, criterion.score_threshold, criterion.min_iou, criterion.score_margin)
    back, back_total = detection_recall(outputs, reference, criterion.score_threshold, criterion.min_iou, criterion.score_margin)
    numbers = {"found": f"{found}/{total}", "found_back": f"{back}/{back_total}"}
    if total == 0 or back_total == 0:
        raise CheckFailed(f"no detections above {criterion.score_threshold} to compare (the model's scores collapsed)", numbers)
    if min(found / total, back / back_total) < criterion.min_recall:
        raise CheckFailed(f"finds under {criterion.min_recall:.0%} of CPU FP32's detections (or the other way round)", numbers)
    return numbers


def time_batches(
    detector: Any, input_size: tuple[int, int], device: str, batches: tuple[int, ...] = TIMED_BATCHES, repeats: int = 10
) -> dict[str, float]:
    """Median milliseconds of ``detector.infer`` per batch size (random images already on
    ``device``; three untimed calls first; infer returns host arrays, so each call ends synchronised)."""
    numbers = {}
    for batch in batches:
        images = torch.rand(batch, 3, *input_size, device=device)
        for _ in range(3):
            detector.infer(images)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            detector.infer(images)
            times.append((time.perf_counter() - started) * 1000)
        numbers[f"batch{batch}_ms"] = sorted(times)[len(times) // 2]
    return numbers


# ---------------------------------------------------------------------------------------------
# The checks (each returns its numbers, or raises SkipCheck / CheckFailed)


def _require_cuda(device: str) -> None:
    problem = cuda_problem(device)
    if problem:
        raise SkipCheck(problem)


def check_runtime(
    ws: Workspace, runtime: str, precision: str, file: Callable[[Workspace], Path] | None = None, **options: Any
) -> dict[str, Any]:
    """``runtime`` at ``precision`` on CUDA, on the demo model's checkpoint or ``file(ws)``,
    against CPU FP32, and its latency at batch 1 and 64."""
    needs(CORE_PACKAGES)
    _require_cuda(ws.device)
    from .runtimes import load

    from .errors import RuntimeUnavailableError

    path = file(ws) if file else ws.checkpoint("demo")
    try:
        detector = load(path, runtime=runtime, device=ws.device, precision=precision, max_batch=max(ws.batches), **options)
    except RuntimeUnavailableError as error:
        raise SkipCheck(str(error)) from None
    with detector:
        numbers = compare_with_cpu(ws.reference("demo"), _outputs(detector, ws.sample("demo")), precision)
        numbers.update(time_batches(detector, MODELS["demo"][1], ws.device, ws.batches))
    return numbers


def torchscript_file(ws: Workspace) -> Path:
    """The demo model traced to TorchScript (dynamic batch; traced on the CPU, it runs anywhere)."""
    from .export import ExportOptions, export_model

    options = ExportOptions(format="torchscript", dynamic_batch=True, verify=False)
    return export_model(ws.checkpoint("demo"), ws.folder / "exports" / "demo.ts", options).path


def aotinductor_file(ws: Workspace) -> Path:
    """The demo model compiled by AOTInductor for CUDA; also checks it is refused on the CPU."""
    needs(EXPORT_PACKAGES)
    from .errors import ExportError
    from .export import ExportOptions, export_model
    from .runtimes import load

    options = ExportOptions(format="pt2", dynamic_batch=True, verify=False, device=ws.device)
    path = export_model(ws.checkpoint("demo"), ws.folder / "exports" / "demo-cuda.pt2", options).path
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
    _require_cuda(ws.device)
    if torch.device(ws.device).type != "cuda":
        raise SkipCheck("AMP (float16 autocast with a loss scaler) is the trainer's CUDA path; the CPU trains in float32")
    from .checkpoint import load_checkpoint
    from .data.shapes import generate_shapes_dataset
    from .training import TrainConfig
    from .training.trainer import train

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


def check_suite(ws: Workspace) -> dict[str, Any]:
    """The suite's GPU-relevant tests (:data:`SUITE`) through pytest; counts and skip reasons."""
    needs({**CORE_PACKAGES, **TEST_PACKAGES})
    _require_cuda(ws.device)
    totals: dict[str, Any] = {"passed": 0, "failed": 0, "skipped": 0, "skip_reasons": {}, "failures": []}
    for index, args in enumerate(SUITE):
        xml = ws.folder / "suite" / f"junit-{index}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.unlink(missing_ok=True)  # an earlier run's report must not stand in for this one's
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={xml}", *args]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
        subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        merge_junit(totals, parse_junit(xml))
    if totals["failed"]:
        raise CheckFailed(f"{totals['failed']} test(s) failed: {', '.join(totals['failures'][:5])}", totals)
    return totals


def parse_junit(path: Path) -> dict[str, Any]:
    """Counts of a pytest JUnit XML file: passed, failed (errors included), skipped with reasons."""
    if not path.is_file():
        return {"passed": 0, "failed": 1, "skipped": 0, "skip_reasons": {}, "failures": [f"{path.name}: pytest wrote no report"]}
    counts: dict[str, Any] = {"passed": 0, "failed": 0, "skipped": 0, "skip_reasons": {}, "failures": []}
    for case in ElementTree.parse(path).iter("testcase"):
        outcome = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        if outcome is None:
            counts["passed"] += 1
        elif outcome.tag == "skipped":
            counts["skipped"] += 1
            reason = (outcome.get("message") or "").strip()
            counts["skip_reasons"][reason] = counts["skip_reasons"].get(reason, 0) + 1
        else:
            counts["failed"] += 1
            counts["failures"].append(f"{case.get('classname', '')}::{case.get('name', '')}")
    return counts


def merge_junit(totals: dict[str, Any], counts: dict[str, Any]) -> None:
    for key in ("passed", "failed", "skipped"):
        totals[key] += counts[key]
    totals["failures"] += counts["failures"]
    for reason, number in counts["skip_reasons"].items():
        totals["skip_reasons"][reason] = totals["skip_reasons"].get(reason, 0) + number


def check_bench(ws: Workspace, model: str) -> dict[str, Any]:
    """``ssd-bench latency`` (batch 1 and 64) and ``ssd-bench parity`` on CUDA for ``model``: every
    runtime present here; the others listed as skipped with the reason."""
    needs(CORE_PACKAGES)
    _require_cuda(ws.device)
    from .bench.latency import LatencyConfig, run_latency
    from .bench.parity import ParityConfig, run_parity

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

"""Which runtime × precision combinations to run, and the files each needs.

    input (a checkpoint, or an exported file)
      └─ plan: every chosen runtime × precision this machine and file can run; the rest skipped, with why
           └─ prepare: the files a checkpoint's variants need, from the export cache
                       (:mod:`ssd_deploy.artifacts`), each with a network-only companion

The companion is what the latency split times against: on the same runtime, precision and batch,
(full graph − network only) is the time spent decoding and in NMS inside the graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..artifacts import ExportSettings, FileKind, ready_files
from ..devices import torch_device_problem
from ..errors import SSDDeployError
from ..export import read_metadata
from ..lookup import lookup
from ..runtimes import RUNTIMES, runtime_for_file
from ..runtimes.base import PRECISIONS

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
CHECKPOINT = FileKind(None)  # the pytorch runtime runs the checkpoint itself
# Runtimes run only when named (--runtimes NAME), each with why: they need files of their own, which
# "every runtime usable here" (the demo's default) would export and time on every run.
NAMED_ONLY = {"opencv": "runs only when named (--runtimes opencv): it needs its own export (ssd-export --opencv-dnn)"}


@dataclass(frozen=True)
class Variant:
    """One runtime × precision to run.

    Attributes:
        runtime: a name in :data:`ssd_deploy.runtimes.RUNTIMES`. precision: the network's arithmetic.
        path: the file the runtime loads (the checkpoint for ``pytorch``).
        network_path: the network-only companion (same runtime, precision and batch; outputs the
            head's ``(loc, logits)``), or None where there is none (a given exported file; ``pytorch``
            takes its network from the loaded module instead).
        options: runtime options for :func:`ssd_deploy.runtimes.load`.
        export_error: why the file could not be exported (the variant is then reported as
            failed, and the others still run).
    """

    runtime: str
    precision: str
    path: Path
    network_path: Path | None = None
    options: dict[str, Any] = field(default_factory=dict, compare=False)
    export_error: str | None = None

    @property
    def label(self) -> str:
        return f"{self.runtime} {self.precision}"

    def check_exported(self) -> None:
        """Raise the export's error, for a variant whose file could not be written."""
        if self.export_error is not None:
            raise SSDDeployError(self.export_error)


@dataclass(frozen=True)
class Skipped:
    """A runtime (× precision) not run, and why."""

    runtime: str
    precision: str | None
    reason: str

    @property
    def label(self) -> str:
        return self.runtime + (f" {self.precision}" if self.precision else "")


@dataclass(frozen=True)
class Planned:
    """A variant before its files exist: which file kind it needs."""

    runtime: str
    precision: str
    kind: FileKind


def is_checkpoint(path: Path) -> bool:
    return path.suffix.lower() in CHECKPOINT_SUFFIXES and runtime_for_file(path) == "pytorch"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX flags in /proc/cpuinfo;
    True where the flags cannot be read, so nothing is skipped on a guess)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True
    return "avx512_bf16" in flags or "amx_bf16" in flags


def precision_support(runtime: str, device: str) -> dict[str, FileKind | str]:
    """For each precision: the file a checkpoint must be exported to for ``runtime`` on ``device``
    (a :class:`FileKind`), or the reason it cannot run (a string)."""
    cuda = device.lower().startswith("cuda")
    cuda_only = "needs CUDA (this run is on the CPU)"
    int8_onnx = "INT8 runs from a quantised ONNX file: onnxruntime and openvino on CPUs, tensorrt on NVIDIA GPUs"
    if runtime == "pytorch":
        return {"fp32": CHECKPOINT, "bf16": CHECKPOINT, "fp16": CHECKPOINT if cuda else cuda_only, "int8": int8_onnx}
    if runtime in ("torchscript", "aotinductor"):
        fmt = "torchscript" if runtime == "torchscript" else "pt2"
        return {
            "fp32": FileKind(fmt),
            "fp16": FileKind(fmt, "fp16") if cuda else f"{cuda_only}: float16 convolutions are slow on CPUs",
            "bf16": "ssd-export writes fp32 and fp16 files only (bf16 runs on pytorch and openvino)",
            "int8": int8_onnx,
        }
    if runtime == "onnxruntime":
        if cuda and not _onnxruntime_has_cuda():
            return {p: "this onnxruntime build has no CUDAExecutionProvider (the onnxruntime-gpu wheel has it)" for p in PRECISIONS}
        if cuda:
            return {"fp32": FileKind("onnx"), "fp16": FileKind("onnx", "fp16"), "bf16": "no bf16 ONNX export",
                    "int8": "INT8 QDQ files on GPUs: use tensorrt"}
        return {
            "fp32": FileKind("onnx"),
            "fp16": "ONNX Runtime's CPU provider lacks float16 kernels for most operators (use openvino fp16)",
            "bf16": "ONNX Runtime's CPU provider has no bf16 kernels (use openvino bf16 or pytorch bf16)",
            "int8": FileKind("onnx", "int8"),
        }
    if runtime == "openvino":
        if cuda:
            return {p: "OpenVINO runs on Intel devices, not CUDA (bench it with --device cpu)" for p in PRECISIONS}
        capabilities = _openvino_cpu_capabilities()
        support: dict[str, FileKind | str] = {"fp32": FileKind("onnx"), "int8": FileKind("onnx", "int8")}
        for precision in ("bf16", "fp16"):
            native = precision.upper() in capabilities
            support[precision] = FileKind("onnx") if native else f"this CPU has no native {precision} (OpenVINO would run it in fp32)"
        return support
    if runtime == "tensorrt":
        if not cuda:
            return {p: "TensorRT needs an NVIDIA GPU (--device cuda)" for p in PRECISIONS}
        return {p: FileKind("onnx") for p in PRECISIONS}  # TensorRT builds the precision from the fp32 ONNX
    if runtime == "opencv":
        if cuda:
            return {p: "OpenCV DNN runs on the CPU here (bench it with --device cpu)" for p in PRECISIONS}
        float_only = "OpenCV DNN runs fp32 ONNX files (exported with --opencv-dnn)"
        return {"fp32": FileKind("onnx", opencv_dnn=True), "fp16": float_only, "bf16": float_only, "int8": float_only}
    raise SSDDeployError(f"runtime {runtime!r} is unknown")


def _onnxruntime_has_cuda() -> bool:
    """Whether the installed onnxruntime is a GPU build (the CPU wheel is usable, but not on CUDA)."""
    try:
        import onnxruntime
    except ImportError:  # availability() reports it
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def _openvino_cpu_capabilities() -> tuple[str, ...]:
    try:
        import openvino

        return tuple(openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # openvino missing or no CPU plugin: availability() reports it
        return ()


def plan_variants(
    path: Path,
    runtimes: Sequence[str] | None,
    precisions: Sequence[str] | None,
    device: str = "cpu",
) -> tuple[list[Planned], list[Skipped]]:
    """The runtime × precision combinations to run for one input, and the ones skipped with why.

    Args:
        path: a checkpoint (every runtime: files are exported) or an exported file (the runtimes
            that read it, in the precisions it allows).
        runtimes: names to run; None: every runtime usable here (the others are skipped).
        precisions: precisions to run; None: every one a runtime supports here.
        device: ``cpu`` or ``cuda[:N]``.

    Raises:
        SSDDeployError: a named runtime is unknown or not usable on this machine; a named
            precision is unknown, or none of the chosen runtimes can run it.
    """
    _check_device(device)
    explicit = runtimes is not None
    names = [lookup(RUNTIMES, name, "runtime").name for name in runtimes] if explicit else list(RUNTIMES)
    for precision in precisions or ():
        if precision not in PRECISIONS:
            raise SSDDeployError(f"precision {precision!r} is unknown. Note: expected one of {', '.join(PRECISIONS)}")
    planned: list[Planned] = []
    skipped: list[Skipped] = []
    file_precision = None if is_checkpoint(path) else _file_precision(path)
    for name in dict.fromkeys(names):
        reason = _runtime_reason(name, path, file_precision, explicit)
        if reason is not None:
            skipped.append(Skipped(name, None, reason))
            continue
        support = precision_support(name, device)
        for precision in precisions or PRECISIONS:
            need = _file_need(name, precision, support[precision], file_precision)
            if isinstance(need, str):
                skipped.append(Skipped(name, precision, need))
            else:
                planned.append(Planned(name, precision, need))
    for precision in precisions or ():
        if not any(p.precision == precision for p in planned):
            reasons = "; ".join(f"{s.runtime}: {s.reason}" for s in skipped if s.precision in (precision, None))
            raise SSDDeployError(f"{path}: no chosen runtime runs {precision} here ({reasons or 'not supported'})")
    return planned, skipped


def _check_device(device: str) -> None:
    problem = torch_device_problem(device)
    if problem:
        raise SSDDeployError(f"--{problem}. Note: use --device cpu")


def _runtime_reason(name: str, path: Path, file_precision: str | None, explicit: bool) -> str | None:
    """Why runtime ``name`` runs nothing of ``path`` (None: it may; ``file_precision`` None: a
    checkpoint). Raises for a runtime named explicitly that is not usable here."""
    status = RUNTIMES[name].availability()
    if not status.usable:
        if explicit:
            raise SSDDeployError(f"runtime {name}: not usable here: {status.reason}")
        return status.reason
    if not explicit and name in NAMED_ONLY:
        return NAMED_ONLY[name]
    if file_precision is not None and (name == "pytorch" or path.suffix.lower() not in RUNTIMES[name].suffixes):
        what = "runs training checkpoints" if name == "pytorch" else f"does not read {path.suffix} files"
        return f"{what} (give the checkpoint to export what it needs)"
    return None


def _file_need(runtime: str, precision: str, need: FileKind | str, file_precision: str | None) -> FileKind | str:
    """The file ``runtime`` needs for ``precision`` (``need`` from :func:`precision_support`), or why
    it cannot run it; for a given exported file (``file_precision`` not None), that file."""
    if isinstance(need, str) or file_precision is None:
        return need
    return _file_reason(runtime, precision, file_precision) or FileKind("given", file_precision)


def _file_precision(path: Path) -> str:
    if path.suffix.lower() == ".xml":
        from ..runtimes.openvino import model_metadata

        import openvino

        return model_metadata(openvino.Core().read_model(str(path)), path).precision
    if path.suffix.lower() in (".engine", ".plan"):
        return "engine"
    return read_metadata(path).precision


def _file_reason(runtime: str, precision: str, file_precision: str) -> str | None:
    """Why ``runtime`` cannot run a ``file_precision`` file in ``precision`` (None: it can)."""
    if file_precision == "engine":
        return None if runtime == "tensorrt" else "a TensorRT engine"
    if runtime == "openvino" and file_precision == "fp32" and precision in ("fp32", "bf16", "fp16"):
        return None
    if runtime == "tensorrt" and file_precision == "fp32":
        return None
    if precision == file_precision:
        return None
    return f"the file holds a {file_precision} model (export the checkpoint in {precision}, or give the checkpoint)"


def prepare_variants(
    path: Path,
    planned: Sequence[Planned],
    settings: ExportSettings,
    runtime_options: dict[str, dict[str, Any]] | None = None,
    log=print,
) -> list[Variant]:
    """Export (or reuse from the cache) every file ``planned`` needs; the variants to run.

    Args:
        path: the input (checkpoint or exported file).
        planned: from :func:`plan_variants`.
        settings: see :class:`~ssd_deploy.artifacts.ExportSettings`.
        runtime_options: per runtime, extra options for :func:`ssd_deploy.runtimes.load`.
        log: called with one line per file written.
    """
    options = runtime_options or {}
    if not is_checkpoint(path):
        return [Variant(p.runtime, p.precision, path, None, dict(options.get(p.runtime, {}))) for p in planned]
    if any(p.kind.precision == "int8" and p.kind.format is not None for p in planned) and settings.calibration.folder is None:
        raise SSDDeployError("INT8 variants need calibration images. Note: pass --calib FOLDER (or --images FOLDER)")
    files, errors = ready_files(path, [p.kind for p in planned], settings, log)
    variants = []
    for p in planned:
        extra = dict(options.get(p.runtime, {}))
        if p.runtime == "tensorrt" and p.precision == "int8":
            extra.setdefault("calibration", settings.calibration)
        if p.runtime == "pytorch":
            extra.setdefault("postprocess", settings.postprocess)
        if p.kind.format is None:
            variants.append(Variant(p.runtime, p.precision, path, None, extra))
        elif p.kind in errors:
            variants.append(Variant(p.runtime, p.precision, path, None, extra, export_error=errors[p.kind]))
        else:
            full, network = files[p.kind]
            variants.append(Variant(p.runtime, p.precision, full, network, extra))
    return variants

"""Export missing cache files several at a time, each in its own worker process.

Compiling an AOTInductor package and exporting ONNX with the dynamo exporter are mostly
single-threaded (Python tracing, then one compiler process per source file), so on a small CPU
two at a time take about half the wall time.

Full files and the TorchScript/pt2 network-only companions go to workers, in the order of
:func:`start_order`.
Cutting an ONNX companion out of its full file stays in the caller (it is quick), as does
anything a worker could not write: :func:`~ssd_deploy.artifacts.cache.export_files` exports
what is still missing afterwards, one at a time.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..checkpoint import load_checkpoint
from ..errors import SSDDeployError
from .companion import export_network_only
from .full import FLOAT_ONNX, INT8_ONNX, export_full
from .kinds import ExportSettings, FileKind

# The order to start jobs in (format, part, precision; None: any). The AOTInductor package is the
# longest job (several times an ONNX export), so it starts first; its network-only companion
# starts once another job has finished (started beside its full file, both would pay the
# compiler's cold start); INT8 ONNX waits for the float32 file it quantises; TorchScript files are
# quick, so they fill the gaps last.
_ORDER = (("pt2", "full", None), ("onnx", "full", "fp32"), ("pt2", "network", None), ("onnx", "full", None),
          ("torchscript", "full", None), ("torchscript", "network", None))


@dataclass(frozen=True)
class ExportJob:
    """One file to write: ``part`` is ``full`` (what ssd-export writes) or ``network`` (the companion)."""

    kind: FileKind
    part: str
    path: Path


@dataclass(frozen=True)
class JobResult:
    """What a worker did: ``error`` is an export's :class:`SSDDeployError` (reported, not retried);
    ``unexpected`` any other exception, by name and first line (the file is left to the caller,
    which exports it again in its own process and reports what it raises there)."""

    job: ExportJob
    seconds: float
    error: str | None
    messages: tuple[str, ...]
    unexpected: str | None = None


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def start_order(jobs: Sequence[ExportJob]) -> list[ExportJob]:
    """``jobs`` in the order to start them (see ``_ORDER``); stable for jobs of equal rank."""
    def rank(job: ExportJob) -> int:
        for index, (fmt, part, precision) in enumerate(_ORDER):
            if job.kind.format == fmt and job.part == part and precision in (None, job.kind.precision):
                return index
        return len(_ORDER)

    return sorted(jobs, key=rank)


def waits_for(job: ExportJob, jobs: Sequence[ExportJob]) -> ExportJob | None:
    """The job that must finish before ``job`` starts: an INT8 ONNX file quantises the float32 one.

    A companion does not wait for its full file (the pt2 pair would then compile one after the
    other); it is dropped if that file has already failed, and unused if it fails later.
    """
    if job.part == "full" and job.kind == INT8_ONNX:
        return next((other for other in jobs if other.part == "full" and other.kind == FLOAT_ONNX), None)
    return None


def can_overlap(jobs: Sequence[ExportJob]) -> bool:
    """Whether at least two of ``jobs`` can run at the same time (else workers only cost time)."""
    return sum(waits_for(job, jobs) is None for job in jobs) >= 2


def export_concurrently(
    checkpoint: Path, jobs: Sequence[ExportJob], folder: Path, settings: ExportSettings, workers: int,
    log: Callable[[str], None] = print,
) -> dict[FileKind, str]:
    """Write ``jobs`` with up to ``workers`` processes; each gets an equal share of torch's threads
    (an AOTInductor compile gets all of them: the count shapes its kernels).

    Returns:
        The error of each kind whose export failed (an :class:`SSDDeployError`, e.g. an INT8 file
        that fails its check). Jobs not done because a worker died are left to the caller.
    """
    pending = start_order(jobs)
    workers = min(workers, len(pending))
    parent_threads = torch.get_num_threads()
    threads = max(1, parent_threads // workers)
    log(f"exporting {len(pending)} files, {workers} at a time (one process each, {threads} thread{'s' * (threads > 1)}): "
        + ", ".join(job.path.name for job in pending))
    errors: dict[FileKind, str] = {}
    finished: set[ExportJob] = set()  # done, failed or left to the caller: what waited for it is decided
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools and locks
    try:
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            running: dict[Future, ExportJob] = {}
            while pending or running:
                for job in list(pending):
                    before = waits_for(job, jobs)
                    if job.part == "network" and job.kind in errors:
                        pending.remove(job)  # its full file failed: no companion, as in one process
                        finished.add(job)
                    elif len(running) < workers and (before is None or before in finished):
                        pending.remove(job)
                        # Inductor sizes its kernels' loops by the compiling process's threads: a
                        # package compiles with this process's count, whatever the share.
                        job_threads = parent_threads if job.kind.format == "pt2" else threads
                        running[pool.submit(_run_job, checkpoint, job, folder, settings, job_threads)] = job
                if not running:  # cannot happen (what a job waits for starts before it); the caller exports the rest
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    finished.add(running.pop(future))
                    result = future.result()
                    for message in result.messages:
                        log(message)
                    what = f"{result.job.kind.format} {result.job.kind.precision}" + (" (network-only companion)" if result.job.part == "network" else "")
                    if result.unexpected is not None:
                        log(f"{checkpoint.name}: exporting {what} in a worker process failed unexpectedly ({result.unexpected}); "
                            "trying again in this process")
                    elif result.error is None:
                        log(f"exported {result.job.path} in {result.seconds:.1f} s")
                    else:
                        if result.job.part == "full" or result.job.kind not in errors:  # the full file's error wins
                            errors[result.job.kind] = result.error
                        log(f"{checkpoint.name}: exporting {what} failed: {result.error}")
    except BrokenProcessPool as error:
        log(f"an export worker process died ({error}); exporting the remaining files one at a time")
    return errors


def _run_job(checkpoint: Path, job: ExportJob, folder: Path, settings: ExportSettings, threads: int) -> JobResult:
    """In a worker: write one file; an :class:`SSDDeployError` is returned, not raised."""
    torch.set_num_threads(threads)
    messages: list[str] = []
    start = time.perf_counter()
    try:
        if job.part == "full":
            export_full(checkpoint, job.kind, job.path, folder, settings, messages.append)
        else:
            model, names, _ = load_checkpoint(checkpoint)
            export_network_only(model, names, job.kind, job.path, settings)
    except SSDDeployError as failure:
        return JobResult(job, time.perf_counter() - start, str(failure), tuple(messages))
    except Exception as failure:  # e.g. a compiler error: its class may not unpickle in the parent
        first = (str(failure).strip().splitlines() or [""])[0][:200]
        return JobResult(job, time.perf_counter() - start, None, tuple(messages), unexpected=f"{type(failure).__name__}: {first}")
    return JobResult(job, time.perf_counter() - start, None, tuple(messages))

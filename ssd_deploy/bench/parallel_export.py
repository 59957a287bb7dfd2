"""Export a benchmark's cache files several at a time, each in its own worker process.

Compiling an AOTInductor package and exporting ONNX with the dynamo exporter are mostly
single-threaded (Python tracing, then one compiler process per source file), so on a small CPU
two at a time take about half the wall time. Measured on the 2-core CI machine for the demo's
model, compiler caches empty: AOTInductor (full and network-only) and ONNX FP32 took 57 s with two
workers against 99 s one after another.

Only the slow files go to workers: full files and the TorchScript/pt2 network-only companions.
Cutting an ONNX companion out of its full file stays in the caller (it is quick), as does
anything a worker could not write: :func:`~ssd_deploy.bench.network_export.export_files` exports
what is still missing afterwards, one at a time.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..errors import SSDDeployError
from .variants import ExportSettings, FileKind

# Rough relative cost of a file per format (compiling an AOTInductor package takes ~4x an ONNX
# export), to start the longest chains first.
_COST = {"pt2": 4.0, "onnx": 1.0, "torchscript": 0.1}


@dataclass(frozen=True)
class ExportJob:
    """One file to write: ``part`` is ``full`` (what ssd-export writes) or ``network`` (the companion)."""

    kind: FileKind
    part: str
    path: Path


@dataclass(frozen=True)
class JobResult:
    job: ExportJob
    seconds: float
    error: str | None
    messages: tuple[str, ...]


def plan_chains(missing: Sequence[ExportJob]) -> list[list[ExportJob]]:
    """Group jobs into chains, each run in order by one worker, in the order to start them.

    Every job is its own chain, except that an INT8 ONNX file follows the float32 ONNX file in the
    same chain, so it quantises that file instead of exporting the model a second time. Full files
    start first, longest first; companions follow, because a companion compiles faster once its
    full file has warmed the compiler's caches (measured for pt2: 34 s after, 62 s alongside).
    """
    def full(kind: FileKind) -> ExportJob | None:
        return next((job for job in missing if job.part == "full" and job.kind == kind), None)

    onnx_chain = [job for job in (full(FileKind("onnx", "fp32")), full(FileKind("onnx", "int8"))) if job is not None]
    chains = [[job] for job in missing if job not in onnx_chain] + ([onnx_chain] if onnx_chain else [])
    return sorted(chains, key=lambda chain: (chain[0].part != "full", -sum(_COST.get(j.kind.format or "", 1.0) for j in chain)))


def export_concurrently(
    checkpoint: Path, jobs: Sequence[ExportJob], folder: Path, settings: ExportSettings, workers: int,
    log: Callable[[str], None] = print,
) -> dict[FileKind, str]:
    """Write ``jobs`` with up to ``workers`` processes; each gets an equal share of torch's threads.

    Returns:
        The error of each kind whose export failed (an :class:`SSDDeployError`, e.g. an INT8 file
        that fails its check). Jobs not done because a worker died are left to the caller.
    """
    chains = plan_chains(jobs)
    workers = min(workers, len(chains))
    threads = max(1, torch.get_num_threads() // workers)
    log(f"exporting {len(jobs)} files, {workers} at a time (one process each, {threads} thread{'s' * (threads > 1)}): "
        + ", ".join(job.path.name for chain in chains for job in chain))
    errors: dict[FileKind, str] = {}
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools and locks
    try:
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(_run_chain, checkpoint, chain, folder, settings, threads) for chain in chains]
            for future in as_completed(futures):
                for result in future.result():
                    for message in result.messages:
                        log(message)
                    if result.error is None:
                        log(f"exported {result.job.path} in {result.seconds:.1f} s")
                    else:
                        errors[result.job.kind] = result.error
                        log(f"{checkpoint.name}: exporting {result.job.kind.format} {result.job.kind.precision} failed: {result.error}")
    except BrokenProcessPool as error:
        log(f"an export worker process died ({error}); exporting the remaining files one at a time")
    return errors


def _run_chain(checkpoint: Path, chain: Sequence[ExportJob], folder: Path, settings: ExportSettings, threads: int) -> list[JobResult]:
    """In a worker: write the chain's files in order; an :class:`SSDDeployError` is returned, not raised."""
    from ..checkpoint import load_checkpoint
    from .network_export import _export_full, export_network_only

    torch.set_num_threads(threads)
    results = []
    for job in chain:
        messages: list[str] = []
        start = time.perf_counter()
        try:
            if job.part == "full":
                _export_full(checkpoint, job.kind, job.path, folder, settings, messages.append)
            else:
                model, names, _ = load_checkpoint(checkpoint)
                export_network_only(model, names, job.kind, job.path, settings)
            error = None
        except SSDDeployError as failure:
            error = str(failure)
        results.append(JobResult(job, time.perf_counter() - start, error, tuple(messages)))
    return results

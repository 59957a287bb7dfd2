"""Ready files from a checkpoint: each kind's full file and network-only companion, from the cache
or exported now (missing ones several at a time, see :mod:`.pool`)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from ..checkpoint import load_checkpoint
from ..errors import SSDDeployError
from .companion import export_network_only
from .full import export_full
from .kinds import ExportSettings, FileKind, cache_folder, exported_kinds, file_names
from .onnx_cut import extract_network
from .pool import ExportJob, can_overlap, export_concurrently, usable_cores

Log = Callable[[str], None]


def ready_files(
    checkpoint: Path, kinds: Iterable[FileKind], settings: ExportSettings, log: Log = print
) -> tuple[dict[FileKind, tuple[Path, Path]], dict[FileKind, str]]:
    """The files of ``kinds`` exported from ``checkpoint``, in its cache folder
    (:func:`~.kinds.cache_folder`): found there, or exported now.

    Args:
        kinds: what a plan needs, in any order, repeats and the checkpoint itself (format None) allowed.
        settings: how to export (see :class:`~.kinds.ExportSettings`).
        log: called with one line per file written.

    Returns:
        As :func:`export_files`.
    """
    return export_files(checkpoint, exported_kinds(kinds), cache_folder(settings, checkpoint), settings, log)


def cached_file(checkpoint: Path, kind: FileKind, settings: ExportSettings) -> Path | None:
    """The full file of ``kind`` from ``checkpoint`` when the cache already holds it, else None."""
    path = cache_folder(settings, checkpoint) / file_names(kind, settings)[0]
    return path if path.is_file() else None


def export_files(
    checkpoint: Path, kinds: Sequence[FileKind], folder: Path, settings: ExportSettings, log: Log = print
) -> tuple[dict[FileKind, tuple[Path, Path]], dict[FileKind, str]]:
    """Export (or find in ``folder``) the full file and companion of every kind.

    With ``settings.jobs`` > 1 on the CPU, the missing files are first written that many at a time
    in worker processes (:mod:`~ssd_deploy.artifacts.pool`); what is left is written here.

    Returns:
        The paths (full, companion) of every kind exported, and for each kind that failed
        (e.g. an INT8 file that does not pass its check) the error: one failure does not stop
        the others.
    """
    files: dict[FileKind, tuple[Path, Path]] = {}
    errors: dict[FileKind, str] = {}
    workers = min(settings.jobs, usable_cores(), torch.get_num_threads())  # --threads 1: one at a time
    if workers > 1 and torch.device(settings.device).type == "cpu":  # a GPU export (a CUDA compile) wants the whole GPU
        missing = _missing_jobs(kinds, folder, settings)
        if can_overlap(missing):
            errors.update(export_concurrently(checkpoint, missing, folder, settings, workers, log))
    # The checkpoint's (model, class names): loaded once, when a companion is exported here.
    load = functools.cache(lambda: load_checkpoint(checkpoint)[:2])
    for kind in kinds:
        if kind in errors:
            continue
        full, network = (folder / name for name in file_names(kind, settings))
        try:
            _export_pair(checkpoint, kind, (full, network), settings, log, load)
        except SSDDeployError as error:
            log(f"{checkpoint.name}: exporting {kind.format} {kind.precision} failed: {error}")
            errors[kind] = str(error)
            continue
        files[kind] = (full, network)
    return files, errors


def _export_pair(
    checkpoint: Path, kind: FileKind, paths: tuple[Path, Path], settings: ExportSettings, log: Log, load: Callable[[], Any]
) -> None:
    """Write whichever of the full file and its companion (``paths``) is missing; an ONNX companion
    is cut out of its full file where it can be. ``load()``: the checkpoint's (model, class names)."""
    full, network = paths
    if not full.is_file():
        export_full(checkpoint, kind, full, full.parent, settings, log)
    if not network.is_file() and kind.format == "onnx":
        try:
            log(f"cutting the network-only companion out of {full.name} -> {network}")
            extract_network(full, network)
        except ValueError as error:
            log(f"cannot cut the network out of {full.name} ({error}); exporting it instead")
    if not network.is_file():
        model, class_names = load()
        log(f"exporting the network-only companion -> {network}")
        export_network_only(model, class_names, kind, network, settings)


def _missing_jobs(kinds: Sequence[FileKind], folder: Path, settings: ExportSettings) -> list[ExportJob]:
    """The files of ``kinds`` not in ``folder`` that a worker process can write (not ONNX companions:
    they are cut out of their full file)."""
    jobs = []
    for kind in kinds:
        full, network = (folder / name for name in file_names(kind, settings))
        if not full.is_file():
            jobs.append(ExportJob(kind, "full", full))
        if kind.format != "onnx" and not network.is_file():
            jobs.append(ExportJob(kind, "network", network))
    return jobs

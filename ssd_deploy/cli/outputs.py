"""Where console scripts write: an output folder checked up front, and result names that never
collide with each other or with the inputs of the same call."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import SSDDeployError


def check_output_folder(path: Path, flag: str = "--out") -> Path:
    """``path``, checked before any work is done: it must not be an existing file.

    Raises:
        SSDDeployError: ``path`` is an existing file (it is left as it is).
    """
    if path.exists() and not path.is_dir():
        raise SSDDeployError(f"{path}: {flag} names an existing file. Note: {flag} is the folder the results are written to")
    return path


def output_folder(path: Path, flag: str = "--out") -> Path:
    """``path`` as an existing folder, created if missing (when the results are about to be written).

    Raises:
        SSDDeployError: ``path`` is an existing file, or the folder cannot be created.
    """
    check_output_folder(path, flag)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SSDDeployError(f"{path}: cannot create the {flag} folder ({error.strerror or error})") from None
    return path


def result_names(inputs: Sequence[Path], out: Path, suffixes: Sequence[str] = (".jpg", ".json")) -> list[str]:
    """A name per input for its results ``out/<name><suffix>``, distinct for every input.

    The name is the input's stem (``pic.png`` -> ``pic``); inputs sharing a stem (``pic.tiff``
    and ``pic.webp``) are named by their whole file name (``pic.tiff``, ``pic.webp``) where that
    is unique; a name already taken (the same file name in two folders: ``pic``, ``pic-2``), or
    whose results would replace one of ``inputs`` (``--out`` being the images' own folder), gets
    ``-2``, ``-3``, ... Names are compared case-insensitively, as macOS and Windows file systems do.

    Args:
        inputs: the input files, each once, in the order they are processed.
        out: the output folder.
        suffixes: the files written per input.

    Returns:
        One name (without suffix) per input, in order.
    """
    stems = [path.stem.casefold() for path in inputs]
    file_names = [path.name.casefold() for path in inputs]
    protected = {_key(path) for path in inputs}
    taken: set[str] = set()
    names = []
    for path, stem, file_name in zip(inputs, stems, file_names):
        unique_stem, unique_name = stems.count(stem) == 1, file_names.count(file_name) == 1
        base = path.name if not unique_stem and unique_name else path.stem
        name, number = base, 1
        while name.casefold() in taken or any(_key(out / f"{name}{suffix}") in protected for suffix in suffixes):
            number += 1
            name = f"{base}-{number}"
        taken.add(name.casefold())
        names.append(name)
    return names


def _key(path: Path) -> str:
    """A file's identity for comparisons: its absolute path, case-folded."""
    return str(path.absolute()).casefold()

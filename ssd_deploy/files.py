"""Small file helpers shared by every writer and cache: atomic writes and file digests.

Nothing here imports the rest of the package, so any module may use it without an import cycle.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20  # bytes read at a time when hashing: a large model file is never held in memory


def atomic_write(path: str | Path, write: Any) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``.

    The temporary file lives in the destination folder so the rename is atomic; on any failure it
    is removed and ``path`` is left as it was. It keeps ``path``'s suffix (some writers, such as
    AOTInductor's packager, insist on it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_sha256(path: str | Path, prefix: bytes = b"") -> str:
    """Hex SHA-256 (64 lowercase hex digits) of ``prefix`` and then a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256(prefix)
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()

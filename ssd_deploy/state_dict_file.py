"""Read a PyTorch file as plain data (``weights_only``: pickled code is never executed).

The lowest layer of checkpoint loading: the models package reads backbone weights with it, and
:mod:`ssd_deploy.checkpoint` builds its format on it, so neither imports the other.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError


def load_state_dict_file(path: str | Path) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with one-line errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file" if not path.exists() else "not a file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch words it "Unsupported global: ..." or "Trying to load unsupported GLOBAL ..." by version.
        code = [line.strip() for line in str(error).splitlines() if "unsupported global" in line.lower()]
        if code:
            what = code[0].split("WeightsUnpickler error:")[-1].strip()[:200]
            raise CheckpointError(path, f"refused to load: it holds objects that are not plain data, e.g. code ({what})") from None
        raise CheckpointError(path, f"not a readable PyTorch checkpoint (corrupt or truncated?): {first_line(error)[:120]}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as error:
        first = first_line(error).split(". ")[0] or type(error).__name__
        raise CheckpointError(path, f"not a readable PyTorch checkpoint (corrupt or truncated?): {first}") from None
    if not isinstance(data, dict):
        raise CheckpointError(path, f"expected a dict, found {type(data).__name__}")
    return data


def first_line(error: BaseException, lines: int = 1) -> str:
    """The first ``lines`` lines of an exception's message, joined, at most 300 characters."""
    text = " ".join(str(error).strip().splitlines()[:lines])
    return text[:300] + ("..." if len(text) > 300 else "")

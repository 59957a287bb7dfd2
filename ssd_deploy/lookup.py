"""Looking a name up in a table of named things (formats, runtimes), suggesting close names on a typo."""

from __future__ import annotations

import difflib
from typing import Mapping, TypeVar

from .errors import SSDDeployError

T = TypeVar("T")


def lookup(table: Mapping[str, T], name: str, kind: str) -> T:
    """``table[name]``, or an SSDDeployError listing the known names and the closest ones.

    Args:
        kind: what the names are, for the message (``export format``, ``runtime``).
    """
    try:
        return table[name]
    except KeyError:
        close = difflib.get_close_matches(name, table, n=2)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise SSDDeployError(f"unknown {kind} {name!r}; known: {', '.join(table)}.{hint}") from None

"""Label maps: class names with the background at index 0, so label i <-> class_names[i]."""

from __future__ import annotations

from typing import Iterable, Sequence

from ..checkpoint import BACKGROUND_NAME
from ..errors import ConfigError


def with_background(names: Iterable[str]) -> list[str]:
    """``names`` with ``"__background__"`` put first (left as is if it already is first).

    The result has C entries, C including the background; object labels are 1 .. C-1.

    Raises:
        ConfigError: a name is repeated, empty, or the background appears other than first.
    """
    names = [str(name) for name in names]
    if names[:1] != [BACKGROUND_NAME]:
        names = [BACKGROUND_NAME] + names
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"class names: {', '.join(map(repr, repeated))} repeated. Note: each class needs one name")
    if "" in names:
        raise ConfigError("class names: an empty name. Note: each class needs a name")
    if len(names) < 2:
        raise ConfigError("class names: no object classes. Note: expected at least one besides the background")
    return names


def label_index(class_names: Sequence[str]) -> dict[str, int]:
    """``{name: label}`` for the object classes of a label map (background excluded)."""
    return {name: label for label, name in enumerate(class_names) if label > 0}

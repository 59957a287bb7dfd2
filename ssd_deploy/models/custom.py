"""Custom detectors: a prior layout written as data (YAML or JSON) on any backbone.

SSD lessons and tutorials design priors by hand, e.g. the fastai lesson's 4x4 / 2x2 / 1x1 grids
with 9 priors per cell (3 zooms x 3 ratios) on ResNet34. A prior file says which backbone to use,
the input size and the layout; the detector built from it exports and runs like the presets::

    backbone: resnet34                  # a preset, or any torchvision classification network
    # taps: [layer2, layer3, layer4]    # optional, classification networks only: the graph
    #                                   # nodes giving the maps (default: stride 8/16/32 outputs)
    input_size: [224, 224]              # (height, width)
    feature_maps: [[4, 4], [2, 2], [1, 1]]
    # one of three ways to give the prior sizes:
    zooms: [0.7, 1.0, 1.3]              # fastai: (w, h) = zoom * ratio / grid size
    ratios: [[1.0, 1.0], [1.0, 0.5], [0.5, 1.0]]   # (w, h) factors
    # scales: [0.2, 0.5, 0.8, 1.0]      # the paper's rule: one per map plus one
    # aspect_ratios: [[2.0], [2.0], [2.0]]
    # explicit_sizes: [[[0.25, 0.25]], [[0.5, 0.5]], [[0.9, 0.9]]]   # per map, (w, h) pairs
    # feature_indices: [2, 3, 4]        # optional: which backbone maps (default: matched by size)
    # steps: [56, 112, 224]             # optional: prior centre spacing in pixels

The maps must be among the backbone's at that input size; a mismatch lists the backbone's maps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..priors import PriorConfig, Size

_KNOWN_KEYS = {
    "backbone", "input_size", "feature_maps", "zooms", "ratios", "scales", "aspect_ratios",
    "explicit_sizes", "feature_indices", "steps", "clip", "taps",
}


@dataclass(frozen=True)
class CustomLayout:
    """What a prior file describes: backbone, input (height, width), priors, map indices and,
    for a torchvision classification network, the graph nodes tapped for its maps."""

    backbone: str
    input_size: Size
    priors: PriorConfig
    feature_indices: tuple[int, ...] | None = None
    taps: tuple[str, ...] | None = None


def zoom_ratio_sizes(
    feature_maps: list[Size], zooms: list[float], ratios: list[tuple[float, float]]
) -> tuple[tuple[tuple[float, float], ...], ...]:
    """The fastai lesson's prior sizes: per map, ``(zoom * rw / grid_w, zoom * rh / grid_h)`` for
    every zoom and (w, h) ratio pair, zoom-major (as ``anchor_scales`` in the lesson)."""
    return tuple(
        tuple((zoom * rw / width, zoom * rh / height) for zoom in zooms for rw, rh in ratios)
        for height, width in feature_maps
    )


def read_structured_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or JSON file holding a mapping; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    text = path.read_text()
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as error:  # yaml.YAMLError / json.JSONDecodeError: report either one line
        raise ConfigError(f"{path}: not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'}: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, found {type(data).__name__}")
    return data


def load_prior_file(path: str | Path) -> CustomLayout:
    """Read a prior file (module docstring) into a :class:`CustomLayout`."""
    data = read_structured_file(path)
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {unknown}. Note: known: {sorted(_KNOWN_KEYS)}")
    for key in ("backbone", "input_size", "feature_maps"):
        if key not in data:
            raise ConfigError(f"{path}: missing {key!r}")
    ways = [key for key in ("zooms", "scales", "explicit_sizes") if key in data]
    if len(ways) != 1:
        raise ConfigError(f"{path}: give exactly one of zooms (+ ratios), scales (+ aspect_ratios) or explicit_sizes; found {ways or 'none'}")
    try:
        maps = [(int(h), int(w)) for h, w in (m if isinstance(m, (list, tuple)) else (m, m) for m in data["feature_maps"])]
        height, width = (int(v) for v in data["input_size"])
        prior_data: dict[str, Any] = {"feature_maps": maps, "steps": data.get("steps"), "clip": data.get("clip", True)}
        if "zooms" in data:
            ratios = [(float(w), float(h)) for w, h in data.get("ratios", [[1.0, 1.0]])]
            prior_data["explicit_sizes"] = zoom_ratio_sizes(maps, [float(z) for z in data["zooms"]], ratios)
        elif "scales" in data:
            prior_data["scales"] = data["scales"]
            prior_data["aspect_ratios"] = data.get("aspect_ratios", [[] for _ in maps])
        else:
            prior_data["explicit_sizes"] = data["explicit_sizes"]
        priors = PriorConfig.from_dict(prior_data)
        indices = data.get("feature_indices")
        indices = None if indices is None else tuple(int(i) for i in indices)
        taps = data.get("taps")
        if taps is not None and (not isinstance(taps, list) or not all(isinstance(t, str) for t in taps)):
            raise ConfigError(f"taps: expected a list of graph node names, found {taps!r}")
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    except (TypeError, ValueError, KeyError) as error:
        raise ConfigError(f"{path}: malformed prior layout ({error})") from None
    return CustomLayout(str(data["backbone"]), (height, width), priors, indices, None if taps is None else tuple(taps))


def custom_config(layout: CustomLayout, num_classes: int, score_function: str = "softmax") -> Any:
    """The :class:`~ssd_deploy.models.ModelConfig` of a detector built from ``layout``."""
    from .registry import make_config

    return make_config(
        layout.backbone,
        num_classes=num_classes,
        input_size=layout.input_size,
        priors=layout.priors,
        feature_indices=layout.feature_indices,
        score_function=score_function,
        taps=layout.taps,
    )

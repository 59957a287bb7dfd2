"""Prior (default box) generation from a small, serialisable configuration.

SSD places a fixed set of priors on every cell of every feature map (SSD paper, section 2.2,
"Choosing scales and aspect ratios for default boxes"). For feature map ``k`` with scale ``s_k``:

* one prior of aspect ratio 1 and size ``s_k``;
* one "extra" prior of aspect ratio 1 and size ``sqrt(s_k * s_{k+1})``;
* for each ratio ``r`` in the map's ``aspect_ratios``: ``(s_k*sqrt(r), s_k/sqrt(r))`` and its
  transpose (so ``r`` and ``1/r``).

The order of priors is: feature map, then row, then column, then the width/height pairs above in
that order. This is the order of the head outputs and of torchvision's ``DefaultBoxGenerator``.

Alternatively a configuration can list the (w, h) pairs of every map explicitly
(``explicit_sizes``), for hand-designed detectors such as the fastai lesson's 3 zooms x 3 ratios.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
from torch import Tensor

from .errors import ConfigError

Size = tuple[int, int]


@dataclass(frozen=True)
class PriorConfig:
    """How priors are laid out. Sizes are fractions of the input image.

    Attributes:
        feature_maps: (height, width) of each feature map the head predicts on.
        scales: one scale per feature map plus one more, used for the last map's extra prior
            (``len(feature_maps) + 1`` values). Ignored when ``explicit_sizes`` is given.
        aspect_ratios: per feature map, the ratios ``r > 1`` that add an ``r`` and a ``1/r`` prior.
        steps: optional stride of each feature map in input pixels. When given, prior centres are
            ``(j + 0.5) * step / image_size`` (torchvision's and NVIDIA's tiling); otherwise
            ``(j + 0.5) / map_size`` (the paper's).
        clip: clamp prior widths/heights to [0, 1] (as the paper and torchvision do).
        explicit_sizes: optional per-map list of (w, h) pairs that replaces scales/aspect ratios.
    """

    feature_maps: tuple[Size, ...]
    scales: tuple[float, ...] = ()
    aspect_ratios: tuple[tuple[float, ...], ...] = ()
    steps: tuple[float, ...] | None = None
    clip: bool = True
    explicit_sizes: tuple[tuple[tuple[float, float], ...], ...] | None = None

    def __post_init__(self) -> None:
        num_maps = len(self.feature_maps)
        if num_maps == 0:
            raise ConfigError("PriorConfig: feature_maps is empty. Note: give one (h, w) per map.")
        if self.explicit_sizes is not None:
            if len(self.explicit_sizes) != num_maps:
                raise ConfigError(
                    f"PriorConfig: {len(self.explicit_sizes)} explicit size lists for {num_maps} "
                    "feature maps. Note: give one list of (w, h) pairs per feature map."
                )
        else:
            if len(self.scales) != num_maps + 1:
                raise ConfigError(
                    f"PriorConfig: {len(self.scales)} scales for {num_maps} feature maps. Note: give "
                    "one scale per map plus one for the last map's extra prior."
                )
            if len(self.aspect_ratios) != num_maps:
                raise ConfigError(
                    f"PriorConfig: {len(self.aspect_ratios)} aspect-ratio lists for {num_maps} feature maps."
                )
        if self.steps is not None and len(self.steps) != num_maps:
            raise ConfigError(f"PriorConfig: {len(self.steps)} steps for {num_maps} feature maps.")

    def size_pairs(self) -> list[list[tuple[float, float]]]:
        """The (w, h) pairs placed on each cell of each feature map, in output order."""
        if self.explicit_sizes is not None:
            return [[(float(w), float(h)) for w, h in sizes] for sizes in self.explicit_sizes]
        pairs = []
        for k in range(len(self.feature_maps)):
            s_k = self.scales[k]
            s_extra = math.sqrt(self.scales[k] * self.scales[k + 1])
            sizes = [(s_k, s_k), (s_extra, s_extra)]
            for ratio in self.aspect_ratios[k]:
                root = math.sqrt(ratio)
                sizes += [(s_k * root, s_k / root), (s_k / root, s_k * root)]
            pairs.append(sizes)
        return pairs

    def priors_per_location(self) -> list[int]:
        """Number of priors on each cell, per feature map."""
        return [len(sizes) for sizes in self.size_pairs()]

    def num_priors(self) -> int:
        """Total number of priors P."""
        return sum(h * w * n for (h, w), n in zip(self.feature_maps, self.priors_per_location()))

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (tuples of numbers; JSON-serialisable) for checkpoints and metadata."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PriorConfig:
        """Inverse of :meth:`to_dict`; also accepts JSON-style nested lists."""
        explicit = data.get("explicit_sizes")
        steps = data.get("steps")
        return cls(
            feature_maps=tuple(_as_size(s) for s in data["feature_maps"]),
            scales=tuple(float(s) for s in data.get("scales", ())),
            aspect_ratios=tuple(tuple(float(r) for r in rs) for rs in data.get("aspect_ratios", ())),
            steps=None if steps is None else tuple(float(s) for s in steps),
            clip=bool(data.get("clip", True)),
            explicit_sizes=None
            if explicit is None
            else tuple(tuple((float(w), float(h)) for w, h in sizes) for sizes in explicit),
        )


def _as_size(value: int | Sequence[int]) -> Size:
    if isinstance(value, int):
        return (value, value)
    height, width = value
    return (int(height), int(width))


def linear_scales(num_maps: int, min_scale: float, max_scale: float, last: float = 1.0) -> tuple[float, ...]:
    """Scales spaced linearly from ``min_scale`` to ``max_scale`` plus ``last`` (paper eq. 4).

    This is torchvision's ``DefaultBoxGenerator`` rule when no explicit scales are given.
    """
    if num_maps == 1:
        return (min_scale, max_scale)
    step = (max_scale - min_scale) / (num_maps - 1.0)
    return tuple(min_scale + step * k for k in range(num_maps)) + (last,)


def generate_priors(config: PriorConfig, image_size: Size, dtype: torch.dtype = torch.float32) -> Tensor:
    """Generate the priors of ``config`` for an input of ``image_size`` = (height, width).

    Returns:
        Tensor[P, 4] of (cx, cy, w, h), fractions of the image size.
    """
    image_h, image_w = image_size
    priors = []
    for k, ((map_h, map_w), sizes) in enumerate(zip(config.feature_maps, config.size_pairs())):
        if config.steps is not None:
            cells_x, cells_y = image_w / config.steps[k], image_h / config.steps[k]
        else:
            cells_x, cells_y = map_w, map_h
        centers_x = ((torch.arange(map_w, dtype=torch.float64) + 0.5) / cells_x).to(dtype)
        centers_y = ((torch.arange(map_h, dtype=torch.float64) + 0.5) / cells_y).to(dtype)
        grid_y, grid_x = torch.meshgrid(centers_y, centers_x, indexing="ij")
        # [H*W, 1, 2] centres x [1, A, 2] sizes -> [H*W, A, 4], location-major like the head outputs.
        centers = torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), dim=-1)[:, None, :]
        wh = torch.tensor(sizes, dtype=dtype)
        if config.clip:
            wh = wh.clamp(min=0.0, max=1.0)
        centers, wh = torch.broadcast_tensors(centers, wh[None, :, :])
        priors.append(torch.cat((centers, wh), dim=-1).reshape(-1, 4))
    return torch.cat(priors, dim=0)


def paper_ssd300_priors() -> PriorConfig:
    """The SSD paper's SSD300 priors: 8732 boxes, scales 0.1 (conv4_3) and 0.2 ... 0.9.

    As in the paper's released Caffe model and sgrvinod's tutorial, conv4_3 uses scale 0.1 and the
    last map's extra prior uses scale 1.0 (sqrt(0.9 * 1.0)).
    """
    return PriorConfig(
        feature_maps=((38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)),
        scales=(0.1, 0.2, 0.375, 0.55, 0.725, 0.9, 1.0),
        aspect_ratios=((2.0,), (2.0, 3.0), (2.0, 3.0), (2.0, 3.0), (2.0,), (2.0,)),
    )


def torchvision_ssd300_priors(feature_maps: Sequence[Size] | None = None) -> PriorConfig:
    """torchvision's ``ssd300_vgg16`` priors (also NVIDIA's SSD300 v1.1 ``dboxes300_coco``)."""
    return PriorConfig(
        feature_maps=tuple(feature_maps or ((38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1))),
        scales=(0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05),
        aspect_ratios=((2.0,), (2.0, 3.0), (2.0, 3.0), (2.0, 3.0), (2.0,), (2.0,)),
        steps=(8.0, 16.0, 32.0, 64.0, 100.0, 300.0),
    )


def torchvision_ssdlite_priors(feature_maps: Sequence[Size]) -> PriorConfig:
    """torchvision's ``ssdlite320_mobilenet_v3_large`` priors: ratios 2 and 3, scales 0.2 ... 0.95."""
    feature_maps = tuple(feature_maps)
    return PriorConfig(
        feature_maps=feature_maps,
        scales=linear_scales(len(feature_maps), 0.2, 0.95),
        aspect_ratios=tuple((2.0, 3.0) for _ in feature_maps),
    )

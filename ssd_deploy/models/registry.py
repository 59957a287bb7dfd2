"""Architecture presets and the one public constructor, :func:`create_model`.

Each preset says which backbone and head to build, its default input size, normalisation and
prior layouts. Prior layouts are named "styles": ``paper`` (the SSD paper's SSD300 table) and
``torchvision`` (torchvision's / NVIDIA's layout for that architecture).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError
from ..priors import PriorConfig, Size, paper_ssd300_priors, torchvision_ssd300_priors, torchvision_ssdlite_priors
from .config import IMAGENET_MEAN, IMAGENET_STD, ModelConfig
from .heads import DetectionHead
from .mobilenet import SSDLITE_NORM, mobilenet_v2_backbone, mobilenet_v3_large_backbone
from .resnet import ResNet50Backbone
from .ssd import SSD
from .vgg import VGG16Backbone

PriorStyle = Callable[[tuple[Size, ...]], PriorConfig]

# torchvision's SSD300-VGG16 normalisation: caffe-style inputs in 0..255 minus the mean.
TORCHVISION_VGG_MEAN = (0.48235, 0.45882, 0.40784)
TORCHVISION_VGG_STD = (1.0 / 255.0, 1.0 / 255.0, 1.0 / 255.0)
SSDLITE_MEAN = (0.5, 0.5, 0.5)
SSDLITE_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class ArchSpec:
    """A registered architecture."""

    name: str
    make_backbone: Callable[[ModelConfig], nn.Module]
    head: str  # "ssd" (3x3 conv) or "ssdlite" (depthwise separable)
    input_size: Size
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    prior_styles: dict[str, PriorStyle]
    default_prior_style: str
    description: str


_REGISTRY: dict[str, ArchSpec] = {}


def register(spec: ArchSpec) -> ArchSpec:
    """Add an architecture; a duplicate name is an error."""
    if spec.name in _REGISTRY:
        raise ConfigError(f"architecture registry: {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_architectures() -> list[str]:
    """Registered architecture names."""
    return sorted(_REGISTRY)


def get_arch(name: str) -> ArchSpec:
    """The spec of ``name``, or a ConfigError suggesting the closest names."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"architecture {name!r} is unknown.{hint} Note: known: {', '.join(list_architectures())}")
    return _REGISTRY[name]


def _paper_style(feature_maps: tuple[Size, ...]) -> PriorConfig:
    return dataclasses.replace(paper_ssd300_priors(), feature_maps=feature_maps)


register(
    ArchSpec(
        name="ssd300_vgg16",
        make_backbone=lambda config: VGG16Backbone(),
        head="ssd",
        input_size=(300, 300),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        prior_styles={"paper": _paper_style, "torchvision": torchvision_ssd300_priors},
        default_prior_style="paper",
        description="SSD300 with VGG16 (SSD paper; torchvision ssd300_vgg16 layout)",
    )
)
register(
    ArchSpec(
        name="ssd300_resnet50",
        make_backbone=lambda config: ResNet50Backbone(),
        head="ssd",
        input_size=(300, 300),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        prior_styles={"paper": _paper_style, "torchvision": torchvision_ssd300_priors},
        default_prior_style="torchvision",
        description="SSD300 with ResNet-50 (NVIDIA SSD300 v1.1)",
    )
)
register(
    ArchSpec(
        name="ssdlite_mobilenet_v3",
        make_backbone=lambda config: mobilenet_v3_large_backbone(reduced_tail=config.reduced_tail),
        head="ssdlite",
        input_size=(320, 320),
        mean=SSDLITE_MEAN,
        std=SSDLITE_STD,
        prior_styles={"torchvision": torchvision_ssdlite_priors, "paper": _paper_style},
        default_prior_style="torchvision",
        description="SSDLite320 with MobileNetV3-Large (torchvision ssdlite320_mobilenet_v3_large)",
    )
)
register(
    ArchSpec(
        name="ssdlite_mobilenet_v2",
        make_backbone=lambda config: mobilenet_v2_backbone(),
        head="ssdlite",
        input_size=(300, 300),
        mean=SSDLITE_MEAN,
        std=SSDLITE_STD,
        prior_styles={"torchvision": torchvision_ssdlite_priors, "paper": _paper_style},
        default_prior_style="torchvision",
        description="SSDLite300 with MobileNetV2 (qfgaohao/pytorch-ssd, uvipen/SSD-pytorch)",
    )
)


def feature_map_sizes(arch: str, input_size: Size, reduced_tail: bool = False) -> tuple[Size, ...]:
    """(height, width) of each backbone feature map for ``input_size``, computed on the meta
    device (shapes only, no arithmetic)."""
    spec = get_arch(arch)
    probe = ModelConfig(arch, 2, tuple(input_size), paper_ssd300_priors(), reduced_tail=reduced_tail)
    with torch.device("meta"):
        backbone = spec.make_backbone(probe).eval()
        features = backbone(torch.empty(1, 3, *input_size))
    sizes = tuple((int(f.shape[-2]), int(f.shape[-1])) for f in features)
    if min(min(s) for s in sizes) < 1:
        raise ConfigError(f"{arch}: input size {tuple(input_size)} is too small for this backbone")
    return sizes


def make_config(
    arch: str,
    num_classes: int = 21,
    input_size: Size | None = None,
    priors: str | PriorConfig | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    reduced_tail: bool = False,
) -> ModelConfig:
    """Build a :class:`ModelConfig` from a preset, filling in what is not given.

    Args:
        arch: a registered architecture name.
        num_classes: classes including background (VOC: 21, COCO as torchvision: 91).
        input_size: (height, width); the preset's by default.
        priors: a prior style name of the preset, or a full :class:`PriorConfig`.
        mean, std: RGB normalisation of [0, 1] inputs; the preset's by default.
    """
    spec = get_arch(arch)
    size = tuple(input_size) if input_size is not None else spec.input_size
    try:
        maps = feature_map_sizes(arch, size, reduced_tail)
    except (RuntimeError, ValueError) as error:
        raise ConfigError(f"{arch}: input size {size} is too small for this backbone ({error})") from error
    if isinstance(priors, PriorConfig):
        prior_config = priors
        if prior_config.feature_maps != maps:
            raise ConfigError(
                f"{arch} at {size}: prior feature maps {prior_config.feature_maps} differ from the "
                f"backbone's {maps}."
            )
    else:
        style = priors or spec.default_prior_style
        if style not in spec.prior_styles:
            raise ConfigError(f"{arch}: prior style {style!r} is unknown. Note: known: {sorted(spec.prior_styles)}")
        prior_config = spec.prior_styles[style](maps)
    return ModelConfig(
        arch=arch,
        num_classes=num_classes,
        input_size=size,
        priors=prior_config,
        mean=tuple(mean or spec.mean),
        std=tuple(std or spec.std),
        reduced_tail=reduced_tail,
    )


def build_model(config: ModelConfig) -> SSD:
    """Instantiate the detector described by ``config`` with freshly initialised weights."""
    spec = get_arch(config.arch)
    backbone = spec.make_backbone(config)
    if len(backbone.out_channels) != len(config.priors.feature_maps):
        raise ConfigError(
            f"{config.arch}: the backbone gives {len(backbone.out_channels)} feature maps, the prior "
            f"config has {len(config.priors.feature_maps)}"
        )
    head = DetectionHead(
        backbone.out_channels,
        config.priors.priors_per_location(),
        config.num_classes,
        kind=spec.head,
        norm_layer=SSDLITE_NORM if spec.head == "ssdlite" else None,
    )
    return SSD(config, backbone, head)


def create_model(arch: str, backbone_weights: str | Path | None = None, **overrides) -> SSD:
    """Create a detector from a preset: ``create_model("ssdlite_mobilenet_v3", num_classes=6)``.

    Args:
        arch: a registered architecture name.
        backbone_weights: optional path of a local torchvision ImageNet state dict for the
            backbone (e.g. ``vgg16-397923af.pth``); nothing is ever downloaded.
        **overrides: keyword arguments of :func:`make_config`.
    """
    model = build_model(make_config(arch, **overrides))
    if backbone_weights is not None:
        from ..checkpoint import load_state_dict_file

        model.backbone.load_imagenet_state_dict(load_state_dict_file(backbone_weights))
    return model

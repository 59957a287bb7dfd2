"""Architecture presets and the one public constructor, :func:`create_model`.

Each preset says which backbone and head to build, its default input size, normalisation and
prior layouts. Prior layouts are named "styles": ``paper`` (the SSD paper's SSD300 table) and
``torchvision`` (torchvision's / NVIDIA's layout for that architecture). Any torchvision
classification network is an architecture too, by its name (``resnet34``, ``efficientnet_b0``):
its feature maps are tapped from its graph (:mod:`ssd_deploy.models.tapped`).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..priors import PriorConfig, Size, paper_ssd300_priors, torchvision_ssd300_priors, torchvision_ssdlite_priors
from .config import IMAGENET_MEAN, IMAGENET_STD, ModelConfig
from .heads import DetectionHead
from .mobilenet import SSDLITE_NORM, mobilenet_v2_backbone, mobilenet_v3_large_backbone
from .resnet import ResNet50Backbone
from .ssd import SSD
from .tapped import TappedBackbone, classifier_names, default_taps, head_kind, is_classifier
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
    """The spec of ``name`` (a preset or a torchvision classification network), or a
    ConfigError suggesting the closest names."""
    if name not in _REGISTRY and is_classifier(name):
        return _tapped_spec(name)
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, [*_REGISTRY, *classifier_names()], n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"architecture {name!r} is unknown.{hint} Note: known: {', '.join(list_architectures())}, or any "
            "torchvision classification network (torchvision.models.list_models())"
        )
    return _REGISTRY[name]


def _tapped_spec(name: str) -> ArchSpec:
    """A torchvision classifier as an SSD (mobile networks with SSDLite's head, at 320)."""
    light = head_kind(name) == "ssdlite"
    return ArchSpec(
        name=name,
        make_backbone=lambda config: TappedBackbone(name, config.taps),
        head=head_kind(name),
        input_size=(320, 320) if light else (300, 300),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        prior_styles={"torchvision": torchvision_ssdlite_priors, "paper": _paper_style},
        default_prior_style="torchvision" if light else "paper",
        description=f"torchvision's {name} classifier tapped at strides 8, 16, 32, then extra blocks",
    )


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


def feature_map_sizes(
    arch: str, input_size: Size, reduced_tail: bool = False, partial: bool = False, taps: Sequence[str] | None = None
) -> tuple[Size, ...]:
    """(height, width) of each backbone feature map for ``input_size``, computed on the meta
    device (shapes only, no arithmetic).

    With ``partial``, an input too small for the last extra blocks gives the maps before them
    (a custom prior layout may not need the rest) instead of an error.
    """
    spec = get_arch(arch)
    probe = ModelConfig(arch, 2, tuple(input_size), paper_ssd300_priors(), reduced_tail=reduced_tail, taps=_taps(arch, taps))
    with torch.device("meta"):
        backbone = spec.make_backbone(probe).eval()
        while True:
            try:
                features = backbone(torch.empty(1, 3, *input_size))
                break
            except RuntimeError:
                if not partial or len(backbone.out_channels) <= 1:
                    raise
                _trim_unused_extras(backbone, len(backbone.out_channels) - 2)
    sizes = tuple((int(f.shape[-2]), int(f.shape[-1])) for f in features)
    if min(min(s) for s in sizes) < 1:
        raise ConfigError(f"{arch}: input size {tuple(input_size)} is too small for this backbone")
    return sizes


def _taps(arch: str, taps: Sequence[str] | None) -> tuple[str, ...] | None:
    """The taps of a tapped classifier (its default ones when not given); None for presets."""
    if arch in _REGISTRY:
        if taps is not None:
            raise ConfigError(f"{arch}: taps are for torchvision classification networks, not the presets")
        return None
    return tuple(taps) if taps is not None else default_taps(arch)


# Ten parameters: the public preset constructor; create_model(arch, **overrides) passes its
# keywords here, so users' calls name them one by one and the signature stays.
def make_config(
    arch: str,
    num_classes: int = 21,
    input_size: Size | None = None,
    priors: str | PriorConfig | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    reduced_tail: bool = False,
    feature_indices: Sequence[int] | None = None,
    score_function: str = "softmax",
    taps: Sequence[str] | None = None,
) -> ModelConfig:
    """Build a :class:`ModelConfig` from a preset, filling in what is not given.

    Args:
        arch: a registered architecture name.
        num_classes: classes including background (VOC: 21, COCO as torchvision: 91).
        input_size: (height, width); the preset's by default.
        priors: a prior style name of the preset, or a full :class:`PriorConfig`.
        mean, std: RGB normalisation of [0, 1] inputs; the preset's by default.
        feature_indices: with a custom ``PriorConfig``, which backbone maps it uses; by default
            the first maps, in order, whose sizes equal the prior config's ``feature_maps``.
        score_function: "softmax" (the paper) or "sigmoid" (focal-loss training).
        taps: for a torchvision classification network, the graph nodes giving its feature maps
            (default: its stage outputs at strides 8, 16, 32); recorded in the config.
    """
    spec = get_arch(arch)
    size = tuple(input_size) if input_size is not None else spec.input_size
    taps = _taps(arch, taps)
    try:
        maps = feature_map_sizes(arch, size, reduced_tail, partial=isinstance(priors, PriorConfig), taps=taps)
    except (RuntimeError, ValueError) as error:
        raise ConfigError(f"{arch}: input size {size} is too small for this backbone ({error})") from error
    indices: tuple[int, ...] | None = None
    if isinstance(priors, PriorConfig):
        prior_config = priors
        indices = select_feature_maps(arch, size, maps, prior_config.feature_maps, feature_indices)
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
        feature_indices=indices,
        score_function=score_function,
        taps=taps,
    )


def select_feature_maps(
    arch: str, size: Size, backbone_maps: Sequence[Size], wanted: Sequence[Size], indices: Sequence[int] | None = None
) -> tuple[int, ...] | None:
    """Indices of the backbone maps a prior layout predicts on (None when it uses all of them).

    Without ``indices``, the wanted sizes are matched in order to the earliest backbone maps of
    those sizes. Raises ConfigError listing the backbone's maps when they cannot be matched.
    """
    listing = ", ".join(f"{i}: {h}x{w}" for i, (h, w) in enumerate(backbone_maps))
    wanted = [tuple(m) for m in wanted]
    if indices is None:
        found, start = [], 0
        for target in wanted:
            match = next((i for i in range(start, len(backbone_maps)) if tuple(backbone_maps[i]) == target), None)
            if match is None:
                raise ConfigError(
                    f"{arch} at {size[0]}x{size[1]}: prior feature maps {wanted} are not, in order, among the "
                    f"backbone's maps ({listing}). Note: change the input size or the prior feature maps"
                )
            found.append(match)
            start = match + 1
        indices = found
    indices = tuple(int(i) for i in indices)
    if len(indices) != len(wanted) or any(not 0 <= i < len(backbone_maps) for i in indices) or list(indices) != sorted(set(indices)):
        raise ConfigError(f"{arch}: feature_indices {indices} do not pick {len(wanted)} increasing maps among ({listing})")
    picked = [tuple(backbone_maps[i]) for i in indices]
    if picked != wanted:
        raise ConfigError(f"{arch}: feature_indices {indices} give maps {picked}, the priors expect {wanted}")
    return None if indices == tuple(range(len(backbone_maps))) else indices


def _trim_unused_extras(backbone: nn.Module, last_used: int) -> None:
    """Drop the trailing extra blocks whose maps no prior uses (they would hold parameters that
    never get a gradient, which DistributedDataParallel rejects)."""
    unused = len(backbone.out_channels) - 1 - last_used
    extras = next((getattr(backbone, n) for n in ("extra", "extras", "additional") if hasattr(backbone, n)), None)
    if unused > 0 and isinstance(extras, nn.ModuleList) and len(extras) >= unused:
        del extras[len(extras) - unused :]
        backbone.out_channels = tuple(backbone.out_channels[: last_used + 1])
    elif unused > 0:
        raise ConfigError(f"{type(backbone).__name__}: cannot drop its last {unused} feature maps")


def build_model(config: ModelConfig) -> SSD:
    """Instantiate the detector described by ``config`` with freshly initialised weights."""
    spec = get_arch(config.arch)
    backbone = spec.make_backbone(config)
    channels = tuple(backbone.out_channels)
    if config.feature_indices is not None:
        if max(config.feature_indices) >= len(channels):
            raise ConfigError(f"{config.arch}: feature_indices {config.feature_indices} beyond the backbone's {len(channels)} maps")
        _trim_unused_extras(backbone, max(config.feature_indices))
        channels = tuple(channels[i] for i in config.feature_indices)
    if len(channels) != len(config.priors.feature_maps):
        raise ConfigError(
            f"{config.arch}: the backbone gives {len(backbone.out_channels)} feature maps, the prior "
            f"config has {len(config.priors.feature_maps)}"
        )
    head = DetectionHead(
        channels,
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
        from ..state_dict_file import load_state_dict_file

        model.backbone.load_imagenet_state_dict(load_state_dict_file(backbone_weights))
    return model

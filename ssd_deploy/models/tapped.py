"""SSD backbones on any torchvision classification network, tapped by name.

``torchvision.models.feature_extraction.create_feature_extractor`` cuts a classifier (ResNet18/34/
50, MobileNet, EfficientNet, RegNet, ConvNeXt, ...) at named graph nodes, the "taps"; extra blocks
halve the last map down to a few pixels, as in the SSD paper. By default the taps are the last
nodes at output strides 8, 16 and 32 (C3, C4, C5): e.g. ``layer2.3.relu_1``, ``layer3.5.relu_1``
and ``layer4.2.relu_1`` for ResNet34. A prior file may name other nodes
(``get_graph_node_names(model)[1]`` lists them).

The module keeps the classifier's own parameter names, so torchvision's ImageNet state dict for
that network loads key for key (the classifier layers past the last tap are not kept).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Sequence

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names
from torchvision.ops.misc import Conv2dNormActivation

from ..errors import ConfigError
from .backbone_weights import check_backbone_load
from .mobilenet import SSDLITE_NORM, EXTRA_CHANNELS, _extra_block

# Output strides of the default taps (C3, C4, C5) and how many extra blocks follow the last one.
DEFAULT_STRIDES = (8, 16, 32)
EXTRA_BLOCKS = 3
# Networks whose blocks are depthwise separable get SSDLite's head and extras; the rest SSD's.
LIGHT_FAMILIES = ("mobilenet", "efficientnet", "mnasnet", "shufflenet")
# Tap selection runs shapes only; a 512 x 512 probe keeps the stride of every map exact.
PROBE_SIZE = 512


@lru_cache(maxsize=None)
def classifier_names() -> tuple[str, ...]:
    """torchvision's classification networks (``torchvision.models.list_models``)."""
    return tuple(torchvision.models.list_models(module=torchvision.models))


def is_classifier(name: str) -> bool:
    """Whether ``name`` is a torchvision classification network."""
    return name in classifier_names()


def head_kind(name: str) -> str:
    """"ssdlite" (depthwise separable head and extras) for mobile networks, else "ssd"."""
    return "ssdlite" if name.startswith(LIGHT_FAMILIES) else "ssd"


def _classifier(name: str) -> nn.Module:
    if not is_classifier(name):
        raise ConfigError(f"{name!r} is not a torchvision classification network. Note: see torchvision.models.list_models()")
    return torchvision.models.get_model(name, weights=None).eval()


def _meta_outputs(name: str, nodes: Sequence[str] | None = None) -> dict[str, object]:
    """The outputs of ``nodes`` (default: every node) on a probe image, shapes only."""
    # Built on the CPU and moved: some networks' initialisers (RegNet) cannot run on meta.
    model = _classifier(name).to("meta")
    if nodes is None:
        nodes = [n for n in get_graph_node_names(model)[1] if n != "x"]
    return create_feature_extractor(model, return_nodes=list(nodes))(torch.empty(1, 3, PROBE_SIZE, PROBE_SIZE, device="meta"))


@lru_cache(maxsize=None)
def default_taps(name: str) -> tuple[str, ...]:
    """The last graph node at each of the output strides 8, 16 and 32 of ``name``'s classifier."""
    at_stride: dict[int, list[str]] = {}
    for node, value in _meta_outputs(name).items():
        # Feature maps are NCHW with the probe's square size (not NHWC inside ConvNeXt blocks,
        # not 1 x 1 pooling, not parameters or sizes read by the graph).
        if isinstance(value, Tensor) and value.dim() == 4 and value.shape[0] == 1 and value.shape[-1] == value.shape[-2] > 1:
            at_stride.setdefault(PROBE_SIZE // value.shape[-1], []).append(node)
    return tuple(_stage_output(at_stride, stride, name) for stride in DEFAULT_STRIDES)


def _stage_output(at_stride: dict[int, list[str]], stride: int, name: str) -> str:
    """The last node at ``stride`` outside the block where the next stride starts (ResNet50's
    ``layer3.0`` opens with a 1x1 conv at the old stride; its output is no stage's output)."""
    if stride not in at_stride:
        raise ConfigError(f"{name}: no feature map at output stride {stride}. Note: name the taps in the prior file")
    nodes = at_stride[stride]
    following = at_stride.get(2 * stride)
    if following:
        block = following[0].split(".")[:2]
        nodes = [n for n in nodes if n.split(".")[:2] != block] or nodes
    return nodes[-1]


def _ssd_extra_block(in_channels: int, out_channels: int, norm_layer: Callable[..., nn.Module]) -> nn.Sequential:
    # SSD300's extra layers (1x1 then 3x3 stride 2), with BatchNorm as in NVIDIA's SSD300.
    return nn.Sequential(
        Conv2dNormActivation(in_channels, out_channels // 2, kernel_size=1, norm_layer=norm_layer),
        Conv2dNormActivation(out_channels // 2, out_channels, kernel_size=3, stride=2, norm_layer=norm_layer),
    )


class TappedBackbone(nn.Module):
    """Feature maps at ``taps`` of torchvision's ``name`` classifier, then three extra blocks.

    ``forward``: Tensor[N, 3, H, W] (normalised) -> list of Tensor[N, C_i, H_i, W_i], the taps in
    the order given, then the extras (each halving the previous map, rounding up).
    """

    def __init__(self, name: str, taps: Sequence[str] | None = None) -> None:
        super().__init__()
        self.name = name
        self.taps = tuple(taps) if taps is not None else default_taps(name)
        model = _classifier(name)
        known = get_graph_node_names(model)[1]
        # A tap is a graph node or a module holding nodes ("layer2": its output, as torchvision allows).
        unknown = [t for t in self.taps if not any(n == t or n.startswith(t + ".") for n in known)]
        if unknown:
            raise ConfigError(
                f"{name}: taps {unknown} are neither graph nodes nor modules of the network. Note: "
                f"torchvision.models.feature_extraction.get_graph_node_names lists them, e.g. {known[len(known) // 2]!r}"
            )
        self.body = create_feature_extractor(model, return_nodes={t: str(i) for i, t in enumerate(self.taps)})
        light = head_kind(name) == "ssdlite"
        norm_layer = SSDLITE_NORM if light else nn.BatchNorm2d
        channels = [*tap_channels(name, self.taps), *(EXTRA_CHANNELS if light else (512, 256, 256))[:EXTRA_BLOCKS]]
        block = _extra_block if light else _ssd_extra_block
        self.extra = nn.ModuleList(block(channels[i], channels[i + 1], norm_layer) for i in range(len(self.taps) - 1, len(channels) - 1))
        self.out_channels = tuple(channels)
        for module in self.extra.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs = self.body(x)
        features = [outputs[str(i)] for i in range(len(self.taps))]
        x = features[-1]
        for block in self.extra:
            x = block(x)
            features.append(x)
        return features

    def load_imagenet_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Load torchvision's ImageNet weights of ``name`` (layers past the last tap ignored)."""
        kept = {f"body.{k}": v for k, v in state_dict.items() if f"body.{k}" in self.state_dict()}
        missing, unexpected = self.load_state_dict(kept, strict=False)
        check_backbone_load(missing, unexpected, expected_missing_prefixes=("extra.",))
        if not kept:
            raise ValueError(f"backbone weights do not fit {self.name}: no parameter names in common")


@lru_cache(maxsize=None)
def tap_channels(name: str, taps: tuple[str, ...]) -> tuple[int, ...]:
    """Channels of each tap of ``name``'s classifier (shapes only, on the meta device)."""
    outputs = _meta_outputs(name, taps)
    bad = [t for t in taps if not (isinstance(outputs[t], Tensor) and outputs[t].dim() == 4)]
    if bad:
        raise ConfigError(f"{name}: taps {bad} are not [N, C, H, W] feature maps")
    return tuple(int(outputs[t].shape[1]) for t in taps)

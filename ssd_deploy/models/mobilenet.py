"""SSDLite backbones on MobileNetV3-Large and MobileNetV2 (MobileNetV2 paper section 6.2,
MobileNetV3 paper section 6.3; torchvision's ``ssdlite320_mobilenet_v3_large``).

The first feature map is taken at the expansion layer of the first block of the last stride-2
stage (C4), the second at the end of the network; four extra blocks (1x1 -> depthwise 3x3
stride 2 -> 1x1, ReLU6) follow. The module layout equals torchvision's
``SSDLiteFeatureExtractorMobileNet``, so torchvision's SSDLite checkpoints load key for key.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from torch import Tensor, nn
from torchvision.models import mobilenet_v2, mobilenet_v3_large
from torchvision.ops.misc import Conv2dNormActivation

from .backbone_weights import check_backbone_load

# torchvision's SSDLite uses these BatchNorm settings (TensorFlow's defaults).
SSDLITE_NORM = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
EXTRA_CHANNELS = (512, 256, 256, 128)


def _extra_block(in_channels: int, out_channels: int, norm_layer: Callable[..., nn.Module]) -> nn.Sequential:
    mid = out_channels // 2
    return nn.Sequential(
        Conv2dNormActivation(in_channels, mid, kernel_size=1, norm_layer=norm_layer, activation_layer=nn.ReLU6),
        Conv2dNormActivation(
            mid, mid, kernel_size=3, stride=2, groups=mid, norm_layer=norm_layer, activation_layer=nn.ReLU6
        ),
        Conv2dNormActivation(mid, out_channels, kernel_size=1, norm_layer=norm_layer, activation_layer=nn.ReLU6),
    )


def _inner_layers(block: nn.Module) -> nn.Sequential:
    """The Sequential inside a torchvision inverted-residual block (``block`` in V3, ``conv`` in V2)."""
    return block.block if hasattr(block, "block") else block.conv


class MobileNetSSDLiteBackbone(nn.Module):
    """Six feature maps from a torchvision MobileNet ``features`` Sequential plus four extra blocks."""

    def __init__(self, features: nn.Sequential, norm_layer: Callable[..., nn.Module] = SSDLITE_NORM) -> None:
        super().__init__()
        # C4 = the first block of the last stride-2 stage (torchvision marks those with ``_is_cn``).
        c4 = [i for i, block in enumerate(features) if getattr(block, "_is_cn", False)][-1]
        c4_inner = _inner_layers(features[c4])
        self.c4_index = c4
        self.features = nn.Sequential(
            nn.Sequential(*features[:c4], c4_inner[0]),  # until the C4 expansion layer
            nn.Sequential(c4_inner[1:], *features[c4 + 1 :]),  # from the C4 depthwise conv to the end
        )
        channels = [c4_inner[0].out_channels, features[-1].out_channels, *EXTRA_CHANNELS]
        self.out_channels = tuple(channels)
        self.extra = nn.ModuleList(
            [_extra_block(channels[i + 1], channels[i + 2], norm_layer) for i in range(len(EXTRA_CHANNELS))]
        )
        for module in self.extra.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, mean=0.0, std=0.03)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for stage in self.features:
            x = stage(x)
            features.append(x)
        for block in self.extra:
            x = block(x)
            features.append(x)
        return features

    def load_imagenet_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Load torchvision ``mobilenet_v3_large`` / ``mobilenet_v2`` ImageNet weights (classifier ignored)."""
        c4, mapped = self.c4_index, {}
        inner = "block" if "block" in _inner_name_probe(state_dict, c4) else "conv"
        for key, value in state_dict.items():
            if not key.startswith("features."):
                continue
            index, rest = key[len("features.") :].split(".", 1)
            index = int(index)
            if index < c4:
                mapped[f"features.0.{index}.{rest}"] = value
            elif index > c4:
                mapped[f"features.1.{index - c4}.{rest}"] = value
            else:
                sub, name = rest[len(inner) + 1 :].split(".", 1)
                sub = int(sub)
                # features.1.0 is a slice of the C4 block's Sequential: slicing keeps the layer numbers.
                mapped[f"features.0.{c4}.{name}" if sub == 0 else f"features.1.0.{sub}.{name}"] = value
        missing, unexpected = self.load_state_dict(mapped, strict=False)
        check_backbone_load(missing, unexpected, expected_missing_prefixes=("extra.",))


def _inner_name_probe(state_dict: dict[str, Tensor], index: int) -> str:
    prefix = f"features.{index}."
    return next((k[len(prefix) :] for k in state_dict if k.startswith(prefix)), "")


def mobilenet_v3_large_backbone(reduced_tail: bool = False) -> MobileNetSSDLiteBackbone:
    """MobileNetV3-Large SSDLite backbone. ``reduced_tail`` halves the last stage's channels
    (torchvision uses it when no ImageNet weights are given)."""
    net = mobilenet_v3_large(weights=None, norm_layer=SSDLITE_NORM, reduced_tail=reduced_tail)
    return MobileNetSSDLiteBackbone(net.features)


def mobilenet_v2_backbone() -> MobileNetSSDLiteBackbone:
    """MobileNetV2 SSDLite backbone: C4 = expansion of block 14 (576 channels), then 1280 channels."""
    net = mobilenet_v2(weights=None, norm_layer=SSDLITE_NORM)
    return MobileNetSSDLiteBackbone(net.features)

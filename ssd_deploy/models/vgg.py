"""SSD300's VGG16 backbone (SSD paper, section 3 "Base network"; sgrvinod's tutorial; torchvision).

torchvision's VGG16 up to conv5_3 with pool3 in ceil mode (75 -> 38), pool5 replaced by a 3x3
stride-1 pool, fc6/fc7 as an atrous 3x3 conv (dilation 6) and a 1x1 conv, conv4_3 L2-normalised
with a learned per-channel scale initialised to 20, then the auxiliary convs conv8_2 ... conv11_2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.vgg import cfgs, make_layers

from .backbone_weights import check_backbone_load

# Indices into torchvision's ``vgg16().features``.
POOL3, CONV4_3_END, CONV5_3_END = 16, 23, 30


class L2Norm(nn.Module):
    """Per-position L2 normalisation over channels times a learned per-channel scale (ParseNet)."""

    def __init__(self, channels: int, initial_scale: float = 20.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), initial_scale))

    def forward(self, x: Tensor) -> Tensor:
        return self.weight.view(1, -1, 1, 1) * F.normalize(x, dim=1)


def _auxiliary(in_channels: int, mid_channels: int, out_channels: int, stride: int, padding: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, mid_channels, kernel_size=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid_channels, out_channels, kernel_size=3, stride=stride, padding=padding),
        nn.ReLU(inplace=True),
    )


class VGG16Backbone(nn.Module):
    """Six feature maps: conv4_3 (normalised), conv7, conv8_2, conv9_2, conv10_2, conv11_2.

    For a 300x300 input their sizes are 38, 19, 10, 5, 3, 1.
    """

    out_channels = (512, 1024, 512, 256, 256, 256)

    def __init__(self) -> None:
        super().__init__()
        # torchvision's VGG16 feature layers, without building the 100M-parameter classifier.
        vgg = make_layers(cfgs["D"], batch_norm=False)
        for module in vgg:
            if isinstance(module, nn.Conv2d):  # torchvision VGG's own initialisation
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        vgg[POOL3].ceil_mode = True
        self.conv4_3 = vgg[:CONV4_3_END]  # conv1_1 ... conv4_3 + ReLU
        self.conv4_3_norm = L2Norm(512)
        self.conv7 = nn.Sequential(
            *vgg[CONV4_3_END:CONV5_3_END],  # pool4, conv5_1 ... conv5_3 + ReLU
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),  # pool5, modified
            nn.Conv2d(512, 1024, kernel_size=3, padding=6, dilation=6),  # fc6, atrous
            nn.ReLU(inplace=True),
            nn.Conv2d(1024, 1024, kernel_size=1),  # fc7
            nn.ReLU(inplace=True),
        )
        self.extras = nn.ModuleList(
            [
                _auxiliary(1024, 256, 512, stride=2, padding=1),  # conv8_2
                _auxiliary(512, 128, 256, stride=2, padding=1),  # conv9_2
                _auxiliary(256, 128, 256, stride=1, padding=0),  # conv10_2
                _auxiliary(256, 128, 256, stride=1, padding=0),  # conv11_2
            ]
        )
        for module in [*self.conv7[-4:], *self.extras]:
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.conv4_3(x)
        features = [self.conv4_3_norm(x)]
        x = self.conv7(x)
        features.append(x)
        for block in self.extras:
            x = block(x)
            features.append(x)
        return features

    def load_imagenet_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Load torchvision ``vgg16`` ImageNet weights (``features.*`` keys; the classifier is ignored)."""
        features = {k[len("features.") :]: v for k, v in state_dict.items() if k.startswith("features.")}
        mapped = {}
        for key, value in features.items():
            index, name = key.split(".", 1)
            index = int(index)
            if index < CONV4_3_END:
                mapped[f"conv4_3.{index}.{name}"] = value
            elif index < CONV5_3_END:
                mapped[f"conv7.{index - CONV4_3_END}.{name}"] = value
        missing, unexpected = self.load_state_dict(mapped, strict=False)
        check_backbone_load(missing, unexpected, expected_missing_prefixes=("conv4_3_norm", "conv7.8.", "conv7.10.", "extras"))

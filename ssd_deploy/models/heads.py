"""Prediction heads: per feature map, a conv producing ``priors_per_location * columns`` channels.

The outputs of all maps are concatenated to ``[N, P, columns]`` in prior order (map, row,
column, prior), the order of :func:`ssd_deploy.priors.generate_priors` and of torchvision.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from torchvision.ops.misc import Conv2dNormActivation


def _ssd_predictor(in_channels: int, out_channels: int, norm_layer: Callable[..., nn.Module] | None) -> nn.Module:
    """The SSD paper's 3x3 convolution."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
    nn.init.xavier_uniform_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def _ssdlite_predictor(in_channels: int, out_channels: int, norm_layer: Callable[..., nn.Module] | None) -> nn.Module:
    """SSDLite's depthwise-separable predictor: 3x3 depthwise + BN + ReLU6, then a 1x1 conv."""
    block = nn.Sequential(
        Conv2dNormActivation(
            in_channels, in_channels, kernel_size=3, groups=in_channels, norm_layer=norm_layer, activation_layer=nn.ReLU6
        ),
        nn.Conv2d(in_channels, out_channels, kernel_size=1),
    )
    for module in block.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, mean=0.0, std=0.03)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return block


PREDICTORS = {"ssd": _ssd_predictor, "ssdlite": _ssdlite_predictor}


class ScoringHead(nn.Module):
    """One predictor per feature map, outputs flattened to Tensor[N, P, columns]."""

    def __init__(self, predictors: nn.ModuleList, columns: int) -> None:
        super().__init__()
        self.predictors = predictors
        self.columns = columns

    def forward(self, features: list[Tensor]) -> Tensor:
        outputs = []
        for feature, predictor in zip(features, self.predictors):
            x = predictor(feature)  # [N, A * columns, H, W]
            n, _, h, w = x.shape
            x = x.view(n, -1, self.columns, h, w).permute(0, 3, 4, 1, 2)  # [N, H, W, A, columns]
            outputs.append(x.reshape(n, -1, self.columns))
        return torch.cat(outputs, dim=1)


class DetectionHead(nn.Module):
    """Localisation and classification heads.

    Returns ``(loc [N, P, 4], logits [N, P, num_classes])``; ``num_classes`` includes background.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        priors_per_location: Sequence[int],
        num_classes: int,
        kind: str = "ssd",
        norm_layer: Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__()
        make = PREDICTORS[kind]
        pairs = list(zip(in_channels, priors_per_location))
        self.regression = ScoringHead(nn.ModuleList([make(c, a * 4, norm_layer) for c, a in pairs]), 4)
        self.classification = ScoringHead(
            nn.ModuleList([make(c, a * num_classes, norm_layer) for c, a in pairs]), num_classes
        )

    def forward(self, features: list[Tensor]) -> tuple[Tensor, Tensor]:
        return self.regression(features), self.classification(features)

    def init_sigmoid_bias(self, prior_probability: float = 0.01) -> None:
        """Start every class score near ``prior_probability`` (RetinaNet's initialisation, section
        4.1 of the focal loss paper): otherwise the focal loss of thousands of easy background
        priors swamps the first updates of a sigmoid-scored model."""
        bias = -math.log((1.0 - prior_probability) / prior_probability)
        for predictor in self.classification.predictors:
            last = [m for m in predictor.modules() if isinstance(m, nn.Conv2d)][-1]
            nn.init.constant_(last.bias, bias)

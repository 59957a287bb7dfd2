"""Untrained models with varied scores, for checks that compare runtimes without a trained checkpoint."""

from __future__ import annotations

import torch
from torch import nn


def informative_init(model: nn.Module, seed: int = 0) -> nn.Module:
    """Spread a fresh model's weights so its scores are distinct (returns it in eval mode).

    A fresh SSDLite's activations vanish, so every score ties at 1/C and comparisons between two
    runs would only test tie-breaking. Kaiming convolutions, BatchNorm statistics away from
    identity and a tenth of the scale in the heads give varied, non-degenerate detections.
    """
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.1, 0.1)
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    with torch.no_grad():
        for module in model.head.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.mul_(0.1)
    return model.eval()

"""The SSD detector: normalise -> backbone -> heads. Decoding and NMS live in ``postprocess``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..priors import generate_priors
from .config import ModelConfig


class SSD(nn.Module):
    """Single-shot detector composed from a backbone and a head.

    ``forward`` maps RGB images in [0, 1], Tensor[N, 3, H, W] float32 at ``config.input_size``, to
    ``(loc [N, P, 4], logits [N, P, C])`` with C = ``config.num_classes`` (background at 0), in
    training and evaluation mode alike. ``priors`` (Tensor[P, 4] cxcywh fractions) is a buffer,
    rebuilt from the config rather than saved.
    """

    def __init__(self, config: ModelConfig, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.head = head
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("priors", generate_priors(config.priors, config.input_size), persistent=False)

    @property
    def num_priors(self) -> int:
        return self.priors.shape[0]

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = (images - self.mean) / self.std
        features = self.backbone(x)
        if self.config.feature_indices is not None:  # a custom prior layout uses some of the maps
            features = [features[i] for i in self.config.feature_indices]
        return self.head(features)

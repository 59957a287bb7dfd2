"""Raw head outputs to boxes and class probabilities for every prior."""

from __future__ import annotations

import torch
from torch import Tensor

from ..box_coder import SSD_VARIANCES, Variances, decode


def decode_predictions(
    loc: Tensor, logits: Tensor, priors: Tensor, variances: Variances = SSD_VARIANCES, sigmoid: bool = False
) -> tuple[Tensor, Tensor]:
    """Decode the raw head outputs.

    Args:
        loc: Tensor[N, P, 4] offsets. logits: Tensor[N, P, C]. priors: Tensor[P, 4] cxcywh.
        sigmoid: per-class sigmoid scores (models trained with the focal loss) instead of a
            softmax over all classes.

    Returns:
        boxes: Tensor[N, P, 4] xyxy clipped to [0, 1]; scores: Tensor[N, P, C] probabilities;
        column 0 is background (zero with ``sigmoid``: such models have no background score).
    """
    boxes = decode(loc, priors, variances).clamp(min=0.0, max=1.0)
    if sigmoid:
        foreground = torch.sigmoid(logits[:, :, 1:])
        return boxes, torch.cat((torch.zeros_like(logits[:, :, :1]), foreground), dim=-1)
    return boxes, torch.softmax(logits, dim=-1)

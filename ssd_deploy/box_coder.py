"""Encoding of boxes as offsets from priors, and back (SSD paper eq. 2).

Offsets are ``((cx - pcx) / (pw * v_c), (cy - pcy) / (ph * v_c), log(w / pw) / v_s, log(h / ph) / v_s)``
with the SSD variances ``v_c = 0.1`` (centre) and ``v_s = 0.2`` (size). torchvision writes the same
thing as ``BoxCoder(weights=(10, 10, 5, 5))``: the weights are the reciprocals of the variances.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor
from torchvision.ops import box_convert

# Largest log-scale decode accepts before exp(); torchvision uses the same bound
# (``bbox_xform_clip``) so that exp() never overflows on an untrained or adversarial output.
MAX_LOG_SCALE = math.log(1000.0 / 16)


class Variances(NamedTuple):
    """SSD's variances: the centre and size offsets are divided by these when encoded.

    A NamedTuple rather than a dataclass because TorchScript compiles NamedTuples.
    """

    center: float = 0.1
    size: float = 0.2


SSD_VARIANCES = Variances()


def encode(boxes: Tensor, priors: Tensor, variances: Variances = SSD_VARIANCES) -> Tensor:
    """Offsets of ``boxes`` relative to ``priors``.

    Args:
        boxes: Tensor[..., P, 4] xyxy, same units as ``priors`` (fractions of the image).
        priors: Tensor[P, 4] (cx, cy, w, h).

    Returns:
        Tensor[..., P, 4] offsets (dcx, dcy, dw, dh).
    """
    boxes_cxcywh = box_convert(boxes.reshape(-1, 4), "xyxy", "cxcywh").reshape(boxes.shape)
    center = (boxes_cxcywh[..., :2] - priors[:, :2]) / (priors[:, 2:] * variances.center)
    size = torch.log(boxes_cxcywh[..., 2:] / priors[:, 2:]) / variances.size
    return torch.cat((center, size), dim=-1)


def decode(
    offsets: Tensor, priors: Tensor, variances: Variances = SSD_VARIANCES, max_log_scale: float = MAX_LOG_SCALE
) -> Tensor:
    """Boxes from offsets relative to ``priors``; the inverse of :func:`encode`.

    Args:
        offsets: Tensor[..., P, 4] (dcx, dcy, dw, dh), e.g. the network's ``loc`` output.
        priors: Tensor[P, 4] (cx, cy, w, h).
        max_log_scale: bound on the size offsets before exp() (an argument, not a global read,
            because TorchScript cannot read module-level floats).

    Returns:
        Tensor[..., P, 4] xyxy in the units of ``priors``. Not clipped.
    """
    center = priors[:, :2] + offsets[..., :2] * variances.center * priors[:, 2:]
    log_scale = torch.clamp(offsets[..., 2:] * variances.size, max=max_log_scale)
    half_size = 0.5 * priors[:, 2:] * torch.exp(log_scale)
    return torch.cat((center - half_size, center + half_size), dim=-1)

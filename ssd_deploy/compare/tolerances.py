"""How close two runs must be: stated tolerances per precision, and the recall criterion of INT8.

Float32 and float16 runs are compared detection by detection within :class:`Tolerances`
(float32's derived from the model's own rounding by :func:`float32_tolerances`); reduced
precisions (INT8, BF16) are judged as detectors by a :class:`RecallCriterion`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from ..deploy import DecodeModule


@dataclass(frozen=True)
class Tolerances:
    """Stated tolerances of a comparison.

    Attributes:
        box_atol: largest allowed coordinate difference (fractions of the image side).
        score_atol: largest allowed score difference.
        min_iou: smallest IoU between matched detections (padded outputs only).
    """

    box_atol: float = 1e-4
    score_atol: float = 1e-5
    min_iou: float = 0.999
    basis: str = ""  # how the numbers were chosen, for reports (e.g. derived from float32 rounding)


# The tightest tolerances of a float32 file: a well-conditioned network reproduces the eager graph
# to these (measured on SSDLite-MobileNetV2: scores within 6e-8, boxes within 4e-7).
FP32_TOLERANCES = Tolerances(box_atol=1e-4, score_atol=1e-5, min_iou=0.999, basis="fixed float32 tolerances")
# A runtime computes the float32 network in another order (fused convolutions, other GEMM blocking)
# and so differs from PyTorch by about as much as PyTorch's float32 differs from the exact result:
# measured on MobileNetV2/V3 SSDLite with random weights, ONNX Runtime's difference from PyTorch
# was 0.7-1.2 times PyTorch's own difference from float64. Tolerances are ROUNDING_FACTOR times
# that difference, measured on the verification images, so an ill-conditioned network (random
# BatchNorm statistics amplify rounding) is judged by its own rounding, never looser than needed.
ROUNDING_FACTOR = 4.0
# Whatever the rounding, a box must stay within a quarter pixel: a shifted box is a defect.
MAX_BOX_PIXELS = 0.25
# float16 files are compared with the eager float16 graph: runtimes accumulate float16
# convolutions differently (measured on SSDLite: scores within 2e-3, boxes within 1e-3).
FP16_TOLERANCES = Tolerances(box_atol=5e-3, score_atol=5e-3, min_iou=0.99)


@dataclass(frozen=True)
class RecallCriterion:
    """How INT8 files are checked: as detectors, by finding each other's confident detections.

    Each run's detections scoring above ``score_threshold`` must be found by the other (same
    label, IoU >= ``min_iou``, score above ``score_threshold - score_margin``) at least
    ``min_recall`` of the time. Measured on a trained SSDLite at 128 px: INT8 finds 90-98% of the
    FP32 detections both ways (NNCF: 97-100%), OpenVINO BF16 98-100%.
    """

    score_threshold: float = 0.3
    min_iou: float = 0.5
    score_margin: float = 0.1
    min_recall: float = 0.85


INT8_CRITERION = RecallCriterion()


def float32_tolerances(network: nn.Module, priors: Tensor, batches: Sequence[Tensor], sigmoid: bool = False) -> Tolerances:
    """Tolerances of a float32 file of ``network`` derived from its own float32 rounding.

    The decoded boxes and scores of every prior are computed in float32 and in float64 on
    ``batches``; the largest differences times :data:`ROUNDING_FACTOR`, never below
    :data:`FP32_TOLERANCES`, are the tolerances (boxes capped at :data:`MAX_BOX_PIXELS`). Matched
    boxes need IoU >= 0.999 or every coordinate within the box tolerance (see
    :mod:`ssd_deploy.compare.detections`).

    Args:
        network: the float32 SSD (left unchanged). priors: Tensor[P, 4] cxcywh.
        batches: float32 [N, 3, H, W] RGB in [0, 1].
    """
    device = next(iter(network.parameters())).device
    exact = DecodeModule(copy.deepcopy(network).double(), priors.double(), sigmoid).eval()
    rounded = DecodeModule(network, priors, sigmoid).eval()
    box_error = score_error = 0.0
    with torch.inference_mode():
        for batch in batches:
            (boxes, scores), (boxes64, scores64) = rounded(batch.to(device)), exact(batch.to(device).double())
            box_error = max(box_error, (boxes.double() - boxes64).abs().max().item())
            score_error = max(score_error, (scores.double() - scores64).abs().max().item())
    base = FP32_TOLERANCES
    box_cap = MAX_BOX_PIXELS / max(batches[0].shape[-2:])
    box_atol = min(max(base.box_atol, ROUNDING_FACTOR * box_error), max(box_cap, base.box_atol))
    basis = (
        f"{ROUNDING_FACTOR:g} x the model's float32 rounding (scores {score_error:.1e}, boxes {box_error:.1e} "
        f"against float64), at least {base.score_atol:.0e} / {base.box_atol:.0e}"
    )
    return Tolerances(box_atol, max(base.score_atol, ROUNDING_FACTOR * score_error), base.min_iou, basis)

"""Box encoding/decoding: exact example, round trip, equality with torchvision's BoxCoder, clamping."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder
from torchvision.ops import box_convert

from ssd_deploy.box_coder import MAX_LOG_SCALE, SSD_VARIANCES, Variances, decode, encode

# torchvision writes SSD's variances (0.1 centre, 0.2 size) as their reciprocals.
TORCHVISION_SSD_CODER = BoxCoder(weights=(1 / SSD_VARIANCES.center,) * 2 + (1 / SSD_VARIANCES.size,) * 2)


def _random_priors(num: int, generator: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """Tensor[num, 4] cxcywh fractions."""
    centres = 0.1 + 0.8 * torch.rand(num, 2, generator=generator, dtype=torch.float64)
    sizes = 0.05 + 0.45 * torch.rand(num, 2, generator=generator, dtype=torch.float64)
    return torch.cat((centres, sizes), dim=1).to(dtype)


def _random_boxes_near(priors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Tensor[..., P, 4] xyxy: boxes shifted and rescaled around ``priors`` (positive sizes)."""
    shift = (torch.rand(priors.shape[0], 2, generator=generator, dtype=torch.float64) - 0.5) * priors[:, 2:].double()
    scale = torch.exp(torch.randn(priors.shape[0], 2, generator=generator, dtype=torch.float64) * 0.5)
    cxcywh = torch.cat((priors[:, :2].double() + shift, priors[:, 2:].double() * scale), dim=1)
    return box_convert(cxcywh, "cxcywh", "xyxy").to(priors.dtype)


def test_variances_are_the_papers():
    assert SSD_VARIANCES == Variances(center=0.1, size=0.2)
    assert MAX_LOG_SCALE == pytest.approx(math.log(1000.0 / 16), abs=1e-15)
    assert MAX_LOG_SCALE == pytest.approx(TORCHVISION_SSD_CODER.bbox_xform_clip, abs=1e-15)


def test_encode_exact_example():
    prior = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    # Box centre (0.55, 0.4), size (0.4, 0.4): dcx = 0.05 / (0.2 * 0.1) = 2.5,
    # dcy = -0.1 / (0.4 * 0.1) = -2.5, dw = log(2) / 0.2, dh = log(1) / 0.2 = 0.
    box = torch.tensor([[0.35, 0.2, 0.75, 0.6]])
    offsets = encode(box, prior)
    expected = torch.tensor([[2.5, -2.5, math.log(2.0) / 0.2, 0.0]])
    assert (offsets - expected).abs().max().item() <= 1e-5
    assert (decode(expected, prior) - box).abs().max().item() <= 1e-6


def test_encode_decode_round_trip():
    generator = torch.Generator().manual_seed(0)
    priors = _random_priors(500, generator)
    boxes = torch.stack([_random_boxes_near(priors, generator) for _ in range(3)])  # [3, P, 4]
    offsets = encode(boxes, priors)
    assert offsets.shape == (3, 500, 4)
    assert offsets.abs().max().item() > 1.0  # non-trivial offsets
    assert (decode(offsets, priors) - boxes).abs().max().item() <= 1e-5


def test_decode_encode_round_trip_from_offsets():
    generator = torch.Generator().manual_seed(1)
    priors = _random_priors(500, generator)
    offsets = torch.randn(2, 500, 4, generator=generator)
    assert (encode(decode(offsets, priors), priors) - offsets).abs().max().item() <= 1e-4


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_encode_equals_torchvision_box_coder(dtype, atol):
    generator = torch.Generator().manual_seed(2)
    priors = _random_priors(1000, generator, dtype)
    boxes = _random_boxes_near(priors, generator)
    expected = TORCHVISION_SSD_CODER.encode_single(boxes, box_convert(priors, "cxcywh", "xyxy"))
    ours = encode(boxes, priors)
    assert ours.dtype == dtype
    assert (ours - expected).abs().max().item() <= atol


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_decode_equals_torchvision_box_coder(dtype, atol):
    generator = torch.Generator().manual_seed(3)
    priors = _random_priors(1000, generator, dtype)
    offsets = (torch.randn(1000, 4, generator=generator, dtype=torch.float64) * 3).to(dtype)
    expected = TORCHVISION_SSD_CODER.decode_single(offsets, box_convert(priors, "cxcywh", "xyxy"))
    ours = decode(offsets, priors)
    assert (ours - expected).abs().max().item() <= atol


@pytest.mark.parametrize("magnitude", [1e4, 1e30])
def test_decode_of_huge_offsets_is_finite_and_clamped(magnitude):
    priors = torch.tensor([[0.5, 0.5, 0.1, 0.2], [0.3, 0.6, 0.4, 0.05], [0.5, 0.5, 0.1, 0.1]])
    offsets = torch.tensor(
        [
            [0.0, 0.0, magnitude, magnitude],
            [0.0, 0.0, magnitude, -magnitude],
            [magnitude, -magnitude, 0.0, 0.0],  # far-away centre, prior's size
        ]
    )
    boxes = decode(offsets, priors)
    assert torch.isfinite(boxes).all()
    # Sizes are capped at exp(MAX_LOG_SCALE) = 62.5 times the prior's; a huge negative offset
    # shrinks the box to (almost) nothing.
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert widths[0].item() == pytest.approx(0.1 * 62.5, rel=1e-5)
    assert heights[0].item() == pytest.approx(0.2 * 62.5, rel=1e-5)
    assert widths[1].item() == pytest.approx(0.4 * 62.5, rel=1e-5)
    assert 0.0 <= heights[1].item() <= 1e-6
    assert boxes[:2, [0, 2]].mean(dim=1).tolist() == pytest.approx([0.5, 0.3], abs=1e-6)  # centres kept
    far_centre = ((boxes[2, :2] + boxes[2, 2:]) / 2).tolist()  # 0.5 +- 0.1 * 0.1 * magnitude
    assert far_centre == pytest.approx([0.5 + 0.01 * magnitude, 0.5 - 0.01 * magnitude], rel=1e-5)
    expected = TORCHVISION_SSD_CODER.decode_single(offsets, box_convert(priors, "cxcywh", "xyxy"))
    assert torch.allclose(boxes, expected, rtol=1e-5, atol=1e-6)

"""Prior generation: exact counts and numbers, and equality with torchvision's DefaultBoxGenerator."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torchvision.models.detection import ssd300_vgg16, ssdlite320_mobilenet_v3_large
from torchvision.ops import box_convert

from ssd_deploy.errors import ConfigError
from ssd_deploy.priors import (
    PriorConfig,
    generate_priors,
    linear_scales,
    paper_ssd300_priors,
    torchvision_ssd300_priors,
    torchvision_ssdlite_priors,
)

PAPER_MAPS = ((38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1))
PAPER_COUNTS = (5776, 2166, 600, 150, 36, 4)  # 38^2*4, 19^2*6, 10^2*6, 5^2*6, 3^2*4, 1*4


@pytest.fixture(scope="module")
def tv_ssd300():
    # Built on the meta device: its DefaultBoxGenerator holds no weights, and VGG's
    # 100M-parameter classifier is not initialised for nothing.
    with torch.device("meta"):
        model = ssd300_vgg16(weights=None, weights_backbone=None)
    return model


@pytest.fixture(scope="module")
def tv_ssdlite():
    return ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None).eval()


def _feature_shapes(backbone, size: int, device: str) -> list[tuple[int, int]]:
    with torch.no_grad(), torch.device(device):
        features = backbone(torch.zeros(1, 3, size, size))
    return [tuple(int(s) for s in f.shape[-2:]) for f in features.values()]


def _priors_xyxy_pixels(config: PriorConfig, image_size: tuple[int, int]) -> torch.Tensor:
    height, width = image_size
    priors = generate_priors(config, image_size)
    return box_convert(priors, "cxcywh", "xyxy") * torch.tensor([width, height, width, height])


def test_paper_ssd300_has_8732_priors_with_exact_per_map_counts():
    config = paper_ssd300_priors()
    assert config.feature_maps == PAPER_MAPS
    per_map = [h * w * a for (h, w), a in zip(config.feature_maps, config.priors_per_location())]
    assert per_map == list(PAPER_COUNTS)
    assert config.priors_per_location() == [4, 6, 6, 6, 4, 4]
    assert config.num_priors() == 8732
    priors = generate_priors(config, (300, 300))
    assert priors.shape == (8732, 4)
    assert priors.dtype == torch.float32


def test_paper_ssd300_last_map_1x1_exact_numbers():
    priors = generate_priors(paper_ssd300_priors(), (300, 300))
    last = priors[-4:]
    s, s_next = 0.9, 1.0
    expected = torch.tensor(
        [
            [0.5, 0.5, s, s],
            [0.5, 0.5, math.sqrt(s * s_next), math.sqrt(s * s_next)],
            [0.5, 0.5, min(s * math.sqrt(2), 1.0), s / math.sqrt(2)],  # 1.2728 clipped to 1
            [0.5, 0.5, s / math.sqrt(2), min(s * math.sqrt(2), 1.0)],
        ]
    )
    assert (last - expected).abs().max().item() <= 1e-7
    # Without clipping, the ratio-2 prior keeps its full width 0.9 * sqrt(2).
    unclipped = PriorConfig(
        feature_maps=((1, 1),), scales=(0.9, 1.0), aspect_ratios=((2.0,),), clip=False
    )
    priors = generate_priors(unclipped, (300, 300))
    assert abs(priors[2, 2].item() - 0.9 * math.sqrt(2)) <= 1e-6
    assert abs(priors[3, 3].item() - 0.9 * math.sqrt(2)) <= 1e-6


def test_paper_ssd300_first_map_centres_and_order():
    priors = generate_priors(paper_ssd300_priors(), (300, 300))
    first = priors[:5776].view(38, 38, 4, 4)  # [row, column, prior, cxcywh]
    # Paper tiling: centre of cell (i, j) is ((j + 0.5) / 38, (i + 0.5) / 38).
    assert abs(first[0, 0, 0, 0].item() - 0.5 / 38) <= 1e-7
    assert abs(first[2, 5, 3, 0].item() - 5.5 / 38) <= 1e-7  # column -> cx
    assert abs(first[2, 5, 3, 1].item() - 2.5 / 38) <= 1e-7  # row -> cy
    # The four sizes of conv4_3 (scale 0.1, next 0.2, ratio 2) are the same in every cell.
    expected_wh = torch.tensor(
        [[0.1, 0.1], [math.sqrt(0.02)] * 2, [0.1 * math.sqrt(2), 0.1 / math.sqrt(2)], [0.1 / math.sqrt(2), 0.1 * math.sqrt(2)]]
    )
    assert (first[..., 2:] - expected_wh).abs().max().item() <= 1e-7


def test_torchvision_ssd300_priors_equal_default_box_generator(tv_ssd300, torchvision_anchors):
    maps = _feature_shapes(tv_ssd300.backbone, 300, "meta")
    assert tuple(maps) == torchvision_ssd300_priors().feature_maps
    expected = torchvision_anchors(tv_ssd300.anchor_generator, (300, 300), maps)
    ours = _priors_xyxy_pixels(torchvision_ssd300_priors(), (300, 300))
    assert ours.shape == expected.shape == (8732, 4)
    assert (ours - expected).abs().max().item() <= 1e-4


def test_torchvision_ssd300_priors_non_square_equal_default_box_generator(tv_ssd300, torchvision_anchors):
    # With steps, centres depend on the image size; torchvision divides width and height apart.
    image_size = (300, 420)
    maps = ((38, 53), (19, 27), (10, 14), (5, 7), (3, 5), (1, 3))
    expected = torchvision_anchors(tv_ssd300.anchor_generator, image_size, maps)
    ours = _priors_xyxy_pixels(torchvision_ssd300_priors(maps), image_size)
    assert ours.shape == expected.shape
    assert (ours - expected).abs().max().item() <= 1e-4


def test_torchvision_ssdlite_priors_equal_default_box_generator(tv_ssdlite, torchvision_anchors):
    maps = _feature_shapes(tv_ssdlite.backbone, 320, "cpu")
    assert maps == [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
    config = torchvision_ssdlite_priors(maps)
    assert list(config.scales) == pytest.approx(tv_ssdlite.anchor_generator.scales, abs=1e-12)
    expected = torchvision_anchors(tv_ssdlite.anchor_generator, (320, 320), maps)
    ours = _priors_xyxy_pixels(config, (320, 320))
    assert ours.shape == expected.shape == (config.num_priors(), 4)
    assert (ours - expected).abs().max().item() <= 1e-4


def test_linear_scales_match_paper_equation_4():
    scales = linear_scales(6, 0.2, 0.95)
    assert scales == pytest.approx((0.2, 0.35, 0.5, 0.65, 0.8, 0.95, 1.0), abs=1e-12)
    assert linear_scales(1, 0.2, 0.9) == (0.2, 0.9)


@pytest.mark.parametrize(
    "config",
    [
        paper_ssd300_priors(),
        torchvision_ssd300_priors(),
        torchvision_ssdlite_priors(((20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1))),
        PriorConfig(feature_maps=((4, 4), (2, 2)), explicit_sizes=(((0.2, 0.3),), ((0.5, 0.5), (0.7, 0.35))), clip=False),
    ],
    ids=["paper", "torchvision_ssd300", "torchvision_ssdlite", "explicit"],
)
def test_prior_config_dict_round_trip(config):
    assert PriorConfig.from_dict(config.to_dict()) == config
    # JSON turns tuples into lists; from_dict accepts that too.
    assert PriorConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(feature_maps=()),
        dict(feature_maps=((2, 2),), scales=(0.5,), aspect_ratios=((2.0,),)),  # needs 2 scales
        dict(feature_maps=((2, 2), (1, 1)), scales=(0.2, 0.5, 1.0), aspect_ratios=((2.0,),)),
        dict(feature_maps=((2, 2),), scales=(0.5, 1.0), aspect_ratios=((2.0,),), steps=(8.0, 16.0)),
        dict(feature_maps=((2, 2), (1, 1)), explicit_sizes=(((0.5, 0.5),),)),
    ],
    ids=["no_maps", "scales", "aspect_ratios", "steps", "explicit_sizes"],
)
def test_invalid_prior_config_raises_config_error(kwargs):
    with pytest.raises(ConfigError):
        PriorConfig(**kwargs)


def test_explicit_sizes_3_zooms_3_ratios():
    # fastai-lesson style: 4x4, 2x2 and 1x1 grids, 3 zooms x 3 ratios = 9 priors per cell.
    zooms, ratios = (0.7, 1.0, 1.3), ((1.0, 1.0), (1.0, 0.5), (0.5, 1.0))
    sizes = tuple((z * rw, z * rh) for z in zooms for rw, rh in ratios)
    grids = ((4, 4), (2, 2), (1, 1))
    config = PriorConfig(
        feature_maps=grids,
        explicit_sizes=tuple(tuple((w / g[0], h / g[0]) for w, h in sizes) for g in grids),
    )
    assert config.priors_per_location() == [9, 9, 9]
    assert config.num_priors() == (16 + 4 + 1) * 9 == 189
    priors = generate_priors(config, (224, 224))
    assert priors.shape == (189, 4)
    # The 1x1 grid: centre (0.5, 0.5), the sizes in the given order, 1.3 clipped to 1.
    last = priors[-9:]
    assert (last[:, :2] - 0.5).abs().max().item() == 0.0
    expected_wh = torch.tensor(sizes).clamp(max=1.0)
    assert (last[:, 2:] - expected_wh).abs().max().item() <= 1e-7
    # The 4x4 grid: cell (row 1, column 2), prior 4 -> centre (2.5/4, 1.5/4), size sizes[4] / 4.
    cell = priors[(1 * 4 + 2) * 9 + 4]
    assert cell.tolist() == pytest.approx([2.5 / 4, 1.5 / 4, sizes[4][0] / 4, sizes[4][1] / 4], abs=1e-7)

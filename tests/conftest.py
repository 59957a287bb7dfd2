"""Shared helpers, handed to tests as fixtures: torchvision's priors for given feature maps,
order-tolerant detection checks, and real photographs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import Tensor
from torchvision.models.detection.image_list import ImageList


def torchvision_anchors(anchor_generator, image_size: tuple[int, int], feature_maps) -> Tensor:
    """torchvision's priors (Tensor[P, 4] xyxy pixels) from its own ``DefaultBoxGenerator``.

    Only the feature maps' shapes matter, so they are zeros of the given (height, width).
    """
    images = ImageList(torch.zeros(1, 3, *image_size), [tuple(image_size)])
    features = [torch.zeros(1, 1, h, w) for h, w in feature_maps]
    return anchor_generator(images, features)[0]


def canonical_detections(boxes: Tensor, scores: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Sort detections by (label, -score, box coordinates) so that two NMS implementations that
    order ties differently can be compared row by row."""
    rows = sorted(
        range(len(scores)),
        key=lambda i: (int(labels[i]), -float(scores[i]), *[float(v) for v in boxes[i]]),
    )
    index = torch.tensor(rows, dtype=torch.int64)
    return boxes[index], scores[index], labels[index].to(torch.int64)


def assert_same_detections(actual, expected, box_atol: float, score_atol: float) -> None:
    """``actual`` and ``expected`` are (boxes [D, 4], scores [D], labels [D]) of one image."""
    a_boxes, a_scores, a_labels = canonical_detections(*actual)
    e_boxes, e_scores, e_labels = canonical_detections(*expected)
    assert a_labels.shape == e_labels.shape, f"{a_labels.numel()} detections, expected {e_labels.numel()}"
    assert torch.equal(a_labels, e_labels)
    if a_labels.numel():
        assert (a_scores - e_scores).abs().max().item() <= score_atol
        assert (a_boxes - e_boxes).abs().max().item() <= box_atol


@pytest.fixture(name="torchvision_anchors", scope="session")
def torchvision_anchors_fixture():
    return torchvision_anchors


@pytest.fixture(name="assert_same_detections", scope="session")
def assert_same_detections_fixture():
    return assert_same_detections


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory):
    """A checkpoint of SSDLite-MobileNetV2 at 128 x 128 trained briefly on shapes (about 80 s here):
    confident, spread scores, as the runtime parity tests need (a random model's scores tie)."""
    from helpers import train_on_shapes

    from ssd_deploy.checkpoint import save_checkpoint
    from ssd_deploy.data.shapes import CLASS_NAMES

    model = train_on_shapes("ssdlite_mobilenet_v2", size=128, steps=200)
    return save_checkpoint(tmp_path_factory.mktemp("trained") / "shapes_ssdlite.pt", model, list(CLASS_NAMES))


# Real photographs of their own sizes, from sample data that packages of the test extra ship
# (scikit-image's skimage/data, matplotlib's sample_data): colour and gray, PNG and JPEG, square
# and not, from 300 x 451 to 1411 x 1411 pixels. Nothing is downloaded.
SKIMAGE_PHOTOS = (
    "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
    "hubble_deep_field.jpg", "retina.jpg", "camera.png", "coins.png",
)


@pytest.fixture(scope="session")
def real_photos() -> list[Path]:
    """Paths of ten real photographs (see SKIMAGE_PHOTOS, plus matplotlib's grace_hopper.jpg)."""
    import matplotlib

    spec = importlib.util.find_spec("skimage")
    if spec is None:
        pytest.fail("scikit-image is not installed: it ships the real photographs (pip install -e '.[test]')")
    folder = Path(spec.submodule_search_locations[0]) / "data"
    photos = [folder / name for name in SKIMAGE_PHOTOS] + [Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"]
    missing = [str(p) for p in photos if not p.is_file()]
    assert not missing, f"sample photographs missing from the installed packages: {missing}"
    return photos


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """24 training and 6 validation shapes images of 96 px (``helpers.tiny_config`` trains on them)."""
    from ssd_deploy.data.shapes import generate_shapes_dataset

    root = tmp_path_factory.mktemp("tiny")
    generate_shapes_dataset(root / "train", 24, seed=0, size=(96, 96), progress=False)
    generate_shapes_dataset(root / "val", 6, seed=1, size=(96, 96), progress=False)
    return root

"""The Python one-liner: ``ssd_deploy.load(path)`` gives the Detector, and calling it takes what
users have at hand (a path, a list of paths, an OpenCV array, a PIL image), with the same
detections as the array read by ``read_image``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import ssd_deploy
from ssd_deploy.checkpoint import save_checkpoint
from ssd_deploy.data.shapes import CLASS_NAMES, render_scene
from ssd_deploy.errors import SSDDeployError
from ssd_deploy.images import read_image, write_image
from ssd_deploy.models import create_model
from ssd_deploy.models.informative import informative_init
from ssd_deploy.runtimes import Detector

SIZE = 128


@pytest.fixture(scope="module")
def model_and_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    torch.manual_seed(0)
    model = informative_init(create_model("ssdlite_mobilenet_v2", num_classes=len(CLASS_NAMES), input_size=(SIZE, SIZE)))
    checkpoint = save_checkpoint(folder / "model.pt", model, list(CLASS_NAMES))
    rng = np.random.default_rng(5)
    paths = [write_image(folder / f"scene_{i}.png", render_scene(rng, size).image) for i, size in enumerate([(160, 200), (96, 128)])]
    return checkpoint, paths


def _same(actual, expected) -> None:
    assert len(actual) == len(expected) > 0
    np.testing.assert_array_equal(actual.boxes, expected.boxes)
    np.testing.assert_array_equal(actual.scores, expected.scores)
    np.testing.assert_array_equal(actual.labels, expected.labels)


def test_load_and_call_take_paths_arrays_and_pil_images(model_and_images):
    checkpoint, paths = model_and_images
    detector = ssd_deploy.load(checkpoint, min_score=0.05)
    assert isinstance(detector, Detector) and detector.class_names == list(CLASS_NAMES)
    arrays = [read_image(path) for path in paths]
    # Bit-identical to the arrays in batches of the same composition (another batch size may
    # take another convolution algorithm, which rounds differently).
    expected = [detector.detect(array) for array in arrays]
    _same(detector(paths[0]), expected[0])  # one path: one Detections
    _same(detector(str(paths[1])), expected[1])
    pil = Image.open(paths[0])  # RGB in PIL's order; the detector converts to the BGR the model expects
    _same(detector(pil), expected[0])
    mixed = detector([paths[1], pil, arrays[1]])  # a list: one Detections per image, in order
    for actual, wanted in zip(mixed, detector.detect([arrays[1], arrays[0], arrays[1]])):
        _same(actual, wanted)
    assert ssd_deploy.__version__ == detector.metadata.ssd_deploy_version


def test_unreadable_inputs_are_named_before_any_runs(model_and_images, tmp_path):
    checkpoint, paths = model_and_images
    detector = ssd_deploy.load(checkpoint)
    missing = tmp_path / "missing.jpg"
    with pytest.raises(SSDDeployError, match=rf"^{missing}: no such file"):
        detector(missing)
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    with pytest.raises(SSDDeployError) as error:
        detector([paths[0], missing, 42, text])
    message = str(error.value)
    assert message.startswith("3 of 4 images cannot be read: ") and "\n" not in message
    assert f"{missing}: no such file" in message and "image 2: not an image array (int)" in message and str(text) in message
    with pytest.raises(SSDDeployError, match="empty list of images"):
        detector([])

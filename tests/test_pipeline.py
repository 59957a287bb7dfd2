"""Host-side pre-processing and the mapping of padded outputs back to original images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from ssd_deploy.errors import ConfigError
from ssd_deploy.pipeline import RESIZE_METHODS, preprocess, to_detections


def test_preprocess_resizes_converts_and_scales():
    rng = np.random.default_rng(1)
    wide = rng.integers(0, 256, size=(50, 80, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, size=(30, 20), dtype=np.uint8)
    batch, sizes = preprocess([wide, gray], (32, 48))
    assert batch.shape == (2, 3, 32, 48) and batch.dtype == torch.float32
    assert sizes == [(50, 80), (30, 20)]
    expected = cv2.resize(wide, (48, 32), interpolation=cv2.INTER_LINEAR)[:, :, ::-1] / 255.0
    np.testing.assert_allclose(batch[0].permute(1, 2, 0).numpy(), expected, atol=1e-6)
    # Gray input: the three channels are equal.
    assert torch.equal(batch[1, 0], batch[1, 1]) and torch.equal(batch[1, 1], batch[1, 2])
    assert 0.0 <= batch.min() and batch.max() <= 1.0


def test_preprocess_keeps_images_already_at_input_size():
    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    batch, _ = preprocess([image], (4, 6))
    np.testing.assert_array_equal((batch[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), image[:, :, ::-1])


def test_to_detections_unpads_and_rescales_per_image():
    num = torch.tensor([2, 0], dtype=torch.int32)
    boxes = torch.zeros(2, 3, 4)
    boxes[0, 0] = torch.tensor([0.1, 0.2, 0.5, 1.0])
    boxes[0, 1] = torch.tensor([0.0, 0.0, 1.0, 1.0])
    scores = torch.tensor([[0.9, 0.5, 0.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([[2, 1, 0], [0, 0, 0]], dtype=torch.int32)
    out = to_detections(num, boxes, scores, labels, [(100, 200), (10, 10)], ["bg", "cat", "dog"])
    assert len(out[0]) == 2 and len(out[1]) == 0
    np.testing.assert_allclose(out[0].boxes, [[20, 20, 100, 100], [0, 0, 200, 100]], atol=1e-4)
    assert out[0].names() == ["dog", "cat"]
    record = out[0].to_dict()["detections"][0]
    assert record["class_name"] == "dog" and record["label"] == 2 and record["box_xyxy"] == [20.0, 20.0, 100.0, 100.0]


def test_torchvision_resize_equals_torchvisions_detection_transform():
    """torchvision's method gives what GeneralizedRCNNTransform (normalise, then resize the float
    image) gives, once normalised: both steps are linear, so only float rounding differs."""
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(37, 91, 3), dtype=np.uint8)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    transform = GeneralizedRCNNTransform(48, 48, mean, std, size_divisible=1, fixed_size=(48, 32)).eval()
    rgb = torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1])).permute(2, 0, 1).float() / 255
    expected = transform([rgb])[0].tensors[0]
    batch, sizes = preprocess([image], (32, 48), "torchvision")
    normalised = (batch[0] - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    assert sizes == [(37, 91)] and normalised.shape == expected.shape == (3, 32, 48)
    assert (normalised - expected).abs().max().item() <= 1e-5  # a few float32 roundings of values up to ~5
    # OpenCV's uint8 resize is another function: it differs by far more than rounding.
    opencv = (preprocess([image], (32, 48), "opencv")[0][0] - batch[0]).abs().max().item()
    assert opencv > 1e-3


@pytest.mark.parametrize("resize", RESIZE_METHODS)
def test_both_methods_keep_images_at_input_size_exactly(resize):
    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    batch, _ = preprocess([image], (4, 6), resize)
    np.testing.assert_array_equal((batch[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), image[:, :, ::-1])


def test_unknown_resize_method_is_refused():
    with pytest.raises(ConfigError, match="resize method 'area' is unknown"):
        preprocess([np.zeros((4, 4, 3), np.uint8)], (4, 4), "area")

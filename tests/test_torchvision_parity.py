"""torchvision's SSD300-VGG16 and SSDLite320-MobileNetV3 state dicts give the same network and the
same detections in ssd-deploy.

Random weights must give informative scores, or the comparison proves nothing: with torchvision's
default initialisation SSDLite's class scores are all equal (activations vanish), and with
Kaiming everywhere VGG's scores saturate to 1.0; ties make NMS order arbitrary. So VGG keeps
torchvision's initialisation except for small head weights, and SSDLite gets Kaiming convolutions,
random BatchNorm statistics and 10x smaller head weights. Each test asserts the scores spread.

On real photographs of their own sizes, ``ssd-detect`` with the state dict must give what
torchvision's own ``model(images)`` gives: that needs torchvision's resize of the float image
(recorded as the model's ``resize`` method), since OpenCV's uint8 resize moved SSDLite's scores by
up to 0.22.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision.models.detection.ssdlite as tv_ssdlite_module
from torch import nn
from torchvision.models.detection import ssd300_vgg16, ssdlite320_mobilenet_v3_large

from helpers import informative_init
from ssd_deploy.cli.detect import main as detect_main
from ssd_deploy.compare import Tolerances, compare_detections
from ssd_deploy.deploy import DeployModule
from ssd_deploy.errors import ConfigError
from ssd_deploy.images import read_image
from ssd_deploy.pipeline import preprocess
from ssd_deploy.models.torchvision_compat import detect_torchvision_arch, from_torchvision_state_dict
from ssd_deploy.postprocess import PostprocessConfig

BATCH = 2


def _seeded_ssd300_vgg16() -> nn.Module:
    torch.manual_seed(0)
    model = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=91)
    for module in model.head.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, std=0.01)
            nn.init.zeros_(module.bias)
    return model.eval()


def _seeded_ssdlite320() -> nn.Module:
    torch.manual_seed(0)
    # weights_backbone=None makes torchvision build MobileNetV3 with the reduced tail.
    return informative_init(ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=91))


@pytest.fixture(scope="module", params=["ssd300_vgg16", "ssdlite320_mobilenet_v3_large"])
def pair(request):
    """(torchvision model, ssd-deploy model converted from its state dict, input images)."""
    tv = _seeded_ssd300_vgg16() if request.param == "ssd300_vgg16" else _seeded_ssdlite320()
    ours = from_torchvision_state_dict(tv.state_dict()).eval()
    height, width = ours.config.input_size
    assert (height, width) == ((300, 300) if request.param == "ssd300_vgg16" else (320, 320))
    images = torch.rand(BATCH, 3, height, width, generator=torch.Generator().manual_seed(1))
    return request.param, tv, ours, images


def test_converter_detects_architecture_and_classes(pair):
    name, tv, ours, _ = pair
    state_dict = tv.state_dict()
    assert detect_torchvision_arch(state_dict) == name
    assert ours.config.num_classes == 91
    assert ours.config.arch == {"ssd300_vgg16": "ssd300_vgg16", "ssdlite320_mobilenet_v3_large": "ssdlite_mobilenet_v3"}[name]
    # weights_backbone=None gives torchvision's reduced MobileNetV3 tail; the converter reads it.
    assert ours.config.reduced_tail is (name == "ssdlite320_mobilenet_v3_large")
    # Every torchvision tensor landed somewhere: same number of entries and of elements.
    ours_state = ours.state_dict()
    assert len(ours_state) == len(state_dict)
    assert sum(v.numel() for v in ours_state.values()) == sum(v.numel() for v in state_dict.values())


def test_raw_head_outputs_equal(pair):
    _, tv, ours, images = pair
    with torch.no_grad():
        transformed, _ = tv.transform(list(images))
        assert transformed.tensors.shape == images.shape  # already at the input size: no resize
        features = list(tv.backbone(transformed.tensors).values())
        expected = tv.head(features)
        loc, logits = ours(images)
    assert loc.shape == expected["bbox_regression"].shape == (BATCH, ours.num_priors, 4)
    assert logits.shape == expected["cls_logits"].shape == (BATCH, ours.num_priors, 91)
    assert (loc - expected["bbox_regression"]).abs().max().item() <= 1e-5
    assert (logits - expected["cls_logits"]).abs().max().item() <= 1e-5
    assert logits.std().item() > 0.1  # informative, not vanishing


def test_detections_equal(pair, assert_same_detections):
    _, tv, ours, images = pair
    config = PostprocessConfig(
        score_threshold=tv.score_thresh,
        iou_threshold=tv.nms_thresh,
        max_detections=tv.detections_per_img,
        topk_candidates=tv.topk_candidates,
        pre_nms_topk=0,  # exactness asked: every candidate enters NMS, as in torchvision
    )
    with torch.no_grad():
        expected = tv(list(images))
        detections = DeployModule(ours, config)(images)
    height, width = ours.config.input_size
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    for i, target in enumerate(expected):
        n = int(detections.num_detections[i])
        # Not vacuous: many detections with distinct scores (no ties to hide an order mismatch).
        assert n >= 50
        assert target["scores"].unique().numel() >= 0.9 * target["scores"].numel()
        actual = (detections.boxes[i, :n] * scale, detections.scores[i, :n], detections.labels[i, :n])
        assert_same_detections(
            actual, (target["boxes"], target["scores"], target["labels"]), box_atol=1e-3, score_atol=1e-5
        )


def test_full_tail_ssdlite_is_detected(monkeypatch):
    # torchvision builds the full MobileNetV3 tail when ImageNet backbone weights are used (as in
    # its COCO checkpoint); build that network without downloading anything.
    original = tv_ssdlite_module.mobilenet_v3_large
    monkeypatch.setattr(
        tv_ssdlite_module, "mobilenet_v3_large", lambda **kwargs: original(**{**kwargs, "reduced_tail": False})
    )
    tv = informative_init(ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=7))
    ours = from_torchvision_state_dict(tv.state_dict()).eval()
    assert ours.config.reduced_tail is False
    assert ours.config.num_classes == 7
    images = torch.rand(1, 3, 320, 320, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        transformed, _ = tv.transform(list(images))
        expected = tv.head(list(tv.backbone(transformed.tensors).values()))
        loc, logits = ours(images)
    assert (loc - expected["bbox_regression"]).abs().max().item() <= 1e-5
    assert (logits - expected["cls_logits"]).abs().max().item() <= 1e-5


def test_unknown_state_dict_is_rejected():
    with pytest.raises(ConfigError):
        detect_torchvision_arch({"backbone.body.conv1.weight": torch.zeros(1), "head.classification_head.x": torch.zeros(1)})


# Compared above a score each model's spread weights reach on many boxes of these photos. NMS at that threshold keeps exactly the detections above it that NMS at
# torchvision's lower one keeps (a box is suppressed only by higher-scoring ones), so ssd-detect
# --score S and torchvision's output filtered at S must agree. Scores within 1e-4, IoU >= 0.999:
# both run the same float32 network on inputs equal up to the order of two linear steps.
PHOTO_SCORES = {"ssd300_vgg16": 0.2, "ssdlite320_mobilenet_v3_large": 0.3}
PHOTO_TOLERANCES = Tolerances(box_atol=1e-4, score_atol=1e-4, min_iou=0.999)


def _padded(found: list[tuple[np.ndarray, np.ndarray, np.ndarray]], sizes: list[tuple[int, int]], capacity: int):
    """(boxes [D, 4] pixels, scores, labels) per image -> padded outputs with boxes in fractions."""
    count = torch.zeros(len(found), dtype=torch.int32)
    boxes, scores, labels = torch.zeros(len(found), capacity, 4), torch.zeros(len(found), capacity), torch.zeros(len(found), capacity, dtype=torch.int32)
    for i, ((b, s, l), (height, width)) in enumerate(zip(found, sizes)):
        count[i] = len(s)
        boxes[i, : len(s)] = torch.as_tensor(b, dtype=torch.float32) / torch.tensor([width, height, width, height])
        scores[i, : len(s)], labels[i, : len(s)] = torch.as_tensor(s), torch.as_tensor(l, dtype=torch.int32)
    return count, boxes, scores, labels


def _photo_ssdlite320(photos: list[np.ndarray]) -> nn.Module:
    """SSDLite with BatchNorm statistics measured on ``photos`` (BGR uint8), as a trained model's
    are on its data, and Kaiming-scale head weights.

    With random statistics (``informative_init``) the backbone is so ill-conditioned that float32
    rounding alone moves its scores by 1e-4 (the same eager model run at batch 1 and 2 differed
    by 7.5e-3 in logits); measured statistics keep activations near unit scale, as in a trained
    network, where the two runs differ by 7e-6 in score and the comparison tests our pipeline.
    """
    tv = _seeded_ssdlite320()
    batch, _ = preprocess(photos, (320, 320), "torchvision")
    for module in tv.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the batch
    tv.backbone.train()
    with torch.no_grad():
        tv.backbone((batch - 0.5) / 0.5)  # SSDLite normalises with mean 0.5, std 0.5
        for module in tv.head.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.mul_(10.0)  # undo informative_init's 0.1: scores up to ~0.9
    return tv.eval()


@pytest.mark.parametrize("name", sorted(PHOTO_SCORES))
def test_ssd_detect_on_real_photos_gives_torchvisions_detections(name, real_photos, tmp_path):
    tv = _seeded_ssd300_vgg16() if name == "ssd300_vgg16" else _photo_ssdlite320([read_image(p) for p in real_photos])
    weights = tmp_path / f"{name}.pth"
    torch.save(tv.state_dict(), weights)
    out, score = tmp_path / "out", PHOTO_SCORES[name]
    # torchvision's own NMS settings for this model (SSDLite: IoU 0.55, 300 detections)
    settings = ["--score", str(score), "--iou", str(tv.nms_thresh), "--max-det", str(tv.detections_per_img), "--pre-nms-topk", "0"]
    assert detect_main([*map(str, real_photos), "--model", str(weights), *settings, "--out", str(out)]) == 0
    records = {json.loads(path.read_text())["image"]: json.loads(path.read_text()) for path in out.glob("*.json")}
    assert sorted(records) == sorted(map(str, real_photos))

    expected, actual, sizes = [], [], []
    for photo in real_photos:
        bgr = read_image(photo)
        sizes.append(bgr.shape[:2])
        assert sizes[-1] not in ((300, 300), (320, 320))  # every photo is resized
        rgb = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1).float() / 255
        with torch.no_grad():
            target = tv([rgb])[0]
        keep = target["scores"] > score
        expected.append((target["boxes"][keep].numpy(), target["scores"][keep].numpy(), target["labels"][keep].numpy()))
        found = records[str(photo)]["detections"]
        actual.append((np.array([d["box_xyxy"] for d in found]).reshape(-1, 4), np.array([d["score"] for d in found]), np.array([d["label"] for d in found])))
    capacity = 1 + max(len(scores) for _, scores, _ in expected + actual)  # no image is full
    comparison = compare_detections(
        _padded(expected, sizes, capacity), _padded(actual, sizes, capacity), PHOTO_TOLERANCES, score, tv.nms_thresh
    )
    assert comparison.ok, comparison.problems[:5]
    total = sum(len(scores) for _, scores, _ in expected)
    assert total >= 100 and comparison.matched >= 0.99 * total, comparison.summary()  # excuses are rare

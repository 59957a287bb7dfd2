"""Custom detectors: prior layouts written as data on any backbone (the fastai lesson's 4x4 / 2x2 /
1x1 grids with 3 zooms x 3 ratios), the sigmoid focal loss, and that such models export and run
like the presets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torchvision.ops import sigmoid_focal_loss

from ssd_deploy.errors import ConfigError
from ssd_deploy.loss import LossConfig, MultiBoxLoss
from ssd_deploy.models import build_model
from ssd_deploy.models.custom import custom_config, load_prior_file, zoom_ratio_sizes
from ssd_deploy.postprocess import decode_predictions

FASTAI = """\
backbone: ssdlite_mobilenet_v2
input_size: [224, 224]
feature_maps: [[4, 4], [2, 2], [1, 1]]
zooms: [0.7, 1.0, 1.3]
ratios: [[1.0, 1.0], [1.0, 0.5], [0.5, 1.0]]
"""


@pytest.fixture()
def fastai_file(tmp_path):
    path = tmp_path / "fastai.yaml"
    path.write_text(FASTAI)
    return path


def test_fastai_layout_priors(fastai_file):
    layout = load_prior_file(fastai_file)
    config = custom_config(layout, num_classes=6)
    # MobileNetV2 at 224 gives maps 14, 7, 4, 2, 1, 1: the 4x4 / 2x2 / 1x1 grids are maps 2, 3, 4.
    assert config.feature_indices == (2, 3, 4)
    model = build_model(config)
    # 9 priors per cell on 16 + 4 + 1 cells, as in the lesson (k = 9, 189 anchors).
    assert model.priors.shape == (189, 4)
    # The lesson's sizes: zoom * ratio / grid; e.g. the first cell of the 4x4 grid.
    expected = [(z * rw / 4, z * rh / 4) for z in (0.7, 1.0, 1.3) for rw, rh in ((1, 1), (1, 0.5), (0.5, 1))]
    assert torch.allclose(model.priors[:9, 2:], torch.tensor(expected), atol=1e-7)
    assert torch.allclose(model.priors[:9, :2], torch.full((9, 2), 0.125))
    assert torch.allclose(model.priors[-1], torch.tensor([0.5, 0.5, 0.65, 1.0]))  # zoom 1.3 x (0.5, 1), h clipped to 1
    # The unused last extra block is gone (DistributedDataParallel rejects parameters without gradients).
    assert len(model.backbone.extra) == 3
    loc, logits = model(torch.rand(2, 3, 224, 224))
    assert loc.shape == (2, 189, 4) and logits.shape == (2, 189, 6)
    loc.sum().add(logits.sum()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_zoom_ratio_sizes_rectangular_grid():
    sizes = zoom_ratio_sizes([(2, 4)], [1.0], [(1.0, 0.5)])
    assert sizes == (((0.25, 0.25),),)  # w = 1 * 1 / 4, h = 1 * 0.5 / 2


def test_paper_rule_on_other_backbone(tmp_path):
    path = tmp_path / "small.json"
    path.write_text(json.dumps({
        "backbone": "ssd300_resnet50", "input_size": [128, 128], "feature_maps": [[4, 4], [2, 2]],
        "scales": [0.3, 0.6, 0.9], "aspect_ratios": [[2.0], []],
    }))
    config = custom_config(load_prior_file(path), num_classes=3)
    model = build_model(config)
    # 4 priors per cell on the 4x4 map (1, extra, 2, 1/2), 2 on the 2x2 map.
    assert model.num_priors == 16 * 4 + 4 * 2
    assert model(torch.rand(1, 3, 128, 128))[0].shape == (1, 72, 4)


@pytest.mark.parametrize(
    "text, message",
    [
        (FASTAI.replace("[[4, 4], [2, 2], [1, 1]]", "[[5, 5], [1, 1]]"), r"not, in order, among the backbone's maps \(0: 14x14, 1: 7x7, 2: 4x4"),
        (FASTAI + "scales: [0.1, 0.2]\n", "exactly one of zooms"),
        (FASTAI + "anchors: 3\n", "unknown keys \\['anchors'\\]"),
        (FASTAI.replace("backbone: ssdlite_mobilenet_v2\n", ""), "missing 'backbone'"),
        ("backbone: [unclosed", "not valid YAML"),
    ],
    ids=["maps-not-in-backbone", "two-ways", "unknown-key", "no-backbone", "bad-yaml"],
)
def test_bad_prior_files(tmp_path, text, message):
    path = tmp_path / "priors.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        custom_config(load_prior_file(path), num_classes=3)


def test_focal_loss_equals_torchvision_sigmoid_focal_loss():
    torch.manual_seed(0)
    priors = torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.75, 0.75, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    loss = MultiBoxLoss(priors, LossConfig(classification="focal"))
    loc, logits = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    targets = [
        {"boxes": torch.tensor([[0.0, 0.0, 0.5, 0.5]]), "labels": torch.tensor([2])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    out = loss(loc, logits, targets)
    # Image 0: prior 0 matches class 2 (IoU 1); everything else is background (all-zero targets).
    one_hot = torch.zeros(2, 3, 3)
    one_hot[0, 0, 1] = 1.0
    expected = sigmoid_focal_loss(logits[..., 1:], one_hot, alpha=0.25, gamma=2.0, reduction="sum") / 1.0
    assert out["cls"].item() == pytest.approx(expected.item(), rel=1e-6)
    # No hard negative mining: every prior contributes, so the background logit is unused.
    logits2 = logits.clone()
    logits2[..., 0] += 5.0
    assert loss(loc, logits2, targets)["cls"].item() == pytest.approx(out["cls"].item(), rel=1e-6)


def test_sigmoid_models_score_with_sigmoid_and_start_at_prior_probability(fastai_file):
    config = custom_config(load_prior_file(fastai_file), num_classes=4, score_function="sigmoid")
    model = build_model(config)
    model.head.init_sigmoid_bias(0.01)
    model.eval()
    loc, logits = model(torch.zeros(1, 3, 224, 224))
    _, scores = decode_predictions(loc, logits, model.priors, sigmoid=True)
    assert torch.all(scores[..., 0] == 0)
    assert torch.allclose(scores[..., 1:], torch.sigmoid(logits[..., 1:]))
    # RetinaNet's initialisation: every class score starts near 0.01 (the head's weights are small).
    assert abs(scores[..., 1:].mean().item() - 0.01) < 0.005


def test_custom_focal_model_exports_and_runs_like_presets(fastai_file, tmp_path):
    """A custom sigmoid-scored model exports to ONNX and ONNX Runtime gives PyTorch's detections."""
    pytest.importorskip("onnxruntime")
    from helpers import informative_init

    from ssd_deploy.export import ExportOptions, export_model
    from ssd_deploy.runtimes import load
    from ssd_deploy.runtimes.detector import Detector
    from ssd_deploy.runtimes.pytorch import PyTorchRunner
    from ssd_deploy.data.shapes import render_scene

    config = custom_config(load_prior_file(fastai_file), num_classes=6, score_function="sigmoid")
    model = informative_init(build_model(config), seed=1)
    onnx_path = tmp_path / "custom.onnx"
    result = export_model(model, onnx_path, ExportOptions(format="onnx", dynamic_batch=True))
    assert result.verification is not None and result.verification.ok and result.verification.matched > 0
    rng = np.random.default_rng(0)
    images = [render_scene(rng, (200, 260)).image for _ in range(3)]
    expected = Detector(PyTorchRunner(model, ["__background__"] + [f"c{i}" for i in range(1, 6)])).detect(images)
    actual = load(onnx_path).detect(images)
    for got, want in zip(actual, expected):
        assert len(got) == len(want) > 0
        assert np.array_equal(got.labels, want.labels)
        assert np.abs(got.scores - want.scores).max() <= 1e-5
        assert np.abs(got.boxes - want.boxes).max() <= 1e-2  # pixels
    assert math.isclose(float(actual[0].scores.max()), float(expected[0].scores.max()), rel_tol=1e-5)


# --- Any torchvision classification network as the backbone (torchvision.models.feature_extraction)

RESNET34_FASTAI = """\
backbone: resnet34
input_size: [224, 224]
feature_maps: [[4, 4], [2, 2], [1, 1]]
zooms: [0.7, 1.0, 1.3]
ratios: [[1.0, 1.0], [1.0, 0.5], [0.5, 1.0]]
"""


@pytest.mark.parametrize(
    "name, taps",
    [
        ("resnet34", ("layer2.3.relu_1", "layer3.5.relu_1", "layer4.2.relu_1")),
        # Not layer3.0.relu: the 1x1 conv opening layer3 still runs at stride 8.
        ("resnet50", ("layer2.3.relu_2", "layer3.5.relu_2", "layer4.2.relu_2")),
        ("mobilenet_v3_large", ("features.6.add", "features.12.add", "features.16")),
        ("efficientnet_b0", ("features.3.1.add", "features.5.2.add", "features.8")),
    ],
)
def test_default_taps_are_the_stage_outputs_at_strides_8_16_32(name, taps):
    from ssd_deploy.models.tapped import default_taps

    assert default_taps(name) == taps


def test_tapped_maps_equal_torchvision_feature_extractor_with_imagenet_weights(tmp_path):
    """ImageNet weights of the classifier load key for key; the maps are torchvision's own."""
    import torchvision
    from torchvision.models.feature_extraction import create_feature_extractor

    from ssd_deploy.models import create_model

    torch.manual_seed(0)
    classifier = torchvision.models.resnet18(weights=None).eval()
    weights = tmp_path / "resnet18-imagenet.pth"
    torch.save(classifier.state_dict(), weights)
    model = create_model("resnet18", backbone_weights=weights, num_classes=5).eval()
    assert model.config.taps == ("layer2.1.relu_1", "layer3.1.relu_1", "layer4.1.relu_1")
    reference = create_feature_extractor(classifier, return_nodes=list(model.config.taps))
    x = torch.rand(2, 3, 300, 300)
    with torch.no_grad():
        got = model.backbone(x)
        want = list(reference(x).values())
    # The same modules run the same float32 kernels on the same input: equal bit for bit.
    for a, b in zip(got, want):
        assert torch.equal(a, b)
    assert [tuple(f.shape[-2:]) for f in got] == [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (2, 2)]
    assert model.backbone.out_channels == (128, 256, 512, 512, 256, 256)


def test_fastai_lesson_on_resnet34_with_named_taps(tmp_path):
    """The lesson's grids on ResNet34: modules as taps, the 4x4 / 2x2 / 1x1 maps from the extras."""
    path = tmp_path / "resnet34.yaml"
    path.write_text(RESNET34_FASTAI + "taps: [layer2, layer3, layer4]\n")
    config = custom_config(load_prior_file(path), num_classes=21)
    assert config.arch == "resnet34" and config.taps == ("layer2", "layer3", "layer4")
    # ResNet34 at 224: 28, 14, 7 tapped, then 4, 2, 1 from the extra blocks.
    assert config.feature_indices == (3, 4, 5)
    model = build_model(config)
    assert model.priors.shape == (189, 4)
    loc, logits = model(torch.rand(2, 3, 224, 224))  # training mode: BatchNorm needs 2 images at 1x1
    assert loc.shape == (2, 189, 4) and logits.shape == (2, 189, 21)


def test_tapped_model_checkpoint_export_and_onnx_runtime(tmp_path):
    """A tapped classifier saves, reloads (taps in the config) and runs in ONNX Runtime as in PyTorch."""
    pytest.importorskip("onnxruntime")
    from helpers import informative_init

    from ssd_deploy.checkpoint import load_checkpoint, save_checkpoint
    from ssd_deploy.export import ExportOptions, export_model, read_metadata
    from ssd_deploy.models import create_model

    model = informative_init(create_model("resnet18", num_classes=4, input_size=(160, 160)), seed=2).eval()
    checkpoint = tmp_path / "resnet18.pt"
    save_checkpoint(checkpoint, model, class_names=["__background__", "a", "b", "c"])
    reloaded = load_checkpoint(checkpoint)[0].eval()
    assert reloaded.config == model.config
    x = torch.rand(1, 3, 160, 160)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(reloaded(x), model(x)))
    onnx_path = tmp_path / "resnet18.onnx"
    result = export_model(reloaded, onnx_path, ExportOptions(format="onnx"))
    assert result.verification is not None and result.verification.ok
    assert read_metadata(onnx_path).model_config["taps"] == list(model.config.taps)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: build_model(custom_config(load_prior_file_text("backbone: resnet_34\n"), 3)), "not a torchvision classification|unknown"),
        (lambda: __import__("ssd_deploy.models", fromlist=["x"]).create_model("resnet18", taps=["layer9"]), r"taps \['layer9'\] are neither graph nodes"),
        (lambda: __import__("ssd_deploy.models", fromlist=["x"]).create_model("ssd300_vgg16", taps=["features.22"]), "taps are for torchvision classification networks"),
        (lambda: __import__("ssd_deploy.models", fromlist=["x"]).create_model("squeezenet1_0"), "no feature map at output stride 32. Note: name the taps"),
    ],
    ids=["unknown-network", "unknown-tap", "taps-on-preset", "no-stride-32"],
)
def test_bad_tapped_backbones(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def load_prior_file_text(head: str):
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "priors.yaml"
    path.write_text(head + "input_size: [224, 224]\nfeature_maps: [[7, 7]]\nscales: [0.2, 0.5]\n")
    return load_prior_file(path)

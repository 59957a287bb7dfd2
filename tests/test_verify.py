"""``ssd-export --verify`` accepts every flagship model and still rejects real defects.

Tolerances of a float32 file are derived from the model's own float32 rounding (PyTorch float32
against float64, see ``ssd_deploy.compare.float32_tolerances``). The models here have spread
random weights, chosen per architecture so that scores are distinct and not saturated at 1.0 (ties
make NMS order arbitrary and any comparison meaningless): ``informative_init`` (random BatchNorm
statistics: an ill-conditioned network whose rounding is large, as the issue measured on
MobileNetV3) for SSDLite and our VGG16; measured BatchNorm statistics and small head weights for
ResNet-50 (50 layers of random statistics saturate every score); torchvision's own initialisation
with small head weights for torchvision's VGG16, as in tests/test_torchvision_parity.py. A verifier loose enough for them
must still reject each planted defect: a wrong IoU threshold in the graph, labels shifted by one
class, boxes moved by one pixel, a dropped detection.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.detection import ssd300_vgg16, ssdlite320_mobilenet_v3_large

from helpers import informative_init
from ssd_deploy.compare import FP32_TOLERANCES, MAX_BOX_PIXELS, Tolerances, float32_tolerances, verify
from ssd_deploy.export import ExportOptions, export_model
from ssd_deploy.export.graph import GraphSpec
from ssd_deploy.export.verify import sample_batch
from ssd_deploy.models import create_model, list_architectures
from ssd_deploy.postprocess import PostprocessConfig
from ssd_deploy.runtimes.exported import load_function

POST = PostprocessConfig()
TORCHVISION = {"ssd300_vgg16": ssd300_vgg16, "ssdlite320_mobilenet_v3_large": ssdlite320_mobilenet_v3_large}


def _small_head(model: nn.Module, std: float = 0.01) -> nn.Module:
    for module in model.head.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, std=std)
            nn.init.zeros_(module.bias)
    return model.eval()


def _measured_batchnorm(model: nn.Module) -> nn.Module:
    """BatchNorm statistics averaged over generated scenes, as training would measure them."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average
    model.train()
    with torch.no_grad():
        model(sample_batch(model.config.input_size, 8, seed=99))
    return model.eval()


def _torchvision_weights(name: str, folder) -> object:
    torch.manual_seed(0)
    model = TORCHVISION[name](weights=None, weights_backbone=None, num_classes=91)
    model = _small_head(model) if name == "ssd300_vgg16" else informative_init(model)
    path = folder / f"{name}.pth"
    torch.save(model.state_dict(), path)
    return path


def _spread_model(arch: str) -> nn.Module:
    torch.manual_seed(0)
    model = create_model(arch, num_classes=91)
    return _small_head(_measured_batchnorm(model)) if arch == "ssd300_resnet50" else informative_init(model)


@pytest.fixture(scope="module")
def ssdlite_v3(tmp_path_factory):
    """SSDLite-MobileNetV3 (91 classes, spread weights) and its ONNX export, shared by two tests."""
    model = _spread_model("ssdlite_mobilenet_v3")
    return model, export_model(model, tmp_path_factory.mktemp("verify") / "model.onnx", ExportOptions(format="onnx", dynamic_batch=True))


@pytest.mark.parametrize("name", [*list_architectures(), *[f"torchvision:{n}" for n in TORCHVISION]])
def test_flagship_models_export_with_default_verification(name, tmp_path, request):
    if name == "ssdlite_mobilenet_v3":
        result = request.getfixturevalue("ssdlite_v3")[1]
    else:
        source = _torchvision_weights(name.split(":", 1)[1], tmp_path) if name.startswith("torchvision:") else _spread_model(name)
        result = export_model(source, tmp_path / "model.onnx", ExportOptions(format="onnx", dynamic_batch=True))
    comparison = result.verification
    assert comparison.ok, comparison.problems[:3]
    assert comparison.matched >= 100, comparison.summary()  # not vacuous: many detections compared
    # The tolerances are the model's own: never looser than a quarter pixel for boxes.
    height, width = result.metadata.input_size
    assert FP32_TOLERANCES.score_atol <= comparison.tolerances.score_atol <= 1e-2
    assert comparison.tolerances.box_atol <= max(FP32_TOLERANCES.box_atol, MAX_BOX_PIXELS / max(height, width))
    assert "float32 rounding" in comparison.tolerances.basis


def test_tolerances_follow_the_models_conditioning():
    """A well-conditioned network gets the fixed floor; an ill-conditioned one a looser bound."""
    size = (128, 128)
    batches = [sample_batch(size, 2)]
    calm = create_model("ssdlite_mobilenet_v2", num_classes=6, input_size=size).eval()  # torchvision's init: tiny activations
    wild = informative_init(create_model("ssdlite_mobilenet_v3", num_classes=6, input_size=size))
    calm_tol, wild_tol = (float32_tolerances(m, m.priors, batches) for m in (calm, wild))
    assert (calm_tol.score_atol, calm_tol.box_atol) == (FP32_TOLERANCES.score_atol, FP32_TOLERANCES.box_atol)
    assert wild_tol.score_atol > calm_tol.score_atol


@pytest.fixture(scope="module")
def exported(ssdlite_v3):
    """The SSDLite-MobileNetV3 export, its eager graph, verification batches other than the
    export's, and the tolerances verification derived for it."""
    model, result = ssdlite_v3
    assert result.verification.ok
    spec = GraphSpec(model.priors, model.config.input_size, True, POST, None)
    batches = [sample_batch(model.config.input_size, 3, seed=3), sample_batch(model.config.input_size, 2, seed=4)]
    run = load_function(result.path)
    return model, spec, batches, run, result.verification.tolerances


def _shift_labels(outputs):
    count, boxes, scores, labels = outputs
    return count, boxes, scores, torch.where(labels > 0, labels % 90 + 1, labels)


def _move_boxes_one_pixel(outputs, width):
    count, boxes, scores, labels = outputs
    return count, boxes + torch.tensor([1.0, 0.0, 1.0, 0.0]) / width, scores, labels


def _drop_best_detection(outputs):
    count, boxes, scores, labels = (t.clone() for t in outputs)
    n = int(count[0])
    boxes[0, : n - 1], scores[0, : n - 1], labels[0, : n - 1] = boxes[0, 1:n].clone(), scores[0, 1:n].clone(), labels[0, 1:n].clone()
    boxes[0, n - 1], scores[0, n - 1], labels[0, n - 1] = 0, 0, 0
    count[0] = n - 1
    return count, boxes, scores, labels


def test_planted_defects_are_rejected_with_what_differs(exported):
    model, spec, batches, run, tolerances = exported
    width = model.config.input_size[1]

    def check(candidate, post=POST):
        return verify(spec.build(model), candidate, batches, True, tolerances, post.score_threshold, post.iou_threshold)

    control = check(run)
    assert control.ok and control.matched >= 100, control.summary()
    wrong_iou = GraphSpec(model.priors, model.config.input_size, True, PostprocessConfig(iou_threshold=0.6), None).build(model)
    planted = {
        "wrong IoU threshold": (lambda batch: wrong_iou(batch), "has no match"),
        "labels shifted by one class": (lambda batch: _shift_labels(run(batch)), "instead of"),
        "boxes one pixel right": (lambda batch: _move_boxes_one_pixel(run(batch), width), "IoU"),
        "best detection dropped": (lambda batch: _drop_best_detection(run(batch)), "reference detection"),
    }
    for defect, (candidate, says) in planted.items():
        comparison = check(candidate)
        assert not comparison.ok, f"{defect}: accepted ({comparison.summary()})"
        assert any(says in problem for problem in comparison.problems), f"{defect}: {comparison.problems[:2]}"


def test_a_score_difference_is_named_as_such():
    """The same detection with a score off by more than the tolerance is reported with its IoU and
    score difference, not as a missing detection."""
    from ssd_deploy.compare import compare_detections

    count = torch.tensor([1], dtype=torch.int32)  # one detection, one padding row
    boxes = torch.tensor([[[0.1, 0.1, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]]])
    labels = torch.tensor([[70, 0]], dtype=torch.int32)
    reference = (count, boxes, torch.tensor([[0.843746, 0.0]]), labels)
    other = (count, boxes.clone(), torch.tensor([[0.843800, 0.0]]), labels)
    comparison = compare_detections(reference, other, Tolerances(score_atol=1e-5), 0.01, 0.45)
    assert not comparison.ok
    assert "IoU" not in comparison.problems[0] and "score differs by 5.40e-05 > 1.0e-05" in comparison.problems[0]
    assert compare_detections(reference, other, Tolerances(score_atol=1e-4), 0.01, 0.45).ok

"""Every registered architecture: output shapes, sizes and class counts, configs, ImageNet backbones."""

from __future__ import annotations

import dataclasses
import json
from functools import partial

import pytest
import torch
import torchvision
from torch import nn

from ssd_deploy.errors import ConfigError
from ssd_deploy.models import (
    ModelConfig,
    build_model,
    create_model,
    feature_map_sizes,
    list_architectures,
    make_config,
)
from ssd_deploy.priors import generate_priors, paper_ssd300_priors

ARCHS = list_architectures()
SLOW_BACKBONES = {"ssd300_vgg16", "ssd300_resnet50"}  # need >= ~150 px; MobileNets run at 32


def test_registry_lists_the_presets():
    assert set(ARCHS) >= {"ssd300_vgg16", "ssd300_resnet50", "ssdlite_mobilenet_v3", "ssdlite_mobilenet_v2"}
    assert ARCHS == sorted(ARCHS)


def _assert_outputs(model, outputs, batch: int, num_classes: int) -> None:
    assert isinstance(outputs, tuple) and len(outputs) == 2
    loc, logits = outputs
    num_priors = model.priors.shape[0]
    assert num_priors == model.config.priors.num_priors() == model.num_priors
    assert loc.shape == (batch, num_priors, 4)
    assert logits.shape == (batch, num_priors, num_classes)
    assert loc.dtype == logits.dtype == torch.float32
    assert torch.isfinite(loc).all() and torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_default_model_output_shapes(arch):
    model = create_model(arch).eval()
    config = model.config
    assert config.num_classes == 21
    assert config.priors.feature_maps == feature_map_sizes(arch, config.input_size)
    assert torch.equal(model.priors, generate_priors(config.priors, config.input_size))
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, *config.input_size))
    _assert_outputs(model, outputs, batch=1, num_classes=21)


@pytest.mark.parametrize("arch", ARCHS)
def test_custom_classes_and_non_square_input_size(arch):
    size = (320, 416)  # height != width catches swapped axes
    model = create_model(arch, num_classes=7, input_size=size).eval()
    assert model.config.input_size == size and model.config.num_classes == 7
    maps = model.config.priors.feature_maps
    assert maps == feature_map_sizes(arch, size)
    assert maps[0][1] > maps[0][0]  # wider than tall, like the input
    default_priors = make_config(arch).priors.num_priors()
    assert model.num_priors != default_priors
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, *size))
    _assert_outputs(model, outputs, batch=1, num_classes=7)


@pytest.mark.parametrize("arch", ARCHS)
def test_train_and_eval_forward_return_the_same_kind_of_output(arch):
    model = create_model(arch, num_classes=3)
    images = torch.rand(2, 3, *model.config.input_size)  # batch 2: BatchNorm in training needs > 1 value
    with torch.no_grad():
        trained = model.train()(images)
        evaluated = model.eval()(images)
    _assert_outputs(model, trained, batch=2, num_classes=3)
    _assert_outputs(model, evaluated, batch=2, num_classes=3)
    assert type(trained) is type(evaluated)


def test_unknown_arch_raises_config_error_with_suggestion():
    with pytest.raises(ConfigError, match="Did you mean ssd300_vgg16"):
        make_config("ssd300_vgg")
    with pytest.raises(ConfigError, match="unknown"):
        create_model("yolo")


@pytest.mark.parametrize(
    "arch, size",
    [(arch, (128, 128)) for arch in sorted(SLOW_BACKBONES)] + [(arch, (16, 16)) for arch in ARCHS],
)
def test_too_small_input_raises_config_error(arch, size):
    with pytest.raises(ConfigError, match="too small|>= 32"):
        make_config(arch, input_size=size)


def test_bad_config_values_raise_config_error():
    with pytest.raises(ConfigError, match="background"):
        make_config("ssdlite_mobilenet_v3", num_classes=1)
    with pytest.raises(ConfigError, match="prior style"):
        make_config("ssdlite_mobilenet_v3", priors="nonexistent")
    # A prior config for other feature maps than the backbone's (paper: 38x38 first, SSDLite: 20x20).
    with pytest.raises(ConfigError, match="feature maps"):
        make_config("ssdlite_mobilenet_v3", priors=paper_ssd300_priors())
    config = make_config("ssdlite_mobilenet_v3")
    with pytest.raises(ConfigError):
        build_model(dataclasses.replace(config, priors=dataclasses.replace(config.priors, feature_maps=((2, 2),), scales=(0.2, 1.0), aspect_ratios=((2.0,),))))


@pytest.mark.parametrize("arch", ARCHS)
def test_model_config_dict_round_trip(arch):
    config = make_config(arch, num_classes=5, reduced_tail=arch == "ssdlite_mobilenet_v3")
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_model_config_from_malformed_dict_raises_config_error():
    data = make_config("ssdlite_mobilenet_v2").to_dict()
    del data["num_classes"]
    with pytest.raises(ConfigError, match="missing or malformed"):
        ModelConfig.from_dict(data)


# ImageNet backbone weights, from a local file written here (nothing is downloaded). Small
# tensors are perturbed so that biases and BatchNorm statistics differ from a fresh model's.

SSDLITE_NORM = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)  # torchvision's SSDLite BatchNorm
IMAGENET_NETS = {
    "ssd300_vgg16": lambda: torchvision.models.vgg16(weights=None),
    "ssd300_resnet50": lambda: torchvision.models.resnet50(weights=None),
    "ssdlite_mobilenet_v3": lambda: torchvision.models.mobilenet_v3_large(weights=None, norm_layer=SSDLITE_NORM),
    "ssdlite_mobilenet_v2": lambda: torchvision.models.mobilenet_v2(weights=None, norm_layer=SSDLITE_NORM),
}


def _imagenet_file(arch: str, tmp_path):
    torch.manual_seed(0)
    net = IMAGENET_NETS[arch]().eval()
    state_dict = net.state_dict()
    with torch.no_grad():
        for value in state_dict.values():
            if value.is_floating_point() and value.numel() < 5_000_000:  # all but VGG's classifier
                value.add_(0.1 * torch.rand_like(value))  # positive: running_var stays valid
    path = tmp_path / f"{arch}-imagenet.pth"
    torch.save(state_dict, path)
    return net, state_dict, path


def test_every_arch_has_an_imagenet_source():
    assert set(IMAGENET_NETS) == set(ARCHS)


@pytest.mark.parametrize("arch", ARCHS)
def test_backbone_imagenet_weights_load_from_local_file(arch, tmp_path):
    net, source, path = _imagenet_file(arch, tmp_path)
    fresh = create_model(arch).backbone.state_dict()
    model = create_model(arch, backbone_weights=path).eval()
    backbone = model.backbone
    ours = backbone.state_dict()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))

    if arch == "ssd300_vgg16":
        # torchvision vgg16.features: 0 ... 22 up to conv4_3's ReLU, 23 pool4, 24 ... 29 conv5.
        pairs = {f"conv4_3.{i}.{p}": f"features.{i}.{p}" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21) for p in ("weight", "bias")}
        pairs.update({f"conv7.{i - 23}.{p}": f"features.{i}.{p}" for i in (24, 26, 28) for p in ("weight", "bias")})
        with torch.no_grad():  # 64 px: pool3 sees an even 8x8, so its ceil mode changes nothing
            assert torch.equal(backbone.conv4_3(x), net.features[:23](x))
    elif arch == "ssd300_resnet50":
        pairs = {k: k for k in ours if not k.startswith("additional.")}
        assert len(pairs) == len([k for k in source if not k.startswith(("layer4.", "fc."))])

        def up_to_layer2(m):
            return m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x))))))

        with torch.no_grad():
            assert torch.equal(up_to_layer2(backbone), up_to_layer2(net))
    else:
        # C4 block split after its expansion layer: our features.0 ends with it, features.1.0 holds
        # the rest of the block under its original indices (1 = depthwise conv).
        c4, last = backbone.c4_index, len(net.features) - 1
        inner = "block" if arch == "ssdlite_mobilenet_v3" else "conv"
        pairs = {
            "features.0.0.0.weight": "features.0.0.weight",  # first conv
            f"features.0.{c4}.0.weight": f"features.{c4}.{inner}.0.0.weight",  # C4 expansion
            "features.1.0.1.0.weight": f"features.{c4}.{inner}.1.0.weight",  # C4 depthwise
            f"features.1.{last - c4}.0.weight": f"features.{last}.0.weight",  # last conv
        }
        with torch.no_grad():
            expansion = getattr(net.features[c4], inner)[0](net.features[:c4](x))
            assert torch.equal(backbone.features[0](x), expansion)
            assert torch.equal(backbone.features[1](backbone.features[0](x)), net.features(x))

    for ours_key, source_key in pairs.items():
        assert torch.equal(ours[ours_key], source[source_key]), ours_key
        if source[source_key].is_floating_point():  # not num_batches_tracked
            assert not torch.equal(fresh[ours_key], source[source_key]), ours_key  # loading changed it

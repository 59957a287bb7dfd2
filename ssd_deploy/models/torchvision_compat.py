"""Load torchvision's SSD checkpoints (``ssd300_vgg16``, ``ssdlite320_mobilenet_v3_large``) into
ssd-deploy models.

The networks are the same; only module names differ. This module maps the names and builds the
matching :class:`ModelConfig` (torchvision's priors, normalisation, class count, and its resize of
the float image, so that every runtime gives torchvision's own detections on images of any size).
"""

from __future__ import annotations

import dataclasses
import re

from torch import Tensor

from ..errors import ConfigError
from .config import ModelConfig
from .registry import TORCHVISION_VGG_MEAN, TORCHVISION_VGG_STD, build_model, make_config
from .ssd import SSD

TORCHVISION_ARCHS = {"ssd300_vgg16": "ssd300_vgg16", "ssdlite320_mobilenet_v3_large": "ssdlite_mobilenet_v3"}


def torchvision_config(name: str, num_classes: int = 91, reduced_tail: bool = False) -> ModelConfig:
    """The config of torchvision's ``name`` model (91 COCO classes by default, background included).

    ``reduced_tail`` must match how the torchvision SSDLite model was built: torchvision's COCO
    checkpoint uses ``False``; ``ssdlite320_mobilenet_v3_large(weights_backbone=None)`` uses ``True``.
    """
    if name not in TORCHVISION_ARCHS:
        raise ConfigError(f"torchvision model {name!r} is not supported. Note: supported: {sorted(TORCHVISION_ARCHS)}")
    arch = TORCHVISION_ARCHS[name]
    # torchvision's VGG backbone takes caffe-style 0..255 inputs; SSDLite's default (0.5, 0.5) fits.
    normalise = {"mean": TORCHVISION_VGG_MEAN, "std": TORCHVISION_VGG_STD} if arch == "ssd300_vgg16" else {}
    config = make_config(arch, num_classes=num_classes, priors="torchvision", reduced_tail=reduced_tail, **normalise)
    return dataclasses.replace(config, resize="torchvision")


def is_torchvision_state_dict(state_dict: dict[str, object]) -> bool:
    """Whether keys look like torchvision's SSD (``backbone.*`` and ``head.classification_head.*``)."""
    return any(k.startswith("head.classification_head.") for k in state_dict)


def detect_torchvision_arch(state_dict: dict[str, Tensor]) -> str:
    """``ssd300_vgg16`` or ``ssdlite320_mobilenet_v3_large``, from the keys of a torchvision state dict."""
    if "backbone.scale_weight" in state_dict:
        return "ssd300_vgg16"
    if any(k.startswith("backbone.features.1.") for k in state_dict):
        return "ssdlite320_mobilenet_v3_large"
    raise ConfigError("state dict: not a torchvision ssd300_vgg16 or ssdlite320_mobilenet_v3_large checkpoint")


def _rename(key: str, name: str) -> str:
    key = re.sub(r"^head\.classification_head\.module_list\.", "head.classification.predictors.", key)
    key = re.sub(r"^head\.regression_head\.module_list\.", "head.regression.predictors.", key)
    if name != "ssd300_vgg16" or not key.startswith("backbone."):
        return key  # SSDLite backbones share torchvision's layout
    if key == "backbone.scale_weight":
        return "backbone.conv4_3_norm.weight"
    key = re.sub(r"^backbone\.features\.", "backbone.conv4_3.", key)
    # extra.0 = pool4 + conv5 (7 modules) then the fc6/fc7 Sequential at index 7.
    match = re.match(r"^backbone\.extra\.0\.7\.(\d+)\.(.*)$", key)
    if match:
        return f"backbone.conv7.{7 + int(match.group(1))}.{match.group(2)}"
    match = re.match(r"^backbone\.extra\.0\.(\d+)\.(.*)$", key)
    if match:
        return f"backbone.conv7.{match.group(1)}.{match.group(2)}"
    match = re.match(r"^backbone\.extra\.(\d+)\.(.*)$", key)
    if match:
        return f"backbone.extras.{int(match.group(1)) - 1}.{match.group(2)}"
    return key


def convert_torchvision_state_dict(state_dict: dict[str, Tensor], name: str) -> dict[str, Tensor]:
    """Rename the keys of torchvision ``name``'s state dict to ssd-deploy's."""
    return {_rename(k, name): v for k, v in state_dict.items()}


def from_torchvision_state_dict(state_dict: dict[str, Tensor]) -> SSD:
    """Build an ssd-deploy model holding the weights of a torchvision SSD state dict.

    The architecture, class count and MobileNetV3 tail are read from the tensors.
    """
    name = detect_torchvision_arch(state_dict)
    converted = convert_torchvision_state_dict(state_dict, name)
    last_cls = max(
        (k for k in converted if re.match(r"head\.classification\.predictors\.\d+\..*weight$", k)),
        key=lambda k: (int(k.split(".")[3]), k),
    )
    reg_key = last_cls.replace("classification", "regression")
    num_classes = converted[last_cls].shape[0] * 4 // converted[reg_key].shape[0]
    reduced_tail = False
    if name == "ssdlite320_mobilenet_v3_large":
        reduced_tail = converted["backbone.extra.0.0.0.weight"].shape[1] != 960
    model = build_model(torchvision_config(name, num_classes=num_classes, reduced_tail=reduced_tail))
    model.load_state_dict(converted)
    return model

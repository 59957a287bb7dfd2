"""Build the detector a training configuration describes."""

from __future__ import annotations

from ..errors import ConfigError
from ..models import SSD, build_model, make_config
from ..models.config import ModelConfig
from ..models.custom import custom_config, load_prior_file
from ..priors import PriorConfig
from .config import CUSTOM_ARCH, TrainConfig


def model_config(config: TrainConfig, num_classes: int) -> ModelConfig:
    """The :class:`ModelConfig` for ``config`` and a dataset of ``num_classes`` (background included).

    ``priors`` is a prior style of the preset (``paper``, ``torchvision``) or a prior file; a file
    with ``arch=custom`` also names the backbone and input size (:mod:`ssd_deploy.models.custom`).
    """
    score_function = "sigmoid" if config.loss == "focal" else "softmax"
    priors: str | PriorConfig | None = config.priors
    if config.arch == CUSTOM_ARCH or (priors is not None and priors.lower().endswith((".yaml", ".yml", ".json"))):
        layout = load_prior_file(priors)
        if config.arch != CUSTOM_ARCH and layout.backbone != config.arch:
            raise ConfigError(f"{priors}: prior file is for backbone {layout.backbone!r}, the run's arch is {config.arch!r}")
        if config.input_size is not None and tuple(config.input_size) != layout.input_size:
            raise ConfigError(f"{priors}: prior file is for input size {layout.input_size}, the run asks {tuple(config.input_size)}")
        return custom_config(layout, num_classes, score_function)
    return make_config(config.arch, num_classes=num_classes, input_size=config.input_size, priors=priors, score_function=score_function)


def build_training_model(config: TrainConfig, num_classes: int) -> SSD:
    """A fresh detector (ImageNet backbone weights from a local file if given; RetinaNet's score
    bias for focal-loss models)."""
    model = build_model(model_config(config, num_classes))
    if config.backbone_weights:
        from ..checkpoint import load_state_dict_file

        model.backbone.load_imagenet_state_dict(load_state_dict_file(config.backbone_weights))
    if config.loss == "focal":
        model.head.init_sigmoid_bias()
    return model

"""Checkpoints: written atomically, read without executing pickled code.

A checkpoint is a dict of plain data and tensors::

    {"format": "ssd-deploy-checkpoint", "format_version": 1, "ssd_deploy_version": "...",
     "model_config": {...}, "class_names": ["__background__", ...], "model": state_dict, ...}

Training adds optimiser, scheduler and epoch entries. torchvision's own SSD state dicts
(``ssd300_vgg16``, ``ssdlite320_mobilenet_v3_large``) are accepted wherever a checkpoint is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .version import __version__
from .errors import CheckpointError, SSDDeployError
from .files import atomic_write
from .models import SSD, ModelConfig, build_model
from .state_dict_file import first_line, load_state_dict_file

CHECKPOINT_FORMAT = "ssd-deploy-checkpoint"
CHECKPOINT_VERSION = 1
BACKGROUND_NAME = "__background__"

# load_state_dict_file lives in a lower module (the models package reads backbone weights with it
# without importing checkpoints) and stays importable from here for the callers that read both.
__all__ = [
    "BACKGROUND_NAME", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "coco_class_names", "default_class_names",
    "load_checkpoint", "load_state_dict_file", "save_checkpoint",
]


def default_class_names(num_classes: int) -> list[str]:
    """``["__background__", "class_1", ...]`` for a model trained without names."""
    return [BACKGROUND_NAME] + [f"class_{i}" for i in range(1, num_classes)]


def save_checkpoint(path: str | Path, model: SSD, class_names: list[str] | None = None, **extra: Any) -> Path:
    """Write ``model`` (config, class names and weights) plus ``extra`` entries atomically."""
    names = list(class_names) if class_names else default_class_names(model.config.num_classes)
    if len(names) != model.config.num_classes:
        raise SSDDeployError(
            f"save_checkpoint: {len(names)} class names for {model.config.num_classes} classes. "
            "Note: names include the background at index 0"
        )
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "ssd_deploy_version": __version__,
        "model_config": model.config.to_dict(),
        "class_names": names,
        "model": model.state_dict(),
        **extra,
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path, expected_arch: str | None = None) -> tuple[SSD, list[str], dict[str, Any]]:
    """Load a model from an ssd-deploy checkpoint or a torchvision SSD state dict.

    Args:
        path: checkpoint file.
        expected_arch: if given, the checkpoint must be for this architecture.

    Returns:
        (model in eval mode, class names with background at 0, the whole checkpoint dict).

    Raises:
        CheckpointError: missing, corrupt, unsafe, unknown kind, or weights that do not fit.
    """
    data = load_state_dict_file(path)
    if data.get("format") != CHECKPOINT_FORMAT:
        return _load_foreign(path, data, expected_arch)
    if int(data.get("format_version", 0)) > CHECKPOINT_VERSION:
        raise CheckpointError(
            path, f"checkpoint format version {data['format_version']} is newer than this ssd-deploy understands"
        )
    try:
        config = ModelConfig.from_dict(data["model_config"])
    except (KeyError, SSDDeployError) as error:
        raise CheckpointError(path, f"invalid model config: {error}") from None
    if expected_arch is not None and config.arch != expected_arch:
        raise CheckpointError(path, f"checkpoint is for architecture {config.arch!r}, not {expected_arch!r}")
    try:
        model = build_model(config)
    except SSDDeployError as error:
        raise CheckpointError(path, f"cannot build its model: {error}") from None
    _load_weights(path, model, data.get("model"))
    names = list(data.get("class_names") or default_class_names(config.num_classes))
    if len(names) != config.num_classes:
        raise CheckpointError(path, f"{len(names)} class names for {config.num_classes} classes")
    return model.eval(), names, data


def _load_foreign(path: str | Path, data: dict[str, Any], expected_arch: str | None) -> tuple[SSD, list[str], dict[str, Any]]:
    from .models.torchvision_compat import TORCHVISION_ARCHS, from_torchvision_state_dict, is_torchvision_state_dict

    state = data.get("model", data) if isinstance(data.get("model"), dict) else data
    if not is_torchvision_state_dict(state):
        raise CheckpointError(
            path,
            "not an ssd-deploy checkpoint (no 'format' entry) nor a torchvision SSD state dict. "
            "Note: create one with ssd-train or ssd_deploy.checkpoint.save_checkpoint",
        )
    try:
        model = from_torchvision_state_dict(state)
    except (SSDDeployError, RuntimeError, KeyError, ValueError) as error:
        raise CheckpointError(path, f"torchvision state dict does not fit its architecture: {first_line(error)}") from None
    if expected_arch is not None and model.config.arch != expected_arch and TORCHVISION_ARCHS.get(expected_arch) != model.config.arch:
        raise CheckpointError(path, f"checkpoint is for architecture {model.config.arch!r}, not {expected_arch!r}")
    return model.eval(), coco_class_names(model.config.num_classes), data


def coco_class_names(num_classes: int) -> list[str]:
    """torchvision's 91 COCO category names (with ``__background__`` and ``N/A`` gaps), if they fit."""
    from torchvision.models.detection import SSD300_VGG16_Weights

    names = list(SSD300_VGG16_Weights.COCO_V1.meta["categories"])
    return names if len(names) == num_classes else default_class_names(num_classes)


def _load_weights(path: str | Path, model: SSD, state: Any) -> None:
    if not isinstance(state, dict):
        raise CheckpointError(path, "no model weights ('model' entry missing)")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(
            path, f"weights do not fit architecture {model.config.arch!r}: {first_line(error, 2)}"
        ) from None

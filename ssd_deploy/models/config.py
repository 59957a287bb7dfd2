"""The serialisable description of a detector: everything needed to rebuild it from a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..resizing import DEFAULT_RESIZE, check_resize
from ..priors import PriorConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SCORE_FUNCTIONS = ("softmax", "sigmoid")


@dataclass(frozen=True)
class ModelConfig:
    """A detector's architecture and its input contract.

    Attributes:
        arch: registered architecture name (see :func:`ssd_deploy.models.list_architectures`).
        num_classes: number of classes *including* background at index 0.
        input_size: (height, width) the network runs at, in pixels.
        priors: prior layout; its feature maps match the backbone at ``input_size``.
        mean, std: per-channel RGB normalisation applied inside the model to inputs in [0, 1].
        reduced_tail: MobileNetV3 only: halve the last stage's channels (torchvision's choice
            when no ImageNet weights are used).
        feature_indices: which of the backbone's feature maps feed the head (custom prior
            layouts such as 4x4 / 2x2 / 1x1 grids); None: all of them, as in the presets.
        score_function: "softmax" over all classes (the paper's loss) or "sigmoid" per class
            (models trained with the focal loss); decoding applies it.
        resize: how images are resized to ``input_size`` before the network (see
            :mod:`ssd_deploy.pipeline`): ``opencv`` for models trained here, ``torchvision`` for
            torchvision's detection weights.
        taps: for an ``arch`` that is a torchvision classification network, the graph nodes
            whose outputs are the feature maps (:mod:`ssd_deploy.models.tapped`); None for presets.
    """

    arch: str
    num_classes: int
    input_size: tuple[int, int]
    priors: PriorConfig
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    reduced_tail: bool = False
    feature_indices: tuple[int, ...] | None = None
    score_function: str = "softmax"
    resize: str = DEFAULT_RESIZE
    taps: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        check_resize(self.resize, "ModelConfig")
        if self.num_classes < 2:
            raise ConfigError(
                f"ModelConfig: num_classes={self.num_classes}. Note: it counts background, so one "
                "object class needs num_classes=2."
            )
        if len(self.input_size) != 2 or min(self.input_size) < 32:
            raise ConfigError(f"ModelConfig: input_size={self.input_size}. Note: expected (height, width) >= 32.")
        if self.score_function not in SCORE_FUNCTIONS:
            raise ConfigError(f"ModelConfig: score_function={self.score_function!r}. Note: expected one of {SCORE_FUNCTIONS}")
        indices = self.feature_indices
        if indices is not None and (len(indices) != len(self.priors.feature_maps) or list(indices) != sorted(set(indices)) or min(indices) < 0):
            raise ConfigError(
                f"ModelConfig: feature_indices={indices}. Note: expected increasing backbone map indices, one per "
                f"prior feature map ({len(self.priors.feature_maps)})"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for checkpoints and exported metadata)."""
        return {
            "arch": self.arch,
            "num_classes": self.num_classes,
            "input_size": list(self.input_size),
            "priors": self.priors.to_dict(),
            "mean": list(self.mean),
            "std": list(self.std),
            "reduced_tail": self.reduced_tail,
            "feature_indices": None if self.feature_indices is None else list(self.feature_indices),
            "score_function": self.score_function,
            "resize": self.resize,
            "taps": None if self.taps is None else list(self.taps),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                arch=str(data["arch"]),
                num_classes=int(data["num_classes"]),
                input_size=(int(data["input_size"][0]), int(data["input_size"][1])),
                priors=PriorConfig.from_dict(data["priors"]),
                mean=tuple(float(v) for v in data["mean"]),
                std=tuple(float(v) for v in data["std"]),
                reduced_tail=bool(data.get("reduced_tail", False)),
                feature_indices=None if data.get("feature_indices") is None else tuple(int(i) for i in data["feature_indices"]),
                score_function=str(data.get("score_function", "softmax")),
                resize=str(data.get("resize", DEFAULT_RESIZE)),
                taps=None if data.get("taps") is None else tuple(str(t) for t in data["taps"]),
            )
        except (KeyError, TypeError, IndexError, ValueError) as error:
            raise ConfigError(f"model config: missing or malformed field ({error!r})") from error

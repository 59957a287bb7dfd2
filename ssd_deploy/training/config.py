"""The training configuration: one frozen dataclass, read from flags and/or a YAML/JSON file.

Precedence: built-in defaults < the config file (``ssd-train --config run.yaml``) < flags.
Keys of the file are the field names below (``batch_size``, ``lr``, ...).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..models.registry import list_architectures
from ..models.tapped import is_classifier
from .budget import parse_duration

CUSTOM_ARCH = "custom"  # the backbone and priors come from a prior file (ssd_deploy.models.custom)
ARCHITECTURES = (*list_architectures(), CUSTOM_ARCH)
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("multistep", "cosine", "constant")
DATA_FORMATS = ("auto", "voc", "coco", "csv")
CLASSIFICATION_LOSSES = ("softmax", "focal")
SHAPES = "shapes"  # --data shapes: generate (or reuse) the synthetic shapes dataset


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. Sizes in pixels, learning rates per image batch.

    The SGD defaults are the SSD paper's (lr 1e-3, momentum 0.9, weight decay 5e-4, biases at
    twice the learning rate without weight decay, as in the paper's Caffe solver).
    """

    # model
    arch: str = "ssdlite_mobilenet_v2"
    input_size: tuple[int, int] | None = None  # (height, width); None: the architecture's
    priors: str | None = None  # a prior style of the preset (paper/torchvision) or a prior file
    backbone_weights: str | None = None  # local torchvision ImageNet state dict; never downloaded
    loss: str = "softmax"  # softmax + hard negative mining (paper) or focal (sigmoid focal loss)
    # data
    data: str = SHAPES  # training set: VOC root, COCO json, Open Images CSV, or "shapes"
    val: str | None = None  # validation set (same kinds); with data=shapes a generated one
    data_format: str = "auto"
    train_split: str | None = None  # VOC image-set name (trainval, train, ...)
    val_split: str | None = None
    images_dir: str | None = None  # COCO/CSV image folder when not beside the annotations
    shapes_train: int = 800  # images generated for data=shapes
    shapes_val: int = 200
    skip_bad_data: bool = False
    keep_difficult: bool = False  # train on VOC 'difficult' objects too
    augment: bool = True
    # optimisation
    epochs: int = 12
    time: float | None = None  # hours: the most the run may take (Ultralytics' time=); it then plans the steps that fit (training.budget)
    batch_size: int = 16  # per process
    optimizer: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    bias_lr_factor: float = 2.0
    warmup_epochs: float = 1.0
    warmup_factor: float = 0.001  # learning rate at step 0, as a fraction of lr
    schedule: str = "multistep"
    milestones: tuple[float, ...] = (0.67, 0.83)  # fractions of the run (the paper, VOC07: 40k and 50k of 60k iterations)
    gamma: float = 0.1
    clip_grad_norm: float | None = None
    amp: bool | None = None  # mixed precision; None: on for CUDA
    channels_last: bool = True  # NHWC memory layout: measured 20% faster training steps on CPU
    # run
    device: str = "auto"  # auto: cuda if available, else cpu
    workers: int = 2
    cache_images: bool = False  # keep resized training images in memory after their first read (needs augment false, workers 0)
    seed: int = 0
    output: str = "runs/train"
    eval_every: int = 1  # epochs between validations (the last epoch is always validated)
    precise_bn_images: int = 512  # training images to recompute BatchNorm statistics with before validating (0: off)
    best_metric: str = "map50"  # map50 (VOC all-point AP@0.5), map50_voc07 or coco_ap
    progress: bool = True
    tensorboard: bool = True  # when the tensorboard package is installed

    def __post_init__(self) -> None:
        checks = [
            (self.arch in ARCHITECTURES or is_classifier(self.arch), f"arch {self.arch!r}. Note: expected one of {ARCHITECTURES} or a torchvision classification network (resnet34, efficientnet_b0, ...)"),
            (self.optimizer in OPTIMIZERS, f"optimizer {self.optimizer!r}. Note: expected one of {OPTIMIZERS}"),
            (self.schedule in SCHEDULES, f"schedule {self.schedule!r}. Note: expected one of {SCHEDULES}"),
            (self.data_format in DATA_FORMATS, f"data_format {self.data_format!r}. Note: expected one of {DATA_FORMATS}"),
            (self.loss in CLASSIFICATION_LOSSES, f"loss {self.loss!r}. Note: expected one of {CLASSIFICATION_LOSSES}"),
            (self.best_metric in ("map50", "map50_voc07", "coco_ap"), f"best_metric {self.best_metric!r}. Note: expected map50, map50_voc07 or coco_ap"),
            (self.epochs >= 1, f"epochs={self.epochs}. Note: at least 1"),
            (self.time is None or self.time > 0, f"time={self.time}. Note: hours, positive (or unset for no limit)"),
            (self.batch_size >= 1, f"batch_size={self.batch_size}. Note: at least 1"),
            (self.lr > 0, f"lr={self.lr}. Note: must be positive"),
            (self.workers >= 0, f"workers={self.workers}. Note: 0 loads data in the training process"),
            (not self.cache_images or not self.augment, "cache_images keeps resized images, so it needs augment false (augmentation differs every epoch)"),
            (not self.cache_images or self.workers == 0, f"cache_images needs workers 0 (workers={self.workers}: loader processes start empty every epoch)"),
            (self.arch != CUSTOM_ARCH or self.priors is not None, "arch custom needs priors: a prior file (YAML/JSON) naming its backbone"),
            (all(0 < m < 1 for m in self.milestones), f"milestones {self.milestones}. Note: fractions of the run in (0, 1)"),
        ]
        for ok, problem in checks:
            if not ok:
                raise ConfigError(f"training config: {problem}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (stored in checkpoints; ``from_dict`` reads it back)."""
        data = dataclasses.asdict(self)
        data["input_size"] = None if self.input_size is None else list(self.input_size)
        data["milestones"] = list(self.milestones)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "training config") -> TrainConfig:
        """Build from plain data; unknown keys are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            import difflib

            hints = [f"{k} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(k, names, 1)) else k for k in unknown]
            raise ConfigError(f"{source}: unknown settings {', '.join(hints)}")
        values = dict(data)
        if values.get("input_size") is not None:
            size = values["input_size"]
            values["input_size"] = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if isinstance(values.get("time"), str):  # a config file's "5m" or "1.5h", as the flag takes it
            values["time"] = parse_duration(values["time"])
        if "milestones" in values:
            values["milestones"] = tuple(float(m) for m in values["milestones"])
        try:
            return cls(**values)
        except TypeError as error:
            raise ConfigError(f"{source}: {error}") from None

    @classmethod
    def from_file(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
        """Read a YAML/JSON file of settings, then apply ``overrides`` (e.g. the flags given)."""
        from ..models.custom import read_structured_file

        data = read_structured_file(path)
        data.update(overrides or {})
        return cls.from_dict(data, source=str(path))

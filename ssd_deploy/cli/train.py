"""``ssd-train``: train an SSD detector on a VOC, COCO, Open Images CSV or generated shapes dataset."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from ..training.config import ARCHITECTURES, DATA_FORMATS, OPTIMIZERS, SCHEDULES, TrainConfig
from . import DEVICE_HELP, duration, run_cli
from .outputs import check_output_folder

DEFAULTS = TrainConfig()


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


# (flags, field, argparse keywords, help). Defaults come from TrainConfig; only flags given
# override the config file.
OPTIONS: list[tuple[tuple[str, ...], str, dict[str, Any], str]] = [
    (("--arch",), "arch", {"metavar": "ARCH"}, f"architecture: a preset ({', '.join(ARCHITECTURES[:-1])}), any torchvision classification network by name (resnet34, efficientnet_b0, ...: its stride 8/16/32 maps plus extra blocks), or custom: backbone and priors from a --priors file"),
    (("--input-size",), "input_size", {"type": int, "nargs": 2, "metavar": ("HEIGHT", "WIDTH")}, "network input in pixels (default: the architecture's, e.g. 300 or 320)"),
    (("--priors",), "priors", {}, "prior style of the preset (paper, torchvision) or a YAML/JSON prior file (own feature maps, scales, ratios)"),
    (("--backbone-weights",), "backbone_weights", {}, "local torchvision ImageNet state dict for the backbone (e.g. vgg16-397923af.pth); nothing is downloaded"),
    (("--loss",), "loss", {"choices": ("softmax", "focal")}, "classification loss: softmax with hard negative mining (the paper) or sigmoid focal loss"),
    (("--data",), "data", {}, "training set: VOC root, COCO .json, Open Images .csv, or 'shapes' to generate the synthetic dataset"),
    (("--val",), "val", {}, "validation set (same kinds); with --data shapes a generated one is used"),
    (("--data-format",), "data_format", {"choices": DATA_FORMATS}, "dataset layout; auto: from the path"),
    (("--train-split",), "train_split", {}, "VOC image-set of the training set (ImageSets/Main/<split>.txt; default: every annotation)"),
    (("--val-split",), "val_split", {}, "VOC image-set of the validation set"),
    (("--images-dir",), "images_dir", {}, "image folder of COCO/CSV annotations when the images are not beside them"),
    (("--shapes-train",), "shapes_train", {"type": int}, "images generated for --data shapes"),
    (("--shapes-val",), "shapes_val", {"type": int}, "validation images generated for --data shapes"),
    (("--skip-bad-data",), "skip_bad_data", {"action": "store_true", "default": None}, "skip unreadable images and bad boxes (reported with counts) instead of stopping"),
    (("--keep-difficult",), "keep_difficult", {"action": "store_true", "default": None}, "also train on objects marked difficult (VOC) or crowd (COCO)"),
    (("--augment",), "augment", {"type": _bool, "metavar": "BOOL"}, "the paper's augmentation (photometric, zoom-out, IoU crop, flip); false: resize only"),
    (("--epochs",), "epochs", {"type": int}, "number of epochs"),
    (("--time",), "time", {"type": duration, "metavar": "DURATION"}, "time limit of the whole run: 90s, 5m, 1.5h or a number of hours (Ultralytics' time=; 0: none). After its first epoch (or its first 30 steps, when one epoch would not fit) the run plans the steps that fit, leaving time for its last validation, and anneals the learning-rate schedule over them; --epochs stays the most it trains"),
    (("--batch-size",), "batch_size", {"type": int}, "images per step and process"),
    (("--optimizer",), "optimizer", {"choices": OPTIMIZERS}, "sgd (the paper's: momentum, doubled bias lr) or adamw"),
    (("--lr",), "lr", {"type": float}, "base learning rate (the paper: 1e-3 with SGD at batch 32)"),
    (("--momentum",), "momentum", {"type": float}, "SGD momentum"),
    (("--weight-decay",), "weight_decay", {"type": float}, "weight decay of the weights (not biases or norm layers)"),
    (("--bias-lr-factor",), "bias_lr_factor", {"type": float}, "SGD: biases learn this many times faster (the paper's lr_mult 2)"),
    (("--warmup-epochs",), "warmup_epochs", {"type": float}, "linear learning-rate warm-up, in epochs (may be fractional)"),
    (("--warmup-factor",), "warmup_factor", {"type": float}, "learning rate at the first step, as a fraction of --lr"),
    (("--schedule",), "schedule", {"choices": SCHEDULES}, "after warm-up: multistep (x gamma at each milestone), cosine or constant"),
    (("--milestones",), "milestones", {"type": float, "nargs": "+"}, "multistep milestones as fractions of the run"),
    (("--gamma",), "gamma", {"type": float}, "multistep factor"),
    (("--clip-grad-norm",), "clip_grad_norm", {"type": float}, "clip the gradient norm to this (off by default)"),
    (("--amp",), "amp", {"type": _bool, "metavar": "BOOL"}, "mixed precision (float16 autocast + gradient scaling); default: on for CUDA"),
    (("--channels-last",), "channels_last", {"type": _bool, "metavar": "BOOL"}, "NHWC memory layout for the network (faster convolutions on CPU and with AMP)"),
    (("--device",), "device", {}, DEVICE_HELP),
    (("--workers",), "workers", {"type": int}, "data-loading processes per training process (0: load in the training process)"),
    (("--cache-images",), "cache_images", {"type": _bool, "metavar": "BOOL"}, "keep the resized training images in memory after their first read (3 x H x W bytes each; needs --augment false and --workers 0)"),
    (("--seed",), "seed", {"type": int}, "random seed (model init, data order, augmentation)"),
    (("--output", "--out"), "output", {}, "run folder: last.pt, best.pt, log.csv, curves.png, tensorboard/"),
    (("--eval-every",), "eval_every", {"type": int}, "validate every N epochs (the last epoch always)"),
    (("--precise-bn-images",), "precise_bn_images", {"type": int}, "before validating, recompute BatchNorm statistics on this many training images (0: off)"),
    (("--best-metric",), "best_metric", {"choices": ("map50", "map50_voc07", "coco_ap")}, "validation metric that picks best.pt"),
    (("--progress",), "progress", {"type": _bool, "metavar": "BOOL"}, "progress bars"),
    (("--tensorboard",), "tensorboard", {"type": _bool, "metavar": "BOOL"}, "also log to <output>/tensorboard when the tensorboard package is installed"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssd-train",
        description="Train an SSD detector. Settings come from the defaults, then --config (YAML/JSON with the "
        "same names, underscores for dashes), then the flags given. Writes <output>/last.pt every epoch (and on "
        "Ctrl-C), best.pt for the best validation mAP, log.csv and curves.png. With no flags it trains "
        "SSDLite-MobileNetV2 on a generated shapes dataset. Multi-GPU / multi-node: torchrun --nproc_per_node N "
        "-m ssd_deploy.cli.train ...",
    )
    parser.add_argument("--config", help="YAML or JSON file of settings (flags override it)")
    parser.add_argument("--resume", help="continue the run saved in this last.pt exactly where it stopped (its settings are used; "
                        "only --epochs, --time, --workers, --device, --output, --progress, --tensorboard, --eval-every, --cache-images may change)")
    for flags, name, keywords, text in OPTIONS:
        default = getattr(DEFAULTS, name)
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        keywords = {"default": None, **keywords}
        if keywords.get("type") is _bool:  # --amp, --amp false and --no-amp alike, as in the other scripts
            keywords.update(nargs="?", const=True)
            parser.add_argument(f"--no-{flags[0][2:]}", dest=name, action="store_false", default=None, help=f"same as {flags[0]} false")
        parser.add_argument(*flags, dest=name, help=f"{text} (default: {shown})", **keywords)
    return parser


def config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, dict[str, Any]]:
    """The run's configuration and the settings the flags gave explicitly."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name, None) is not None}
    if "input_size" in given:
        given["input_size"] = tuple(given["input_size"])
    if "milestones" in given:
        given["milestones"] = tuple(given["milestones"])
    if args.config:
        return TrainConfig.from_file(args.config, given), given
    return TrainConfig.from_dict(given, source="ssd-train flags"), given


def main(argv: list[str] | None = None) -> int:
    from ..training.trainer import resume_config, train

    args = build_parser().parse_args(argv)
    config, given = config_from_args(args)
    if args.resume:
        config = resume_config(args.resume, given)
    check_output_folder(Path(config.output), "--output")
    result = train(config, resume=args.resume)
    return 130 if result.interrupted else 0


def entry_point() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":  # torchrun --nproc_per_node 2 -m ssd_deploy.cli.train ...
    entry_point()

"""``ssd-detect``: run a detector on images, write annotated pictures and JSON detections."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import cv2
import torch

from ..checkpoint import atomic_write, default_class_names, load_checkpoint
from ..data.shapes import CLASS_NAMES as SHAPE_NAMES
from ..deploy import DeployModule
from ..draw import draw_detections
from ..errors import ImageReadError, SSDDeployError
from ..images import list_images, read_image
from ..models import create_model, list_architectures
from ..pipeline import preprocess, to_detections
from ..postprocess import PostprocessConfig
from . import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssd-detect",
        description="Detect objects in images. Writes, per image, the picture with boxes drawn "
        "(<name>.jpg) and the detections as JSON (<name>.json) to --out, and prints a one-line summary.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders of images")
    source = parser.add_argument_group("model (one of --checkpoint or --arch)")
    source.add_argument(
        "--checkpoint",
        type=Path,
        help="ssd-deploy checkpoint (from ssd-train) or a torchvision ssd300_vgg16 / "
        "ssdlite320_mobilenet_v3_large state dict",
    )
    source.add_argument(
        "--arch",
        choices=list_architectures(),
        help="with --checkpoint: the architecture it must be for; alone: use an UNTRAINED model with "
        "random weights (to try the pipeline; its detections are meaningless)",
    )
    source.add_argument("--num-classes", type=int, default=6, help="classes incl. background for an untrained --arch model (6: the shapes dataset's names)")
    source.add_argument("--seed", type=int, default=0, help="random seed for an untrained --arch model")
    parser.add_argument("--score", type=float, default=0.3, help="minimum score of a reported detection")
    parser.add_argument("--iou", type=float, default=0.45, help="IoU threshold of the class-aware NMS")
    parser.add_argument("--max-det", type=int, default=200, help="maximum detections per image")
    parser.add_argument("--out", type=Path, default=Path("runs/detect"), help="output folder")
    parser.add_argument("--batch-size", type=int, default=8, help="images per network call")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, ...")
    return parser


def _load_model(args: argparse.Namespace):
    if args.checkpoint is not None:
        model, names, _ = load_checkpoint(args.checkpoint, expected_arch=args.arch)
        return model, names
    if args.arch is None:
        raise SSDDeployError("ssd-detect: give --checkpoint CKPT, or --arch NAME for an untrained model")
    torch.manual_seed(args.seed)
    print(f"note: --arch {args.arch} without --checkpoint: the model is untrained (random weights)", file=sys.stderr)
    names = list(SHAPE_NAMES) if args.num_classes == len(SHAPE_NAMES) else default_class_names(args.num_classes)
    return create_model(args.arch, num_classes=args.num_classes).eval(), names


def _device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SSDDeployError(f"--device {name}: CUDA is not available here (no NVIDIA GPU or driver found)")
    return device


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = _device(args.device)
    model, class_names = _load_model(args)
    postprocess = PostprocessConfig(score_threshold=args.score, iou_threshold=args.iou, max_detections=args.max_det)
    deploy = DeployModule(model, postprocess).to(device).eval()

    paths = [p for item in args.inputs for p in list_images(item)]
    if not paths:
        raise SSDDeployError(f"{', '.join(args.inputs)}: no images found")
    args.out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for start in range(0, len(paths), args.batch_size):
        loaded = []
        for path in paths[start : start + args.batch_size]:
            try:
                loaded.append((path, read_image(path)))
            except ImageReadError as error:
                print(f"error: {error}", file=sys.stderr)
                failures += 1
        if not loaded:
            continue
        batch, sizes = preprocess([image for _, image in loaded], model.config.input_size)
        with torch.inference_mode():
            outputs = deploy(batch.to(device))
        for (path, image), detections in zip(loaded, to_detections(*outputs, sizes, class_names)):
            stem = args.out / path.stem
            picture = draw_detections(image, detections)
            atomic_write(stem.with_suffix(".jpg"), lambda tmp: _imwrite(tmp, picture))
            record = {"image": str(path), "width": image.shape[1], "height": image.shape[0], **detections.to_dict()}
            atomic_write(stem.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
            counts = Counter(detections.names())
            summary = ", ".join(f"{n} {name}" for name, n in counts.most_common()) or "nothing"
            print(f"{path}: {len(detections)} detections ({summary}) -> {stem.with_suffix('.jpg')}")
    if failures:
        print(f"{failures} of {len(paths)} images failed", file=sys.stderr)
    return 1 if failures else 0


def _imwrite(path: Path, image) -> None:
    ok, encoded = cv2.imencode(".jpg", image)
    if not ok:
        raise SSDDeployError(f"{path}: OpenCV could not encode the annotated image")
    path.write_bytes(encoded.tobytes())


def entry_point() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    entry_point()

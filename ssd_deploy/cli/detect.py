"""``ssd-detect``: run a detector on images on any runtime; write annotated pictures and JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import torch

from ..checkpoint import default_class_names
from ..data.shapes import CLASS_NAMES as SHAPE_NAMES
from ..draw import draw_detections
from ..errors import ImageReadError, SSDDeployError
from ..files import atomic_write
from ..images import list_images, read_image, write_image
from ..models import create_model, list_architectures
from ..postprocess import DEFAULT_PRE_NMS_TOPK, PostprocessConfig
from ..runtimes import PRECISIONS, RUNTIMES, Detector, available, load, runtime_for_file
from ..runtimes.pytorch import PyTorchRunner
from . import PRE_NMS_TOPK_HELP, run_cli
from .outputs import check_output_folder, output_folder, result_names

DEFAULT_SCORE = 0.3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssd-detect",
        description="Detect objects in images with a checkpoint or an exported model, on any runtime. Writes, "
        "per image, the picture with boxes drawn (<name>.jpg) and the detections as JSON (<name>.json) to "
        "--out, and prints a one-line summary. <name> is the image's name without its suffix, or with it when "
        "two inputs share it (pic.tiff.jpg, pic.webp.jpg); a bad image gets one error line and the exit code is 1. --list-runtimes shows which runtimes work here.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("inputs", nargs="*", metavar="IMAGE_OR_DIR", help="image files and/or folders of images")
    parser.add_argument("--list-runtimes", action="store_true", help="print every runtime, whether it is usable here and why not, then exit")
    source = parser.add_argument_group("model (one of --model or --arch)")
    source.add_argument(
        "--model",
        "--checkpoint",
        dest="model",
        type=Path,
        help="a checkpoint (from ssd-train, or a torchvision ssd300_vgg16 / ssdlite320_mobilenet_v3_large state "
        "dict) or an exported file (.ts, .onnx, .pt2, TensorRT .engine, OpenVINO .xml)",
    )
    source.add_argument(
        "--arch",
        choices=list_architectures(),
        help="with a checkpoint: the architecture it must be for; alone: use an UNTRAINED model with "
        "random weights (to try the pipeline; its detections are meaningless)",
    )
    source.add_argument("--num-classes", type=int, default=6, help="classes incl. background for an untrained --arch model (6: the shapes dataset's names)")
    source.add_argument("--seed", type=int, default=0, help="random seed for an untrained --arch model")
    runtime = parser.add_argument_group("runtime")
    runtime.add_argument("--runtime", default="auto", choices=["auto", *RUNTIMES], help="auto: picked from the model file's kind")
    runtime.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...; OpenVINO also gpu, npu, auto")
    runtime.add_argument(
        "--precision", default="auto", choices=["auto", *PRECISIONS], help="network arithmetic where the runtime and file support it; auto: the file's (fp32 for a checkpoint)"
    )
    thresholds = parser.add_argument_group("post-processing (exported files have NMS built in: only a higher --score applies)")
    thresholds.add_argument(
        "--score", type=float, default=None, help=f"minimum score of a reported detection (default {DEFAULT_SCORE}, or an exported model's own threshold if higher)"
    )
    thresholds.add_argument("--iou", type=float, default=0.45, help="IoU threshold of the class-aware NMS (checkpoints only)")
    thresholds.add_argument("--max-det", type=int, default=200, help="maximum detections per image (checkpoints only)")
    thresholds.add_argument("--pre-nms-topk", type=int, default=DEFAULT_PRE_NMS_TOPK, help=PRE_NMS_TOPK_HELP + " (checkpoints only)")
    parser.add_argument("--out", type=Path, default=Path("runs/detect"), help="output folder (never an input is overwritten)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per network call (a fixed-batch file uses its own)")
    return parser


def print_runtimes() -> None:
    """The table of ``ssd_deploy.runtimes.available()``."""
    rows = [("runtime", "usable", "version", "devices / providers", "notes")]
    for name, status in available().items():
        rows.append((name, "yes" if status.usable else "no", status.version.split("-")[0] or "-", ", ".join(status.devices) or "-", status.reason or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])


def _detector(args: argparse.Namespace) -> Detector:
    postprocess = PostprocessConfig(score_threshold=DEFAULT_SCORE if args.score is None else args.score, iou_threshold=args.iou, max_detections=args.max_det, pre_nms_topk=args.pre_nms_topk)
    if args.model is None:
        if args.arch is None:
            raise SSDDeployError("ssd-detect: give --model FILE, or --arch NAME for an untrained model")
        torch.manual_seed(args.seed)
        print(f"note: --arch {args.arch} without --model: the model is untrained (random weights)", file=sys.stderr)
        names = list(SHAPE_NAMES) if args.num_classes == len(SHAPE_NAMES) else default_class_names(args.num_classes)
        model = create_model(args.arch, num_classes=args.num_classes)
        runner = PyTorchRunner(model, names, device=args.device, precision=args.precision, postprocess=postprocess)
        return Detector(runner, max_batch=args.batch_size)
    name = runtime_for_file(args.model) if args.runtime == "auto" else args.runtime
    options = {"postprocess": postprocess, "expected_arch": args.arch} if name == "pytorch" else {}
    detector = load(args.model, name, args.device, args.precision, max_batch=args.batch_size, **options)
    try:
        detector.set_min_score(max(DEFAULT_SCORE, detector.metadata.score_threshold) if args.score is None else args.score)
    except SSDDeployError:
        detector.close()
        raise
    if args.arch is not None and detector.metadata.arch != args.arch:
        detector.close()
        raise SSDDeployError(f"{args.model}: a model of architecture {detector.metadata.arch!r}, not {args.arch!r}")
    for note in detector.runner.notes:  # e.g. a precision this CPU runs in fp32
        print(f"note: {note}", file=sys.stderr)
    return detector


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_runtimes:
        print_runtimes()
        return 0
    if not args.inputs:
        raise SSDDeployError("ssd-detect: give images or folders to detect in (or --list-runtimes)")
    paths = list(dict.fromkeys(p for item in args.inputs for p in list_images(item)))  # each file once
    if not paths:
        raise SSDDeployError(f"{', '.join(args.inputs)}: no images found")
    check_output_folder(args.out)
    names = dict(zip(paths, result_names(paths, args.out)))
    detector = _detector(args)
    failures = 0
    with detector:
        output_folder(args.out)
        for start in range(0, len(paths), detector.batch_size):
            loaded = []
            for path in paths[start : start + detector.batch_size]:
                try:
                    loaded.append((path, read_image(path)))
                except ImageReadError as error:
                    print(f"error: {error}", file=sys.stderr)
                    failures += 1
            if loaded:
                for (path, image), detections in zip(loaded, detector.detect([image for _, image in loaded])):
                    _write_result(args.out / names[path], path, image, detections)
    if failures:
        print(f"{failures} of {len(paths)} images failed", file=sys.stderr)
    return 1 if failures else 0


def _write_result(stem: Path, path: Path, image, detections) -> None:
    """Write ``<stem>.jpg`` (the picture with boxes drawn) and ``<stem>.json`` for the image at ``path``."""
    picture_path, record_path = (stem.with_name(stem.name + suffix) for suffix in (".jpg", ".json"))  # stem may hold a dot
    write_image(picture_path, draw_detections(image, detections))
    record = {"image": str(path), "width": image.shape[1], "height": image.shape[0], **detections.to_dict()}
    atomic_write(record_path, lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    counts = Counter(detections.names())
    summary = ", ".join(f"{n} {name}" for name, n in counts.most_common()) or "nothing"
    print(f"{path}: {len(detections)} detections ({summary}) -> {picture_path}")


def entry_point() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    entry_point()

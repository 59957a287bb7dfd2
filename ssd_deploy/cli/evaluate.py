"""``ssd-eval``: VOC and COCO mAP of a checkpoint or exported model on a dataset, on any runtime."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..data.dataset import load_dataset
from ..draw import draw_detections
from ..evaluation import predict_dataset
from ..files import atomic_write
from ..images import read_image, write_image
from ..models.hub import resolve_model
from ..pipeline import DEFAULT_BATCH_SIZE
from ..postprocess import PostprocessConfig
from ..runtimes import PRECISIONS, RUNTIMES, load, runtime_for_file
from ..training.config import DATA_FORMATS
from ..devices import resolve_auto
from . import DEVICE_HELP, PRE_NMS_TOPK_HELP, add_device_flag, add_progress_flag, run_cli
from .outputs import check_output_folder, output_folder, result_names

PAPER = PostprocessConfig()  # score 0.01, NMS 0.45, top 200: the SSD paper's evaluation settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssd-eval",
        description="Evaluate a detector on a dataset: VOC07 11-point and VOC all-point mAP@0.5 (difficult objects "
        "ignored) and COCO AP@[.5:.95], AP50, AP75, APs/m/l (pycocotools). Prints the per-class table and writes "
        "<out>/metrics.json and a few images with detections drawn. Checkpoints are evaluated at the paper's settings "
        "(score 0.01, NMS 0.45, top 200); exported files with their own built-in thresholds.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", "--checkpoint", dest="model", type=Path, required=True,
                        help="checkpoint (ssd-train's last.pt/best.pt) or exported file (.ts, .onnx, .pt2, .engine, OpenVINO .xml); the names ssd300_vgg16 / ssdlite320_mobilenet_v3_large alone find torchvision's COCO weights in the torch hub cache")
    parser.add_argument("--data", required=True, help="dataset: VOC root, COCO .json, Open Images .csv (labels are mapped onto the model's class names)")
    parser.add_argument("--data-format", default="auto", choices=DATA_FORMATS, help="dataset layout; auto: from the path")
    parser.add_argument("--split", help="VOC image-set (ImageSets/Main/<split>.txt); default: every annotation")
    parser.add_argument("--images-dir", help="image folder of COCO/CSV annotations when not beside them")
    parser.add_argument("--skip-bad-data", action="store_true", help="skip unreadable images and bad boxes (counted) instead of stopping")
    parser.add_argument("--runtime", default="auto", choices=["auto", *RUNTIMES], help="auto: picked from the model file's kind")
    add_device_flag(parser, DEVICE_HELP + "; OpenVINO also gpu, npu (auto: cpu)")
    parser.add_argument("--precision", default="auto", choices=["auto", *PRECISIONS], help="network arithmetic where supported; auto: the file's")
    parser.add_argument("--score", type=float, default=PAPER.score_threshold, help="checkpoints: score threshold")
    parser.add_argument("--iou", type=float, default=PAPER.iou_threshold, help="checkpoints: NMS IoU threshold")
    parser.add_argument("--max-det", type=int, default=PAPER.max_detections, help="checkpoints: detections kept per image")
    parser.add_argument("--pre-nms-topk", type=int, default=PAPER.pre_nms_topk, help="checkpoints: " + PRE_NMS_TOPK_HELP)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="images per network call")
    parser.add_argument("--metrics", nargs="+", default=["voc07", "voc", "coco"], choices=["voc07", "voc", "coco"], help="metrics to compute")
    parser.add_argument("--out", "--output", dest="out", type=Path, default=Path("runs/eval"), help="output folder for metrics.json and drawn images")
    parser.add_argument("--draw", type=int, default=4, help="images to write with detections (score > 0.3) drawn")
    add_progress_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_output_folder(args.out)
    options = {}
    args.model = resolve_model(args.model)
    runtime = runtime_for_file(args.model) if args.runtime == "auto" else args.runtime
    if runtime == "pytorch":
        options["postprocess"] = PostprocessConfig(args.score, args.iou, args.max_det, pre_nms_topk=args.pre_nms_topk)
    detector = load(args.model, runtime=args.runtime, device=resolve_auto(args.device, runtime), precision=args.precision, max_batch=args.batch_size, **options)
    built_in = detector.metadata.score_threshold
    if built_in > PAPER.score_threshold:
        print(f"note: {args.model} drops detections scoring under {built_in} inside the model, so its mAP is lower than at "
              f"the paper's {PAPER.score_threshold}. Re-export with --score {PAPER.score_threshold} to evaluate it fully.", file=sys.stderr)
    dataset = load_dataset(args.data, args.data_format, split=args.split, class_names=detector.class_names,
                           images_dir=args.images_dir, skip_bad=args.skip_bad_data)
    predictions, ground_truths = predict_dataset(detector, dataset, args.batch_size, progress=args.progress)
    from ..evaluation import evaluate_detections

    result = evaluate_detections(predictions, ground_truths, detector.class_names, metrics=tuple(args.metrics))
    print(result.table())
    if dataset.report.summary():
        print(f"data: {dataset.report.summary()}")
    report = {"model": str(args.model), "runtime": detector.runner.name, "precision": detector.runner.precision,
              "data": str(args.data), "images": len(ground_truths), **result.to_dict()}
    output_folder(args.out)
    atomic_write(args.out / "metrics.json", lambda tmp: tmp.write_text(json.dumps(report, indent=2)))
    drawn = [Path(target["path"]) for target in ground_truths[: args.draw]]
    for path, name, prediction in zip(drawn, result_names(drawn, args.out, (".jpg",)), predictions):
        picture = draw_detections(read_image(path), prediction.above(0.3))
        write_image(args.out / f"{name}.jpg", picture)
    print(f"wrote {args.out / 'metrics.json'} and {len(drawn)} pictures to {args.out}")
    # Images that passed the load-time scan but failed to decode were left out without being asked to.
    return 1 if dataset.report.read_failures else 0


def entry_point() -> None:
    sys.exit(run_cli(main))

"""``ssd-bench``: latency of every runtime against torchvision's eager pipeline, and accuracy parity.

    ssd-bench latency model.pt [other.pt model.onnx ...]   # Markdown table; latency.md/.csv/.json/.png
    ssd-bench parity model.pt --data VOCdevkit/VOC2007     # mAP per runtime; parity.md/.json/.png; exit 1 beyond tolerance
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..bench.latency import LatencyConfig, run_latency
from ..bench.parity import DEFAULT_TOLERANCES, ParityConfig, run_parity
from ..calibration import DEFAULT_CALIBRATION_IMAGES, Calibration
from ..pipeline import DEFAULT_BATCH_SIZE
from ..postprocess import PostprocessConfig
from ..runtimes import PRECISIONS, RUNTIMES
from ..training.config import DATA_FORMATS
from ..devices import resolve_auto
from . import PRE_NMS_TOPK_HELP, add_device_flag, add_progress_flag, run_cli
from .outputs import check_output_folder

FORMATTER = argparse.ArgumentDefaultsHelpFormatter


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtimes", nargs="+", choices=list(RUNTIMES), metavar="RUNTIME",
                        help=f"runtimes to run ({', '.join(RUNTIMES)}); default: every runtime usable here, the others listed as "
                        "skipped with the reason. A named runtime that cannot run here is an error")
    parser.add_argument("--precisions", nargs="+", choices=list(PRECISIONS), metavar="PRECISION",
                        help=f"network precisions ({', '.join(PRECISIONS)}); default: every precision each runtime supports here "
                        "(CPU: pytorch fp32/bf16, torchscript/aotinductor fp32, onnxruntime fp32/int8, openvino fp32/bf16/fp16/int8 "
                        "as the CPU supports them). Combinations a runtime cannot run are listed as skipped")
    add_device_flag(parser)
    parser.add_argument("--threads", type=int, help="CPU threads for every runtime (torch, ONNX Runtime, OpenVINO); default: torch's "
                        "default, one per physical core")
    parser.add_argument("--calib", type=Path, help="INT8 calibration images (a folder, searched recursively); default: the benchmark's "
                        "own images (latency: --images or generated shapes; parity: the dataset's images)")
    parser.add_argument("--calib-images", type=int, default=DEFAULT_CALIBRATION_IMAGES, help="at most this many calibration images")
    parser.add_argument("--out", "--output", dest="out", type=Path, default=Path("runs/bench"), help="output folder for results; exported files are cached "
                        "in OUT/cache and reused by later runs")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG chart (it needs matplotlib)")
    parser.add_argument("--no-verify", action="store_true", help="do not check newly exported files against PyTorch (faster first run)")
    parser.add_argument("--export-jobs", type=int, default=2, help="on the CPU, export up to this many missing files at once, one "
                        "process each (at most one per core): AOTInductor compiles and ONNX exports are mostly single-threaded. "
                        "1: one at a time")
    add_progress_flag(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssd-bench", formatter_class=FORMATTER,
        description="Benchmark a detector: latency of every runtime against torchvision's eager pipeline (ssd-bench latency), "
        "and accuracy parity of every runtime against PyTorch FP32 (ssd-bench parity). See each command's --help.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{latency,parity}")

    latency = commands.add_parser(
        "latency", formatter_class=FORMATTER,
        help="end-to-end latency per runtime, precision and batch size, with the speed-up over torchvision's eager SSD",
        description="Time Detector.detect (pre-processing, network, post-processing) on original-size images for every "
        "runtime x precision x batch size: warm-up, then timed runs; median, p90, p99, images/s, and the split into "
        "pre-processing, network and post-processing (decode + NMS, measured against a network-only export). The "
        "baseline is torchvision's ssd300_vgg16 / ssdlite320_mobilenet_v3_large run eagerly with the same weights. "
        "Prints a Markdown table; writes OUT/latency.md, .csv, .json and .png.")
    latency.add_argument("models", nargs="*", type=Path, metavar="MODEL",
                         help="training checkpoints (every format the runtimes need is exported into OUT/cache) or exported "
                         "files (.onnx, .ts, .pt2, OpenVINO .xml, TensorRT .engine: run as they are, without the post-processing split)")
    latency.add_argument("--model", "--checkpoint", dest="model_options", action="append", type=Path, default=[], metavar="MODEL",
                         help="a model as an option (may be repeated), as the other scripts take it; same as a MODEL argument")
    latency.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8], help="images per detect() call")
    latency.add_argument("--warmup", type=int, default=10, help="untimed calls first (TorchScript's profiling executor needs several)")
    latency.add_argument("--iterations", type=int, default=50, help="timed calls per measurement")
    latency.add_argument("--max-seconds", type=float, default=60.0, help="stop a warm-up, and a measurement, after this long (at least 5 timed calls)")
    latency.add_argument("--images", type=Path, help="folder of images to detect on (any sizes); default: generated shapes scenes")
    latency.add_argument("--image-size", type=int, nargs=2, default=[480, 640], metavar=("HEIGHT", "WIDTH"),
                         help="size of the generated images (without --images)")
    defaults = PostprocessConfig()
    latency.add_argument("--score", type=float, default=defaults.score_threshold,
                         help="score threshold inside every exported graph, the pytorch runtime and the baseline (the paper's "
                         "evaluation setting by default; a deployment's higher threshold leaves NMS fewer candidates)")
    latency.add_argument("--topk", type=int, default=defaults.topk_candidates, help="candidates per class entering NMS (same places)")
    latency.add_argument("--pre-nms-topk", type=int, default=defaults.pre_nms_topk, help=PRE_NMS_TOPK_HELP + " (same places but the baseline, which has no such option)")
    latency.add_argument("--no-baseline", action="store_true", help="skip torchvision's eager pipeline")
    latency.add_argument("--no-split", action="store_true", help="skip the network-only runs (post-processing then = host part only)")
    _common(latency)

    parity = commands.add_parser(
        "parity", formatter_class=FORMATTER,
        help="mAP (VOC07, COCO AP) of every runtime and precision against PyTorch FP32; exit code 1 beyond tolerance",
        description="Evaluate PyTorch FP32 (the reference) and every runtime x precision on a dataset: mAP VOC07 and COCO "
        "AP in points (0-100), the difference from the reference, and the largest raw-output difference on a sample batch. "
        "Prints a Markdown table; writes OUT/parity.md, .json and .png. Exit code 1 when a difference exceeds its tolerance.")
    parity.add_argument("checkpoint", type=Path, nargs="?", help="training checkpoint (ssd-train's best.pt/last.pt)")
    parity.add_argument("--model", "--checkpoint", dest="model_option", type=Path, metavar="CHECKPOINT", help="the checkpoint as an "
                        "option, as the other scripts take it")
    parity.add_argument("--data", type=Path, help="VOC folder, COCO .json or Open Images .csv; default: generated shapes scenes "
                        "(for models trained on shapes)")
    parity.add_argument("--data-format", default="auto", choices=DATA_FORMATS, help="dataset layout; auto: from the path")
    parity.add_argument("--split", help="VOC image set (ImageSets/Main/<split>.txt); default: every annotation")
    parity.add_argument("--images-dir", type=Path, help="image folder of COCO/CSV annotations when not beside them")
    parity.add_argument("--skip-bad-data", action="store_true", help="skip unreadable images and bad boxes instead of stopping")
    parity.add_argument("--max-images", type=int, help="evaluate only the first N images")
    parity.add_argument("--shapes-images", type=int, default=100, help="generated images without --data")
    parity.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="images per network call")
    for precision, tolerance in DEFAULT_TOLERANCES.items():
        parity.add_argument(f"--tolerance-{precision}", type=float, default=tolerance,
                            help=f"largest allowed |difference| from PyTorch FP32 of a {precision} runtime, in mAP points (VOC07 and COCO AP)")
    _common(parity)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "latency":
        args.models = list(args.models) + list(args.model_options)
        if not args.models:
            parser.error("latency: give at least one MODEL (or --model MODEL)")
    else:
        if (args.checkpoint is None) == (args.model_option is None):
            parser.error("parity: give one CHECKPOINT (or --model CHECKPOINT)")
        args.checkpoint = args.checkpoint or args.model_option
    check_output_folder(args.out)
    return _latency(args) if args.command == "latency" else _parity(args)


def _latency(args: argparse.Namespace) -> int:
    config = LatencyConfig(
        runtimes=tuple(args.runtimes) if args.runtimes else None,
        precisions=tuple(args.precisions) if args.precisions else None,
        batch_sizes=tuple(args.batch_sizes), warmup=args.warmup, iterations=args.iterations, max_seconds=args.max_seconds,
        threads=args.threads, device=resolve_auto(args.device), images=args.images, image_size=tuple(args.image_size),
        calibration=Calibration(args.calib, args.calib_images), baseline=not args.no_baseline, split=not args.no_split,
        postprocess=PostprocessConfig(score_threshold=args.score, topk_candidates=args.topk, pre_nms_topk=args.pre_nms_topk),
        verify=not args.no_verify, export_jobs=args.export_jobs, progress=args.progress,
    )
    report = run_latency(args.models, config, args.out, on_progress=lambda partial: partial.write(args.out, plot=False))
    written = report.write(args.out, plot=not args.no_plot)
    print(report.markdown())
    print("wrote " + ", ".join(str(path) for path in written.values()))
    if report.failed:
        print(f"error: {len(report.failed)} runtime(s) failed (listed above)", file=sys.stderr)
    if report.unreadable_images:
        print(f"error: {len(report.unreadable_images)} of the --images could not be read and were left out (listed above)", file=sys.stderr)
    return 1 if report.failed or report.unreadable_images else 0


def _parity(args: argparse.Namespace) -> int:
    config = ParityConfig(
        runtimes=tuple(args.runtimes) if args.runtimes else None,
        precisions=tuple(args.precisions) if args.precisions else None,
        data=args.data, data_format=args.data_format, split=args.split, images_dir=args.images_dir,
        skip_bad_data=args.skip_bad_data, max_images=args.max_images, shapes_images=args.shapes_images,
        batch_size=args.batch_size, tolerances={p: getattr(args, f"tolerance_{p}") for p in DEFAULT_TOLERANCES},
        calibration=Calibration(args.calib, args.calib_images), device=resolve_auto(args.device), threads=args.threads,
        verify=not args.no_verify, export_jobs=args.export_jobs, progress=args.progress,
    )
    report = run_parity(args.checkpoint, config, args.out)
    written = report.write(args.out, plot=not args.no_plot)
    print(report.markdown())
    print("wrote " + ", ".join(str(path) for path in written.values()))
    for line in report.violations:
        print(f"error: {line}", file=sys.stderr)
    if report.failed:
        print(f"error: {len(report.failed)} runtime(s) failed (listed above)", file=sys.stderr)
    return 0 if report.ok else 1


def entry_point() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    entry_point()

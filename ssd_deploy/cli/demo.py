"""``ssd-demo``: the README's first command after set-up; train → evaluate → export → parity and
latency on every runtime → a report folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..demo import DEMO_TRAINING, DemoConfig, run_demo
from . import add_progress_flag, duration, run_cli

DEFAULTS = DemoConfig()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssd-demo",
        description=f"Generate the shapes dataset, train {DEMO_TRAINING['arch']} on it from scratch, evaluate it, export "
        "TorchScript and ONNX with NMS inside, measure mAP parity and latency on every runtime usable here, and write "
        "a report folder (README.md, report.json, plots, pictures). A second run reuses the dataset and a finished "
        "training run with the same settings (or resumes an interrupted one) and says so.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", "--output", dest="out", type=Path, default=DEFAULTS.out, help="demo folder: data/, train/, models/, bench/, report/")
    parser.add_argument("--train-images", type=int, default=DEFAULTS.train_images, help="generated training images (320 x 320)")
    parser.add_argument("--val-images", type=int, default=DEFAULTS.val_images, help="generated held-out images for mAP and parity")
    parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help="training epochs over the training images")
    parser.add_argument("--time", type=duration, default=f"{DEFAULTS.time * 60:g}m", metavar="DURATION",
                        help="the demo's time limit, set-up excluded: 90s, 8.5m, 1h or a number of hours; 0: none. Training "
                        "takes what is left after the data and the time the steps after it need on this machine; on a CPU "
                        "too slow for every epoch within it, it plans fewer steps and the report says how many")
    parser.add_argument("--runtimes", nargs="+", default=None, help="runtimes for parity and latency (default: every runtime usable here)")
    parser.add_argument("--precisions", nargs="+", default=None, help="precisions for parity and latency: fp32 fp16 bf16 int8 (default: every one a runtime supports here)")
    parser.add_argument("--latency-warmup", type=int, default=DEFAULTS.latency_warmup, help="untimed calls per runtime and batch size before timing")
    parser.add_argument("--latency-iterations", type=int, default=DEFAULTS.latency_iterations, help="timed calls per runtime and batch size")
    parser.add_argument("--threads", type=int, default=DEFAULTS.threads, help="CPU threads for training and every runtime (default: torch's, one per core)")
    parser.add_argument("--export-jobs", type=int, default=2, help="files exported at once, one process each "
                        "(AOTInductor compiles and ONNX exports are mostly single-threaded); 1: one at a time")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of the generated data and of training")
    add_progress_flag(parser, "progress bars (--no-progress: log lines only)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = DemoConfig(
        out=args.out, train_images=args.train_images, val_images=args.val_images, epochs=args.epochs, time=args.time,
        runtimes=tuple(args.runtimes) if args.runtimes else None,
        precisions=tuple(args.precisions) if args.precisions else None,
        latency_warmup=args.latency_warmup, latency_iterations=args.latency_iterations,
        threads=args.threads, export_jobs=args.export_jobs, seed=args.seed, progress=args.progress,
    )
    run_demo(config)
    return 0


def entry_point() -> None:
    sys.exit(run_cli(main))

"""Regenerate the README's latency tables for SSDLite-MobileNetV3 (320) and SSD300-VGG16, and check
the speed targets.

    python benchmarks/latency.py                      # trains both briefly on generated shapes first
    python benchmarks/latency.py --ssdlite runs/ssdlite/best.pt --vgg runs/vgg/best.pt
    python benchmarks/latency.py --ssdlite ~/.cache/torch/hub/checkpoints/ssdlite320_mobilenet_v3_large_coco-a79551df.pth

Checkpoints are ssd-train's (or torchvision's COCO state dicts, which load directly). Without
``--ssdlite``/``--vgg``, both models are trained here on generated shapes at their native sizes
(``--train-images``, one epoch; reused from ``OUT/models`` when present): nothing can be
downloaded here, and latency needs trained weights only for realistic score distributions
(how many candidates reach NMS). Runs ``ssd-bench latency`` (every runtime usable here, batch 1
and 8) into ``--out``, then checks, on one quiet machine and in one run:

- SSDLite: the fastest runtime's batch-1 end-to-end latency is at least 6x below torchvision's eager pipeline;
- SSD300-VGG16: at least 2x in FP32, and at least 4x with INT8 or BF16;
- post-processing (decode + NMS) is at most 10 % of end-to-end latency on every runtime.

Writes ``<out>/latency.md/.csv/.json/.png`` and ``<out>/targets.json``; exit code 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from ssd_deploy.bench import LatencyConfig, LatencyReport, run_latency
from ssd_deploy.checkpoint import atomic_write, load_checkpoint
from ssd_deploy.postprocess import PostprocessConfig

ARCHS = {"ssdlite": "ssdlite_mobilenet_v3", "vgg": "ssd300_vgg16"}
POST_SHARE = 0.10


def shapes_trained(key: str, out: Path, train_images: int) -> Path:
    """``ARCHS[key]`` at its native input size, trained one epoch on generated shapes (the demo's
    optimiser settings), or the checkpoint of an earlier run in ``out/models/KEY``."""
    from ssd_deploy.demo import DEMO_TRAINING
    from ssd_deploy.training import TrainConfig
    from ssd_deploy.training.trainer import train

    output = out / "models" / key
    named = out / "models" / f"{ARCHS[key]}-shapes.pt"  # the report names models by file name
    if named.is_file():
        print(f"{key}: reusing {named} (delete it to train again)")
        return named
    recipe = {**DEMO_TRAINING, "arch": ARCHS[key], "input_size": None, "eval_every": 1}
    config = TrainConfig(**recipe, data="shapes", shapes_train=train_images, shapes_val=100, epochs=1, output=str(output))
    result = train(config)
    if result.best_checkpoint is None:
        raise SystemExit(f"{output}: training wrote no best.pt")
    print(f"{key}: trained {train_images} images in {sum(r.get('epoch_s', 0.0) for r in result.history):.0f} s, mAP@0.5 {result.best_value:.3f}")
    shutil.copyfile(result.best_checkpoint, named)
    return named


def targets(report: LatencyReport, models: dict[str, str]) -> list[dict]:
    """One record per target: what was measured and whether it passed (None: not measurable)."""
    checks = []

    def best_speedup(model: str, precisions: tuple[str, ...] | None = None) -> tuple[float | None, str]:
        rows = [r for r in report.rows if r.model == model and r.batch == 1 and not r.baseline and r.speedup is not None
                and (precisions is None or r.precision in precisions)]
        best = max(rows, key=lambda r: r.speedup, default=None)
        return (None, "no row") if best is None else (best.speedup, best.label)

    if "ssdlite" in models:
        value, by = best_speedup(models["ssdlite"])
        checks.append({"target": "SSDLite batch-1 speed-up over torchvision eager >= 6x", "measured": value, "by": by, "passed": _at_least(value, 6.0)})
    if "vgg" in models:
        value, by = best_speedup(models["vgg"], ("fp32",))
        checks.append({"target": "SSD300-VGG16 batch-1 FP32 speed-up >= 2x", "measured": value, "by": by, "passed": _at_least(value, 2.0)})
        value, by = best_speedup(models["vgg"], ("int8", "bf16"))
        checks.append({"target": "SSD300-VGG16 batch-1 INT8/BF16 speed-up >= 4x", "measured": value, "by": by, "passed": _at_least(value, 4.0)})
    for row in report.rows:
        if not row.baseline:
            checks.append({"target": f"{row.model} {row.label} batch {row.batch}: post-processing <= 10 %",
                           "measured": row.post_share, "by": row.split, "passed": row.post_share <= POST_SHARE})
    return checks


def _at_least(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--ssdlite", type=Path, help="SSDLite-MobileNetV3 320 checkpoint (trained); default: train one here")
    parser.add_argument("--vgg", type=Path, help="SSD300-VGG16 checkpoint (trained); default: train one here")
    parser.add_argument("--train-images", type=int, default=800, help="generated images to train a missing checkpoint on (one epoch)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-latency"), help="output folder (exports cached in OUT/cache)")
    parser.add_argument("--runtimes", nargs="+", help="runtimes to measure (default: every one usable here)")
    parser.add_argument("--iterations", type=int, default=50, help="timed calls per measurement")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls first")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="stop a warm-up, and a measurement, after this long")
    parser.add_argument("--threads", type=int, help="CPU threads for every runtime; default: one per physical core")
    parser.add_argument("--images", type=Path, help="images to detect on; default: generated scenes")
    parser.add_argument("--calib", type=Path, help="INT8 calibration images (the training set's images)")
    parser.add_argument("--score", type=float, default=PostprocessConfig().score_threshold,
                        help="score threshold inside the graphs (default: the paper's evaluation setting)")
    parser.add_argument("--no-verify", action="store_true", help="do not check newly exported files against PyTorch")
    args = parser.parse_args()
    given = {key: path for key, path in (("ssdlite", args.ssdlite), ("vgg", args.vgg)) if path is not None}
    if not given:
        given = {key: shapes_trained(key, args.out, args.train_images) for key in ARCHS}
    for key, path in given.items():
        arch = load_checkpoint(path)[0].config.arch
        if arch != ARCHS[key]:
            parser.error(f"--{key} {path}: a {arch} checkpoint, expected {ARCHS[key]}")
    config = LatencyConfig(runtimes=tuple(args.runtimes) if args.runtimes else None, batch_sizes=(1, 8), warmup=args.warmup, iterations=args.iterations, threads=args.threads,
                           images=args.images, calibration=args.calib, max_seconds=args.max_seconds, verify=not args.no_verify,
                           postprocess=PostprocessConfig(score_threshold=args.score), export_jobs=2)
    report = run_latency(list(given.values()), config, args.out, on_progress=lambda partial: partial.write(args.out, plot=False))
    report.write(args.out)
    print(report.markdown())
    checks = targets(report, {key: path.name for key, path in given.items()})
    for check in checks:
        state = {True: "pass", False: "MISS", None: "n/a"}[check["passed"]]
        measured = "-" if check["measured"] is None else f"{check['measured']:.3g}"
        print(f"[{state}] {check['target']}: {measured} ({check['by']})")
    atomic_write(args.out / "targets.json", lambda tmp: tmp.write_text(json.dumps(checks, indent=2)))
    missed = [c for c in checks if c["passed"] is not True]
    return 1 if missed or report.failed else 0


if __name__ == "__main__":
    sys.exit(main())

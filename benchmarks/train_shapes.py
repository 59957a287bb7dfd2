"""Train SSDLite on a large generated shapes set towards mAP@0.5 >= 0.85 on held-out shapes, and
record training throughput (images/s) and peak memory.

    python benchmarks/train_shapes.py                       # the full run (38 min on 2 CPU cores: README, "Train")
    python benchmarks/train_shapes.py --epochs 2 --train-images 500   # a quick look

The recipe is the demo's (``ssd_deploy.demo.DEMO_TRAINING``: SSDLite-MobileNetV3 at 160 px from
scratch, AdamW 3e-3 with a cosine schedule, batch 8), run longer on twice as many images. Fresh
generated images do the work of augmentation here; ``--augment`` turns on the paper's recipe too.

Writes <output>/benchmark.json (settings, per-epoch log, best mAP, images/s, peak RSS / CUDA
memory, machine) beside the run's own last.pt, best.pt, log.csv and curves.png. Exit code 1 when
the target mAP is not reached.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

from ssd_deploy.bench.machine import machine_info
from ssd_deploy.demo import DEMO_TRAINING
from ssd_deploy.files import atomic_write
from ssd_deploy.training import TrainConfig
from ssd_deploy.training.trainer import train


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--arch", default=DEMO_TRAINING["arch"], help="architecture")
    parser.add_argument("--input-size", type=int, default=DEMO_TRAINING["input_size"][0], help="square network input in pixels")
    parser.add_argument("--train-images", type=int, default=12000, help="generated training images")
    parser.add_argument("--val-images", type=int, default=500, help="generated held-out images")
    parser.add_argument("--epochs", type=int, default=6, help="epochs")
    parser.add_argument("--batch-size", type=int, default=DEMO_TRAINING["batch_size"], help="batch size")
    parser.add_argument("--lr", type=float, default=DEMO_TRAINING["lr"], help="AdamW learning rate (cosine schedule)")
    parser.add_argument("--augment", action="store_true", help="the paper's augmentation (off: resize only, as in the demo)")
    parser.add_argument("--workers", type=int, default=DEMO_TRAINING["workers"], help="data-loading processes")
    parser.add_argument("--eval-every", type=int, default=2, help="validate every N epochs (and after the last)")
    parser.add_argument("--target", type=float, default=0.85, help="mAP@0.5 (VOC all-point) to reach")
    parser.add_argument("--output", default="runs/bench-train-shapes", help="run folder")
    args = parser.parse_args()
    config = TrainConfig(**{
        **DEMO_TRAINING, "arch": args.arch, "input_size": (args.input_size, args.input_size), "data": "shapes",
        "shapes_train": args.train_images, "shapes_val": args.val_images, "epochs": args.epochs, "batch_size": args.batch_size,
        "lr": args.lr, "augment": args.augment, "workers": args.workers, "output": args.output, "eval_every": args.eval_every,
        "cache_images": not args.augment and args.workers == 0,  # a fixed transform in the training process: decode each image once
    })
    started = time.perf_counter()
    result = train(config)
    seconds = time.perf_counter() - started
    rows = result.history
    images_per_s = [r["images_per_s"] for r in rows]
    report = {
        "settings": config.to_dict(),
        "machine": machine_info(),  # CPU model and flags, cores, GPUs, load average, library versions
        "best_map50": result.best_value,
        "target_map50": args.target,
        "reached": result.best_value is not None and result.best_value >= args.target,
        "training_images_per_s_median": sorted(images_per_s)[len(images_per_s) // 2] if images_per_s else None,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mib": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "wall_s": seconds,
        "epochs": rows,
    }
    path = Path(args.output) / "benchmark.json"
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(report, indent=2)))
    print(f"best mAP@0.5 {result.best_value} (target {args.target}); {report['training_images_per_s_median']:.1f} img/s; "
          f"peak RSS {report['peak_rss_mib']:.0f} MiB; {seconds / 60:.1f} min; wrote {path}")
    return 0 if report["reached"] else 1


if __name__ == "__main__":
    sys.exit(main())

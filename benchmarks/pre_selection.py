"""What the bounded pre-selection (``--pre-nms-topk``) changes on a trained model with 90 classes:
mAP (VOC07, VOC, COCO) and, image by image, whether the detections are the exact selection's.

    python benchmarks/pre_selection.py                       # train, then measure (about 17 min on 2 CPU cores)
    python benchmarks/pre_selection.py --checkpoint runs/bench-pre-selection/train/last.pt   # measure only

With ``pre_nms_topk`` K only an image's best K (prior, class) pairs enter NMS. The detections are
then always the first ones of the exact result (``--pre-nms-topk 0``), all of them unless fewer
than ``max_detections`` survive NMS among those K while more than K pairs pass the threshold; a
weak model with many classes at score 0.01 is where that happens. COCO weights and images cannot
be fetched here, so the model is SSDLite320-MobileNetV3 trained from scratch on generated shapes
scenes whose class is the shape and one of 18 hues (``generate_shapes_dataset(hues=18)``: 90
classes, neighbouring hues easily confused), at the paper's evaluation settings (score 0.01, NMS
0.45, 400 per class, 200 kept). Every K is evaluated on the same held-out images by the pytorch
runtime, which runs the same selection as the exported graphs.

Writes OUT/pre_selection.md and OUT/pre_selection.json (settings, machine, one row per K).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ssd_deploy.bench.machine import machine_info
from ssd_deploy.data.dataset import load_dataset
from ssd_deploy.data.shapes import ensure_shapes_dataset
from ssd_deploy.demo import DEMO_TRAINING
from ssd_deploy.evaluation import evaluate_detections, predict_dataset
from ssd_deploy.files import atomic_write
from ssd_deploy.postprocess import PostprocessConfig
from ssd_deploy.runtimes import load
from ssd_deploy.training import TrainConfig
from ssd_deploy.training.trainer import train

HUES = 18  # 5 shapes x 18 hues = 90 classes, as COCO's 90 (torchvision's 91 with the background)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", help="a trained checkpoint of the hue classes (skips training)")
    parser.add_argument("--input-size", type=int, default=320, help="square network input in pixels (320: SSDLite320's 3,234 priors)")
    parser.add_argument("--train-images", type=int, default=2000, help="generated training images")
    parser.add_argument("--val-images", type=int, default=300, help="generated held-out images")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs (the demo's recipe otherwise)")
    parser.add_argument("--pre-nms-topk", type=int, nargs="+", default=[0, 500, 1000, 2000], help="values to measure; 0 (exact) is always measured")
    parser.add_argument("--out", default="runs/bench-pre-selection", help="output folder")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bars")
    args = parser.parse_args()
    out = Path(args.out)
    train_dir = ensure_shapes_dataset(out / "data" / "train", args.train_images, seed=1, progress=args.progress, hues=HUES)
    val_dir = ensure_shapes_dataset(out / "data" / "val", args.val_images, seed=2, progress=args.progress, hues=HUES)
    checkpoint = Path(args.checkpoint) if args.checkpoint else _train(args, train_dir, val_dir, out / "train")
    rows, exact = [], None
    for k in sorted(set(args.pre_nms_topk) | {0}):
        detector = load(checkpoint, runtime="pytorch", postprocess=PostprocessConfig(pre_nms_topk=k))
        dataset = load_dataset(val_dir / "annotations.json", "coco", class_names=detector.class_names)
        predictions, ground_truths = predict_dataset(detector, dataset, 16, progress=args.progress, desc=f"pre_nms_topk {k}")
        result = evaluate_detections(predictions, ground_truths, detector.class_names, metrics=("voc07", "voc", "coco"))
        exact = predictions if k == 0 else exact
        rows.append({"pre_nms_topk": k, "map_voc07": result.map_voc07, "map_voc": result.map_voc, "coco_ap": result.coco.get("AP"),
                     "coco_ar100": result.coco.get("AR100"), **_against_exact(predictions, exact)})
    report = {"checkpoint": str(checkpoint), "images": len(exact), "classes": len(detector.class_names) - 1,
              "settings": vars(args), "machine": machine_info(), "rows": rows}
    table = _table(rows)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "pre_selection.md", lambda tmp: tmp.write_text(table + "\n"))
    atomic_write(out / "pre_selection.json", lambda tmp: tmp.write_text(json.dumps(report, indent=2)))
    print(f"wrote {out / 'pre_selection.md'} and {out / 'pre_selection.json'}")
    return 0


def _train(args: argparse.Namespace, train_dir: Path, val_dir: Path, run_dir: Path) -> Path:
    config = TrainConfig(**{
        **DEMO_TRAINING, "input_size": (args.input_size, args.input_size), "data": str(train_dir / "annotations.json"),
        "val": str(val_dir / "annotations.json"), "epochs": args.epochs, "eval_every": args.epochs, "output": str(run_dir),
        "progress": args.progress,
    })
    return train(config).last_checkpoint


def _against_exact(predictions: list, exact: list) -> dict[str, int]:
    """Images whose detections equal the exact selection's (boxes, scores, labels, bit for bit),
    images where they are a shorter prefix of it, and the detections those leave out."""
    identical = prefix = missing = 0
    for ours, theirs in zip(predictions, exact):
        a, b = _rows(ours), _rows(theirs)
        identical += int(np.array_equal(a, b))
        if len(a) < len(b) and np.array_equal(a, b[: len(a)]):
            prefix += 1
            missing += len(b) - len(a)
    return {"identical_images": identical, "shorter_prefix_images": prefix, "missing_detections": missing}


def _rows(detections) -> np.ndarray:
    return np.concatenate([np.asarray(detections.boxes, np.float64).reshape(-1, 4), np.asarray(detections.scores, np.float64)[:, None],
                           np.asarray(detections.labels, np.float64)[:, None]], axis=1)


def _table(rows: list[dict]) -> str:
    lines = ["| pre_nms_topk | mAP VOC07 | mAP VOC | COCO AP | COCO AR100 | images identical to exact | shorter (a prefix) | detections left out |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        name = "0 (exact)" if r["pre_nms_topk"] == 0 else str(r["pre_nms_topk"])
        lines.append(f"| {name} | {r['map_voc07']:.4f} | {r['map_voc']:.4f} | {r['coco_ap']:.4f} | {r['coco_ar100']:.4f} | "
                     f"{r['identical_images']} | {r['shorter_prefix_images']} | {r['missing_detections']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

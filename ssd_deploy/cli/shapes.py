"""``ssd-shapes``: generate the synthetic shapes dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..data.shapes import SHAPE_CLASSES, generate_shapes_dataset
from . import run_cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ssd-shapes",
        description=f"Generate images of coloured shapes ({', '.join(SHAPE_CLASSES)}) on noisy backgrounds "
        "as one dataset with VOC and COCO annotations of the same images: OUT/JPEGImages/*.png, "
        "OUT/Annotations/*.xml and OUT/ImageSets/Main/trainval.txt (VOC), OUT/annotations.json (COCO). "
        "Same seed, same files.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--num", type=int, default=100, help="number of images")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--size", type=int, nargs=2, default=(320, 320), metavar=("HEIGHT", "WIDTH"), help="image size in pixels")
    args = parser.parse_args(argv)
    root = generate_shapes_dataset(args.out, args.num, seed=args.seed, size=tuple(args.size))
    print(f"wrote {args.num} images to {root / 'JPEGImages'}, with VOC annotations ({root / 'Annotations'}, "
          f"{root / 'ImageSets' / 'Main' / 'trainval.txt'}) and COCO annotations ({root / 'annotations.json'})")
    return 0


def entry_point() -> None:
    sys.exit(run_cli(main))

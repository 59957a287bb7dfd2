"""Regenerate the README's parity tables: mAP of every runtime and precision against PyTorch FP32
for SSDLite-MobileNetV3 (320) and SSD300-VGG16.

    python benchmarks/parity.py --ssdlite runs/ssdlite/best.pt --vgg runs/vgg/best.pt \
        --data VOCdevkit/VOC2007 --split test

Checkpoints are ssd-train's (nothing is trained here). Runs ``ssd-bench parity`` for each into
``<out>/<ssdlite|vgg>/`` (parity.md/.json/.png) with the issue's tolerances (0.1 mAP point for
FP32 runtimes, 0.5 for FP16/BF16, 1.0 for INT8). Exit code 1 when any runtime exceeds its tolerance.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ssd_deploy.bench import ParityConfig, run_parity
from ssd_deploy.calibration import Calibration


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--ssdlite", type=Path, help="SSDLite-MobileNetV3 320 checkpoint (trained)")
    parser.add_argument("--vgg", type=Path, help="SSD300-VGG16 checkpoint (trained)")
    parser.add_argument("--data", type=Path, help="validation set: VOC folder, COCO .json, Open Images .csv; default: generated "
                        "shapes (for models trained on shapes)")
    parser.add_argument("--data-format", default="auto", help="voc, coco, csv or auto")
    parser.add_argument("--split", help="VOC image set, e.g. test")
    parser.add_argument("--max-images", type=int, help="evaluate only the first N images")
    parser.add_argument("--calib", type=Path, help="INT8 calibration images (default: the validation images)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-parity"), help="output folder")
    args = parser.parse_args()
    given = {key: path for key, path in (("ssdlite", args.ssdlite), ("vgg", args.vgg)) if path is not None}
    if not given:
        parser.error("give --ssdlite and/or --vgg checkpoints")
    failed = False
    for key, path in given.items():
        config = ParityConfig(data=args.data, data_format=args.data_format, split=args.split, max_images=args.max_images,
                              calibration=Calibration(args.calib), export_jobs=2)
        out = args.out / key
        report = run_parity(path, config, out)
        report.write(out)
        print(f"## {key}: {path}\n\n{report.markdown()}")
        for line in report.violations:
            print(f"error: {line}", file=sys.stderr)
        failed |= not report.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# The main job on an embedded default: set up .venv, generate sample images, run an (untrained)
# SSDLite-MobileNetV3 on them and write the annotated pictures and JSON to runs/quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=runs/quickstart
.venv/bin/ssd-shapes "$out/samples" --num 4 --seed 0
.venv/bin/ssd-detect "$out/samples/JPEGImages" --arch ssdlite_mobilenet_v3 --score 0.15 --max-det 20 --out "$out/detections"
.venv/bin/ssd-detect --list-runtimes
echo "quickstart: annotated pictures and JSON detections are in $out/detections/"

#!/usr/bin/env bash
# The main job on an embedded default: set up .venv (reused when up to date), then the demo:
# generate the shapes dataset, train SSDLite-MobileNetV3 on it, evaluate, export TorchScript and
# ONNX with NMS, measure parity and latency on every runtime usable here, and write runs/demo/report/.
# Extra arguments go to ssd-demo (see .venv/bin/ssd-demo --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ssd-demo "$@"

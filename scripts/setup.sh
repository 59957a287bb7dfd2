#!/usr/bin/env bash
# Create .venv and install ssd-deploy with exactly the versions CI tested (constraints.txt).
# Re-running reuses the environment when constraints.txt and pyproject.toml have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
stamp=.venv/.installed-hash
want=$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c "import ssd_deploy" 2>/dev/null; then
    echo "setup: reusing the environment in .venv (up to date)"
    exit 0
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "setup: Python >= 3.10 needed ($PYTHON is older)"; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
echo "setup: installing into .venv (torch, ONNX Runtime, OpenVINO; ~2 minutes the first time)"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -e ".[cpu,openvino,test,plots]"
echo "$want" > "$stamp"
echo "setup: done"

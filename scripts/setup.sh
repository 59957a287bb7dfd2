#!/usr/bin/env bash
# Create .venv and install ssd-deploy with exactly the versions CI tested (constraints.txt).
# Re-running reuses the environment when constraints.txt and pyproject.toml have not changed.
# The wheels (~6 GB unpacked: torch's CUDA build, OpenVINO, ONNX Runtime) go in with uv, which
# unpacks them in parallel: 50 s here against 103 s for pip. SSD_SETUP_INSTALLER=pip uses pip,
# and pip is also the fallback when uv cannot be installed or fails. Like pip, it compiles the
# bytecode at install time: without it every process importing torch, ONNX Runtime and OpenVINO
# took 11.6 s instead of 5.3 s here (PYTHONDONTWRITEBYTECODE=1 never lets Python cache it).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
EXTRAS="cpu,openvino,test,plots,simplify"
stamp=.venv/.installed-hash
want=$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c "import ssd_deploy" 2>/dev/null; then
    echo "setup: reusing the environment in .venv (up to date)"
    exit 0
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "setup: Python >= 3.10 needed ($PYTHON is older)"; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip)

# Called as `if ! install_with_uv`, where `set -e` does not apply: every step returns on failure.
install_with_uv() {
    "${pip[@]}" install -q -c constraints.txt uv || return 1
    # uv does not read pip's configuration: hand it pip's index (a mirror), when one is set.
    # (Extra indexes, certificates and find-links are not handed over; SSD_SETUP_INSTALLER=pip.)
    local index=${PIP_INDEX_URL:-}
    [ -n "$index" ] || index=$("${pip[@]}" config get install.index-url 2>/dev/null || "${pip[@]}" config get global.index-url 2>/dev/null || true)
    local args=(pip install -q --compile-bytecode --python .venv/bin/python -c constraints.txt)
    [ -z "$index" ] || args+=(--index-url "$index")
    .venv/bin/uv "${args[@]}" -e ".[$EXTRAS]" || return 1
}

case "${SSD_SETUP_INSTALLER:-uv}" in
    uv|pip) ;;
    *) echo "setup: SSD_SETUP_INSTALLER=$SSD_SETUP_INSTALLER: expected uv or pip"; exit 1 ;;
esac
if [ "${SSD_SETUP_INSTALLER:-uv}" = uv ]; then
    echo "setup: installing into .venv with uv (torch, ONNX Runtime, OpenVINO; ~1 minute the first time)"
    if ! install_with_uv; then
        echo "setup: uv failed (above); installing with pip instead (~2 minutes)"
        "${pip[@]}" install -q --upgrade pip
        "${pip[@]}" install -q -c constraints.txt -e ".[$EXTRAS]"
    fi
else
    echo "setup: installing into .venv with pip (torch, ONNX Runtime, OpenVINO; ~2 minutes the first time)"
    "${pip[@]}" install -q --upgrade pip
    "${pip[@]}" install -q -c constraints.txt -e ".[$EXTRAS]"
fi
echo "$want" > "$stamp"
echo "setup: done"

#!/usr/bin/env bash
# The test command: set up (or reuse) .venv, then run the whole test suite.
# Extra arguments go to pytest. pytest exits non-zero on failures and with 5 when no test ran.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"

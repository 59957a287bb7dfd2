"""The suite's GPU-relevant tests, run through pytest, and their JUnit reports counted."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

from .environment import CORE_PACKAGES, TEST_PACKAGES, needs, require_cuda
from .report import CheckFailed
from .workspace import Workspace

REPO = Path(__file__).resolve().parents[2]  # the checkout pytest runs in
# The suite's tests that matter on a GPU machine: TensorRT engines (skipped without tensorrt, with
# the reason), resume across AMP on and off, the process-group timeout, ONNX Runtime's TensorRT provider.
SUITE = (
    ["tests/test_tensorrt.py"],
    ["tests/test_training.py", "-k", "amp or scaler or nccl"],
    ["tests/test_runtimes.py", "-k", "tensorrt_provider"],
)


def check_suite(ws: Workspace) -> dict[str, Any]:
    """The suite's GPU-relevant tests (:data:`SUITE`) through pytest; counts and skip reasons."""
    needs({**CORE_PACKAGES, **TEST_PACKAGES})
    require_cuda(ws.device)
    totals: dict[str, Any] = {"passed": 0, "failed": 0, "skipped": 0, "skip_reasons": {}, "failures": []}
    for index, args in enumerate(SUITE):
        xml = ws.folder / "suite" / f"junit-{index}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.unlink(missing_ok=True)  # an earlier run's report must not stand in for this one's
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={xml}", *args]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
        subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        merge_junit(totals, parse_junit(xml))
    if totals["failed"]:
        raise CheckFailed(f"{totals['failed']} test(s) failed: {', '.join(totals['failures'][:5])}", totals)
    return totals


def parse_junit(path: Path) -> dict[str, Any]:
    """Counts of a pytest JUnit XML file: passed, failed (errors included), skipped with reasons."""
    if not path.is_file():
        return {"passed": 0, "failed": 1, "skipped": 0, "skip_reasons": {}, "failures": [f"{path.name}: pytest wrote no report"]}
    counts: dict[str, Any] = {"passed": 0, "failed": 0, "skipped": 0, "skip_reasons": {}, "failures": []}
    for case in ElementTree.parse(path).iter("testcase"):
        outcome = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        if outcome is None:
            counts["passed"] += 1
        elif outcome.tag == "skipped":
            counts["skipped"] += 1
            reason = (outcome.get("message") or "").strip()
            counts["skip_reasons"][reason] = counts["skip_reasons"].get(reason, 0) + 1
        else:
            counts["failed"] += 1
            counts["failures"].append(f"{case.get('classname', '')}::{case.get('name', '')}")
    return counts


def merge_junit(totals: dict[str, Any], counts: dict[str, Any]) -> None:
    for key in ("passed", "failed", "skipped"):
        totals[key] += counts[key]
    totals["failures"] += counts["failures"]
    for reason, number in counts["skip_reasons"].items():
        totals["skip_reasons"][reason] = totals["skip_reasons"].get(reason, 0) + number

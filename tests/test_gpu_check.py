"""The one-command GPU check's own logic, on the CPU: statuses and reasons, the time budget, missing
packages, pytest's JUnit report, the comparison with CPU FP32, and the report files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssd_deploy import gpu_check
from ssd_deploy.compare import Tolerances
from ssd_deploy.gpu_check import CheckFailed, CheckResult, GpuCheckReport, SkipCheck, run_check

REPO = Path(__file__).resolve().parent.parent
FAR = float("inf")  # a deadline never reached


def test_each_outcome_is_a_status_with_its_reason():
    def fails():
        raise ValueError("boxes differ\nsecond line")

    def wrong():
        raise CheckFailed("finds 50% of CPU FP32's detections", {"found": "5/10"})

    def cannot():
        raise SkipCheck("needs pillow (not installed)")

    assert run_check("ok", lambda: {"ms": 1.5}, FAR) == CheckResult("ok", "passed", pytest.approx(0, abs=1), numbers={"ms": 1.5})
    failed = run_check("crash", fails, FAR)
    assert failed.status == "failed" and failed.reason.startswith("ValueError: boxes differ (test_gpu_check.py:")
    assert run_check("wrong", wrong, FAR).numbers == {"found": "5/10"} and run_check("wrong", wrong, FAR).status == "failed"
    assert (run_check("skip", cannot, FAR).status, run_check("skip", cannot, FAR).reason) == ("skipped", "needs pillow (not installed)")
    late = run_check("late", lambda: pytest.fail("must not run past the budget"), deadline=0.0)
    assert late.status == "skipped" and "time budget" in late.reason


def test_missing_packages_are_named_by_their_distribution(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    assert gpu_check.missing_packages({"PIL": "pillow", "torch": "torch", "no_such_module_here": "no-such"}) == ["pillow", "no-such"]
    with pytest.raises(SkipCheck, match=r"needs pillow \(not installed; bring the wheels: --wheels DIR"):
        gpu_check.needs({"PIL": "pillow"})


def test_cuda_problem_says_why(monkeypatch):
    assert gpu_check.cuda_problem("cpu") is None  # the dry run
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "torch.cuda.is_available() is False" in gpu_check.cuda_problem("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert gpu_check.cuda_problem("npu") == "device 'npu' is not a torch device. Note: expected cpu, cuda or cuda:N"
    assert gpu_check.cuda_problem("mps") == "device mps: expected cpu or cuda"
    assert gpu_check.cuda_problem("cuda:1") == "device cuda:1: this machine has 1 CUDA device(s)"


def test_junit_reports_are_counted_with_skip_reasons(tmp_path):
    xml = tmp_path / "junit.xml"
    xml.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_tensorrt" name="test_a"/>'
        '<testcase classname="tests.test_tensorrt" name="test_b"><skipped message="needs TensorRT and an NVIDIA GPU: x"/></testcase>'
        '<testcase classname="tests.test_tensorrt" name="test_c"><skipped message="needs TensorRT and an NVIDIA GPU: x"/></testcase>'
        '<testcase classname="tests.test_training" name="test_d"><failure message="assert 1 == 2"/></testcase>'
        '<testcase classname="tests.test_training" name="test_e"><error message="fixture"/></testcase>'
        "</testsuite></testsuites>"
    )
    counts = gpu_check.parse_junit(xml)
    assert (counts["passed"], counts["failed"], counts["skipped"]) == (1, 2, 2)
    assert counts["skip_reasons"] == {"needs TensorRT and an NVIDIA GPU: x": 2}
    assert counts["failures"] == ["tests.test_training::test_d", "tests.test_training::test_e"]
    totals = {"passed": 3, "failed": 0, "skipped": 1, "skip_reasons": {"needs TensorRT and an NVIDIA GPU: x": 1}, "failures": []}
    gpu_check.merge_junit(totals, counts)
    assert totals["passed"] == 4 and totals["skip_reasons"]["needs TensorRT and an NVIDIA GPU: x"] == 3
    assert gpu_check.parse_junit(tmp_path / "missing.xml")["failed"] == 1  # pytest that never ran is a failure


def _padded(boxes, scores, labels):
    count = torch.tensor([len(scores)], dtype=torch.int32)
    pad = 4 - len(scores)
    return [count, torch.cat([torch.tensor(boxes), torch.zeros(pad, 4)])[None],
            torch.cat([torch.tensor(scores), torch.zeros(pad)])[None],
            torch.cat([torch.tensor(labels, dtype=torch.int32), torch.zeros(pad, dtype=torch.int32)])[None]]


def test_comparison_with_cpu_fp32():
    reference = _padded([[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9]], [0.9, 0.6], [1, 2])
    close = _padded([[0.1005, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9]], [0.9004, 0.6], [1, 2])  # TF32-sized differences
    derived = Tolerances(box_atol=1e-3, score_atol=1e-3, basis="4 x the model's float32 rounding")  # an ill-conditioned model's
    numbers = gpu_check.compare_with_cpu(reference, close, "fp32", derived)
    assert numbers["matched"] == 2 and numbers["max_box_diff"] == pytest.approx(5e-4, abs=1e-6)
    assert numbers["tolerances"] == "4 x the model's float32 rounding"
    with pytest.raises(CheckFailed, match=r"differs from CPU FP32: .*score differs by 4.00e-04 > 1.0e-05"):
        gpu_check.compare_with_cpu(reference, close, "fp32")  # the fixed float32 tolerances by default
    moved = _padded([[0.6, 0.0, 0.9, 0.3], [0.5, 0.5, 0.9, 0.9]], [0.9, 0.6], [1, 2])  # no overlap: not a tie swap
    with pytest.raises(CheckFailed, match="differs from CPU FP32"):
        gpu_check.compare_with_cpu(reference, moved, "fp32", derived)
    assert gpu_check.compare_with_cpu(reference, close, "fp16") == {"found": "2/2", "found_back": "2/2"}
    lost = _padded([[0.1, 0.1, 0.4, 0.4]], [0.9], [1])
    with pytest.raises(CheckFailed, match="finds under 85%") as failure:
        gpu_check.compare_with_cpu(reference, lost, "bf16")
    assert failure.value.numbers == {"found": "1/2", "found_back": "1/1"}
    with pytest.raises(CheckFailed, match="no detections above 0.3"):
        gpu_check.compare_with_cpu(_padded([], [], []), lost, "fp16")


def test_report_is_markdown_and_json(tmp_path):
    report = GpuCheckReport({"gpu": "NVIDIA H200", "missing": "tensorrt"}, [
        CheckResult("eager fp32", "passed", 1.25, numbers={"batch1_ms": 2.345678, "latency": [{"runtime": "pytorch"}]}),
        CheckResult("suite", "skipped", reason="needs pytest (not installed)"),
        CheckResult("bench demo", "failed", 3.0, reason="aotinductor fp32: a|b"),
    ])
    paths = report.write(tmp_path / "out")
    text = paths["md"].read_text()
    assert "1 passed, 1 failed, 1 skipped." in text and "- gpu: NVIDIA H200" in text
    assert "| eager fp32 | passed | 1.2 | batch1_ms=2.3457 |" in text  # lists stay in the JSON
    assert "| suite | skipped | 0.0 | needs pytest (not installed) |" in text and "aotinductor fp32: a/b" in text
    data = json.loads(paths["json"].read_text())
    assert data["counts"] == {"passed": 1, "failed": 1, "skipped": 1}
    assert data["results"][0]["numbers"]["latency"] == [{"runtime": "pytorch"}]


def test_the_pytorch_check_runs_on_the_cpu(tmp_path):
    """The dry run (--device cpu) of one check end to end: model, CPU reference, comparison, timing."""
    ws = gpu_check.Workspace(tmp_path, "cpu", batches=(1, 4))
    numbers = gpu_check.check_runtime(ws, "pytorch", "fp32")
    assert numbers["matched"] > 0 and numbers["max_box_diff"] == 0.0  # the same CPU computation
    assert numbers["batch1_ms"] > 0 and numbers["batch4_ms"] > 0
    assert ws.checkpoint("demo").is_file()
    assert "float32 rounding" in numbers["tolerances"]  # derived from the model, as ssd-export --verify derives them
    bf16 = gpu_check.check_runtime(ws, "pytorch", "bf16")  # the model is conditioned well enough to judge bf16 (91% here)
    assert int(bf16["found"].split("/")[1]) > 500
    with pytest.raises(SkipCheck, match="precision fp16 is not supported here"):
        gpu_check.check_runtime(ws, "pytorch", "fp16")  # fp16 is the pytorch runtime's CUDA-only precision


def test_without_cuda_every_check_is_skipped_with_the_reason(tmp_path):
    """The command as a GPU machine would run it, here: one report, every skip explained."""
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""})
    assert run.returncode == 0, run.stderr[-2000:]
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert data["counts"]["failed"] == 0 and data["counts"]["skipped"] == len(data["results"]) - 1
    assert all(r["reason"] for r in data["results"] if r["status"] == "skipped")
    assert {r["name"] for r in data["results"]} >= {"eager fp16", "eager bf16", "torchscript", "aotinductor", "torch.compile",
                                                     "amp training + resume", "suite", "bench demo", "bench ssdlite320-coco91"}


def test_wheels_brought_along_are_installed_into_the_output_folder_only(tmp_path, monkeypatch):
    """--wheels DIR: pip installs the folder's wheels (no index) into OUT/site, which goes first on
    this process's path and on the PYTHONPATH pytest's subprocess inherits."""
    import zipfile

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    files = {
        "gpu_check_probe/__init__.py": "VALUE = 3\n",
        "gpu_check_probe-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: gpu-check-probe\nVersion: 0.1\n",
        "gpu_check_probe-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files["gpu_check_probe-0.1.dist-info/RECORD"] = "".join(f"{name},,\n" for name in files) + "gpu_check_probe-0.1.dist-info/RECORD,,\n"
    with zipfile.ZipFile(wheels / "gpu_check_probe-0.1-py3-none-any.whl", "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    site = tmp_path / "out" / "site"
    assert gpu_check.install_wheels(wheels, site) == ["gpu_check_probe-0.1-py3-none-any.whl"]
    import gpu_check_probe

    assert gpu_check_probe.VALUE == 3 and Path(gpu_check_probe.__file__).is_relative_to(site)
    assert sys.path[0] == str(site) and os.environ["PYTHONPATH"].split(os.pathsep) == [str(site), "/elsewhere"]
    sys.modules.pop("gpu_check_probe")
    with pytest.raises(SystemExit, match="holds no .whl files"):
        gpu_check.install_wheels(tmp_path / "out", site)

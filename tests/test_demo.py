"""The one-command demo, at a tiny size: every step runs, the report folder is complete, and a
second run reuses the dataset and the finished training run."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from ssd_deploy.demo import DemoConfig, run_demo


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_demo_writes_a_report_and_reuses_work(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    config = DemoConfig(out=tmp_path / "demo", train_images=24, val_images=8, epochs=1, runtimes=("torchscript", "onnxruntime"), precisions=("fp32",),
                        latency_iterations=2, progress=False,
                        verify=False)  # a model trained for 3 steps has near-tied scores; parity still compares
    report = run_demo(config)
    first = capsys.readouterr().out
    report_dir = tmp_path / "demo" / "report"
    for name in ("README.md", "report.json"):
        assert (report_dir / name).is_file(), name
    assert len(list((report_dir / "detections").glob("*.jpg"))) == 4
    for name, cached_name in (("model.ts", "torchscript-fp32.ts"), ("model.onnx", "onnx-fp32.onnx")):
        model = tmp_path / "demo" / "models" / name
        # Exported once, into the benchmarks' cache, then copied: parity and latency found it there.
        (cached,) = (tmp_path / "demo" / "bench" / "cache").glob(f"*/{cached_name}")
        assert model.read_bytes() == cached.read_bytes() and cached.stat().st_mtime_ns <= model.stat().st_mtime_ns
    saved = json.loads((report_dir / "report.json").read_text())
    assert saved["training"]["reused"] is False and len(saved["training"]["epochs"]) == 1
    runtimes = {row["runtime"] for row in saved["parity"]["results"]}
    assert {"torchscript", "onnxruntime"} <= runtimes
    readme = (report_dir / "README.md").read_text()
    assert "Parity" in readme and "parity" in first and "latency" in first
    links = re.findall(r"\]\(([^)]+)\)", readme)  # every picture and file the report links exists
    assert [link for link in links if not (report_dir / link).is_file()] == []
    linked = {Path(link).name for link in links}
    assert {"parity.md", "parity.json", "latency.md", "latency.csv", "latency.json", "curves.png"} <= linked
    if importlib.util.find_spec("matplotlib"):
        assert {"parity.png", "latency.png"} <= linked
    assert report["timings"]["total_s"] > 0

    run_demo(config)
    second = capsys.readouterr().out
    assert "data: reusing 24 generated images" in second
    assert "train: reusing the finished run" in second
    assert "export: reusing" in second
    assert json.loads((report_dir / "report.json").read_text())["training"]["reused"] is True

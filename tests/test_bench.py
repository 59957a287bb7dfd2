"""ssd-bench: what the latency and parity reports contain, which runtimes are skipped and why, the
exit code beyond tolerance, and that the torchvision baseline computes our detections.

Behaviour only: iteration counts are tiny and no speed is asserted (speed targets live in
benchmarks/latency.py, run on a quiet machine).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import informative_init
from ssd_deploy.bench import LatencyConfig, ParityReport, ParityRow, baseline_unsupported, build_torchvision_model, machine_info, run_latency
from ssd_deploy.bench.baseline import TorchvisionBaseline
from ssd_deploy.artifacts import ExportSettings, FileKind, file_names
from ssd_deploy.bench.report import finite
from ssd_deploy.bench.variants import NAMED_ONLY, plan_variants, prepare_variants
from ssd_deploy.checkpoint import save_checkpoint
from ssd_deploy.cli import run_cli
from ssd_deploy.cli.bench import main as bench_main
from ssd_deploy.data.shapes import CLASS_NAMES, render_scene
from ssd_deploy.errors import SSDDeployError
from ssd_deploy.models import create_model
from ssd_deploy.postprocess import PostprocessConfig
from ssd_deploy.runtimes import Detector, available
from ssd_deploy.runtimes.pytorch import PyTorchRunner

TINY = dict(warmup=1, iterations=3, min_iterations=1, max_seconds=600.0, image_size=(240, 320), progress=False, verify=False)


def _strict_json(path):
    """Parse JSON refusing NaN and infinities (which json.dumps writes unless told not to)."""
    def refuse(constant):
        raise AssertionError(f"{path}: {constant} in JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def v3_checkpoint(tmp_path_factory):
    """A small SSDLite-MobileNetV3 (torchvision has it: the baseline runs) with spread scores."""
    model = informative_init(create_model("ssdlite_mobilenet_v3", num_classes=len(CLASS_NAMES), input_size=(160, 160)))
    return save_checkpoint(tmp_path_factory.mktemp("bench_v3") / "v3.pt", model, list(CLASS_NAMES))


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """One output folder for the trained checkpoint's runs: its exports are cached there once."""
    return tmp_path_factory.mktemp("bench_exports")


@pytest.fixture(scope="module")
def baseline_latency(v3_checkpoint, tmp_path_factory):
    """PyTorch against torchvision's eager pipeline (no exports)."""
    config = LatencyConfig(runtimes=("pytorch",), precisions=("fp32",), batch_sizes=(1,), **TINY)
    return run_latency([v3_checkpoint], config, tmp_path_factory.mktemp("bench_baseline"))


@pytest.fixture(scope="module")
def latency(trained_checkpoint, exports):
    """PyTorch and ONNX Runtime (with its network-only companion) on the trained model."""
    config = LatencyConfig(runtimes=("pytorch", "onnxruntime"), precisions=("fp32",), batch_sizes=(1, 2), **TINY)
    report = run_latency([trained_checkpoint], config, exports)
    out = exports / "latency"
    return report, report.write(out), out


@pytest.mark.parametrize(
    "arch, options",
    [
        ("ssdlite_mobilenet_v3", {"input_size": (160, 192)}),  # non-square, no prior steps, full tail
        ("ssd300_vgg16", {"priors": "torchvision"}),  # prior steps (strided centres)
    ],
)
def test_torchvision_baseline_computes_our_detections(arch, options, assert_same_detections):
    model = informative_init(create_model(arch, num_classes=len(CLASS_NAMES), **options))
    names = list(CLASS_NAMES)
    baseline = TorchvisionBaseline(build_torchvision_model(model), names)
    ours = Detector(PyTorchRunner(model, names))
    rng = np.random.default_rng(5)
    count = 1 if arch == "ssd300_vgg16" else 2
    images = [render_scene(rng, model.config.input_size).image for _ in range(count)]  # at the input size: no resize
    expected = ours.detect(images)
    actual = baseline.detect(images)
    for found, wanted in zip(actual, expected):
        assert len(wanted) >= 20  # not vacuous
        assert_same_detections(
            tuple(torch.from_numpy(a) for a in (found.boxes, found.scores, found.labels)),
            tuple(torch.from_numpy(a) for a in (wanted.boxes, wanted.scores, wanted.labels)),
            box_atol=1e-3, score_atol=1e-5,
        )
    times = baseline.last_times
    assert times.preprocess_ms > 0 and times.infer_ms > 0 and times.postprocess_ms > 0


def test_baseline_is_refused_without_a_torchvision_counterpart():
    v2 = create_model("ssdlite_mobilenet_v2", num_classes=3, input_size=(128, 128))
    assert "no torchvision counterpart" in baseline_unsupported(v2)
    focal = create_model("ssdlite_mobilenet_v3", num_classes=3, input_size=(160, 160), score_function="sigmoid")
    assert "sigmoid" in baseline_unsupported(focal)
    with pytest.raises(ValueError, match="no torchvision counterpart"):
        build_torchvision_model(v2)


def test_unavailable_runtimes_are_skipped_with_reasons_and_an_error_when_named(v3_checkpoint):
    planned, skipped = plan_variants(v3_checkpoint, None, None, "cpu")
    usable = {name for name, status in available().items() if status.usable}
    assert {p.runtime for p in planned} == usable - set(NAMED_ONLY)
    reasons = {(s.runtime, s.precision): s.reason for s in skipped}
    assert "--runtimes opencv" in reasons[("opencv", None)]  # needs its own export: only when named
    named, _ = plan_variants(v3_checkpoint, ("opencv",), None, "cpu")
    assert [(p.runtime, p.precision, p.kind) for p in named] == [("opencv", "fp32", FileKind("onnx", "fp32", opencv_dnn=True))]
    assert file_names(FileKind("onnx", opencv_dnn=True), ExportSettings(Path("cache")))[0] == "onnx-fp32-opencv.onnx"
    for name, status in available().items():
        if not status.usable:
            assert reasons[(name, None)] == status.reason
    assert "CUDA" in reasons[("pytorch", "fp16")]  # fp16 eager needs a GPU; we plan for the CPU
    assert ("onnxruntime", "bf16") in reasons
    if not available()["tensorrt"].usable:
        with pytest.raises(SSDDeployError, match="tensorrt: not usable here"):
            plan_variants(v3_checkpoint, ("tensorrt",), None, "cpu")
    with pytest.raises(SSDDeployError, match="no chosen runtime runs int8"):
        plan_variants(v3_checkpoint, ("pytorch",), ("int8",), "cpu")


def test_thresholds_reach_every_runtime_and_name_the_cached_files(v3_checkpoint, tmp_path):
    post = PostprocessConfig(score_threshold=0.3, topk_candidates=100)
    settings = ExportSettings(tmp_path, postprocess=post)
    planned, _ = plan_variants(v3_checkpoint, ("pytorch",), ("fp32",))
    (variant,) = prepare_variants(v3_checkpoint, planned, settings, log=lambda _line: None)
    assert variant.options["postprocess"] == post
    assert file_names(FileKind("onnx"), settings) == ("onnx-fp32-s0.3-iou0.45-k200-top100-pre2000.onnx", "onnx-fp32-s0.3-iou0.45-k200-top100-pre2000-network.onnx")
    assert file_names(FileKind("onnx"), ExportSettings(tmp_path))[0] == "onnx-fp32.onnx"
    model = create_model("ssdlite_mobilenet_v3", num_classes=3, input_size=(160, 160))
    baseline = build_torchvision_model(model, post)
    assert (baseline.score_thresh, baseline.topk_candidates, baseline.nms_thresh) == (0.3, 100, 0.45)


def test_a_failed_export_fails_only_its_variant(v3_checkpoint, tmp_path, monkeypatch):
    """An INT8 file that fails its check must not stop the benchmark: its variant carries the
    error (reported as failed), the other variants still get their files."""
    from ssd_deploy.artifacts import full
    from ssd_deploy.errors import ExportError

    def write_full(checkpoint, path, options, float_onnx=None):
        raise ExportError(path, "the exported file does not reproduce the PyTorch model")

    monkeypatch.setattr(full, "write_full", write_full)
    settings = ExportSettings(tmp_path, calibration=tmp_path)
    planned, _ = plan_variants(v3_checkpoint, ("pytorch", "onnxruntime"), ("fp32", "int8"))
    variants = {v.label: v for v in prepare_variants(v3_checkpoint, planned, settings, log=lambda _line: None)}
    assert set(variants) == {"pytorch fp32", "onnxruntime fp32", "onnxruntime int8"}
    assert variants["pytorch fp32"].export_error is None
    for label in ("onnxruntime fp32", "onnxruntime int8"):
        with pytest.raises(SSDDeployError, match="does not reproduce the PyTorch model"):
            variants[label].check_exported()


def test_int8_onnx_quantises_the_cached_float_file_or_exports_in_full(tmp_path):
    """ssd-bench quantises the cached float32 ONNX file for INT8; one that export_model refuses
    (e.g. written by an older version) falls back to a full export instead of failing the variant."""
    from ssd_deploy.artifacts import full
    from ssd_deploy.errors import ExportError

    settings = ExportSettings(tmp_path, calibration=tmp_path)
    float_file = tmp_path / file_names(FileKind("onnx", "fp32"), settings)[0]
    float_file.write_bytes(b"cached")
    calls = []

    def write_full(checkpoint, path, options, float_onnx=None, refuse=False):
        calls.append(float_onnx)
        if float_onnx is not None and refuse:
            raise ExportError(float_onnx, "not the float32 export of this model with these settings (differs in: ssd_deploy_version)")
        return types.SimpleNamespace(verification=None)  # an ExportResult of an unverified export

    lines = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(full, "write_full", write_full)
        full.export_full(tmp_path / "m.pt", FileKind("onnx", "int8"), tmp_path / "int8.onnx", tmp_path, settings, lines.append)
        assert calls == [float_file]
        calls.clear()
        patch.setattr(full, "write_full", functools.partial(write_full, refuse=True))
        full.export_full(tmp_path / "m.pt", FileKind("onnx", "int8"), tmp_path / "int8.onnx", tmp_path, settings, lines.append)
        assert calls == [float_file, None]
        assert "exporting int8.onnx in full instead" in lines[-1]
        calls.clear()
        full.export_full(tmp_path / "m.pt", FileKind("onnx", "fp32"), tmp_path / "other.onnx", tmp_path, settings, lines.append)
        assert calls == [None]  # only INT8 files are quantised from it


def test_models_with_the_same_file_name_are_refused(tmp_path):
    # Rows and speed-ups are keyed by file name: two best.pt would share one baseline.
    first, second = tmp_path / "a" / "best.pt", tmp_path / "b" / "best.pt"
    with pytest.raises(SSDDeployError, match="same file name"):
        run_latency([first, second], LatencyConfig(runtimes=("pytorch",)), tmp_path / "out")


def test_latency_speedups_over_the_torchvision_baseline(baseline_latency):
    rows = {(r.label, r.batch): r for r in baseline_latency.rows}
    assert set(rows) == {("torchvision eager", 1), ("pytorch fp32", 1)}
    for (label, batch), row in rows.items():
        baseline = rows[("torchvision eager", batch)]
        assert row.speedup == pytest.approx(baseline.median_ms / row.median_ms)
        assert row.preprocess_ms > 0 and row.network_ms > 0 and row.postprocess_ms > 0
    assert rows[("torchvision eager", 1)].speedup == pytest.approx(1.0)
    assert rows[("torchvision eager", 1)].split == "forward hooks"
    assert rows[("pytorch fp32", 1)].split == "network-only run"  # the runner's own network, eagerly
    assert not baseline_latency.failed


def test_latency_report_rows_and_split(latency):
    report, _, _ = latency
    rows = {(r.label, r.batch): r for r in report.rows}
    assert set(rows) == {(label, batch) for label in ("pytorch fp32", "onnxruntime fp32") for batch in (1, 2)}
    for (label, batch), row in rows.items():
        assert row.iterations == 3 and row.arch == "ssdlite_mobilenet_v2"
        assert row.min_ms <= row.median_ms <= row.p90_ms <= row.p99_ms
        assert row.images_per_s == pytest.approx(batch * 1e3 / row.median_ms)
        assert row.preprocess_ms > 0 and row.network_ms > 0 and row.postprocess_ms > 0
        assert row.speedup is None  # no torchvision counterpart
        assert row.post_share == pytest.approx(row.postprocess_ms / row.median_ms)
    onnx = rows[("onnxruntime fp32", 1)]
    assert onnx.split == "network-only run" and onnx.post_in_graph_ms is not None
    assert onnx.postprocess_ms == pytest.approx(onnx.post_in_graph_ms + onnx.post_host_ms)
    assert onnx.file.endswith("onnx-fp32.onnx")
    skipped = {(s.runtime, s.precision): s.reason for s in report.skipped}
    assert "no torchvision counterpart" in skipped[("torchvision baseline", None)]
    assert report.machine["cpu"] and report.machine["versions"]["torch"]
    assert not report.failed


def test_latency_files(latency):
    report, written, out = latency
    assert set(written) == {"md", "csv", "json", "png"}
    data = _strict_json(out / "latency.json")
    assert len(data["results"]) == len(report.rows) == 4
    assert {"cpu", "physical_cores", "torch_threads", "gpus", "versions"} <= set(data["machine"])
    assert data["settings"]["batch_sizes"] == [1, 2] and data["settings"]["threads"] == torch.get_num_threads()
    table = list(csv.DictReader(io.StringIO((out / "latency.csv").read_text())))
    assert len(table) == 4 and {"median_ms", "p90_ms", "p99_ms", "images_per_s", "speedup", "postprocess_ms"} <= set(table[0])
    markdown = (out / "latency.md").read_text()
    assert "| model | runtime | precision | batch | median ms |" in markdown and "Skipped:" in markdown
    assert (out / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_latency_cli_runs_an_exported_file_as_given(latency, tmp_path, capsys):
    _, _, out = latency
    onnx = next((out.parent / "cache").rglob("onnx-fp32.onnx"))
    code = run_cli(bench_main, ["latency", str(onnx), "--batch-sizes", "1", "--warmup", "1", "--iterations", "2",
                                "--runtimes", "onnxruntime", "--out", str(tmp_path), "--no-plot", "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "| onnx-fp32.onnx | onnxruntime | fp32 | 1 |" in printed
    row = _strict_json(tmp_path / "latency.json")["results"][0]
    assert row["split"] == "host only" and row["post_in_graph_ms"] is None and row["speedup"] is None
    assert not (tmp_path / "latency.png").exists()


def test_parity_cli_exit_code_beyond_tolerance(trained_checkpoint, exports, capsys):
    code = run_cli(bench_main, ["parity", str(trained_checkpoint), "--runtimes", "pytorch", "onnxruntime", "--precisions", "fp32", "bf16",
                                "--shapes-images", "16", "--tolerance-bf16", "0", "--out", str(exports), "--no-progress", "--no-verify"])
    captured = capsys.readouterr()
    assert code == 1
    assert "error: pytorch bf16:" in captured.err and "exceeds the tolerance of 0.0 points" in captured.err
    data = _strict_json(exports / "parity.json")
    assert data["ok"] is False and data["tolerances_points"]["fp32"] == 0.1
    rows = {(r["runtime"], r["precision"]): r for r in data["results"]}
    assert set(rows) == {("pytorch", "fp32"), ("pytorch", "bf16"), ("onnxruntime", "fp32")}
    reference, onnx, bf16 = rows[("pytorch", "fp32")], rows[("onnxruntime", "fp32")], rows[("pytorch", "bf16")]
    assert reference["map_voc07"] > 0 and reference["coco_ap"] > 0  # a trained model finds shapes
    assert onnx["ok"] and abs(onnx["delta_voc07"]) <= 0.1 and abs(onnx["delta_coco"]) <= 0.1
    assert onnx["max_box_diff"] < 1e-4 and onnx["max_score_diff"] < 1e-4  # fp32: float rounding only
    assert not bf16["ok"] and bf16["max_score_diff"] > onnx["max_score_diff"]
    assert any(s["runtime"] == "onnxruntime" and s["precision"] == "bf16" for s in data["skipped"])
    assert "| runtime | precision | mAP VOC07 |" in captured.out and (exports / "parity.png").is_file()


def test_parity_report_judges_each_row_by_its_precision():
    rows = [
        ParityRow("pytorch", "fp32", "m.pt", 50.0, 30.0, 0.0, 0.0, None, 0.0, 0.0, reference=True),
        ParityRow("onnxruntime", "int8", "m.onnx", 49.2, 29.5, -0.8, -0.5, 1.0, 1e-2, 2e-2, ok=True),
        ParityRow("openvino", "fp32", "m.onnx", 49.8, 30.0, -0.2, 0.0, 0.1, 1e-7, 1e-7, ok=False),
    ]
    report = ParityReport("m.pt", "data", 10, rows, {"fp32": 0.1, "int8": 1.0})
    assert not report.ok
    assert report.violations == ["openvino fp32: mAP VOC07 -0.20, COCO AP +0.00 points vs PyTorch FP32 exceeds the tolerance of 0.1 points"]
    assert "**NO**" in report.markdown()


def test_json_values_are_finite_and_machine_is_described():
    assert finite({"a": float("nan"), "b": [1.0, float("inf")], "c": "x"}) == {"a": None, "b": [1.0, None], "c": "x"}
    machine = machine_info()
    assert machine["logical_cores"] >= 1 and machine["torch_threads"] == torch.get_num_threads()
    assert machine["versions"]["torchvision"]


def test_onnxruntime_on_cuda_needs_a_gpu_build(monkeypatch):
    """The CPU wheel of ONNX Runtime is usable, but not with --device cuda: skipped with the reason
    rather than exported and then failing to start its CUDA provider."""
    import onnxruntime

    from ssd_deploy.bench.variants import precision_support

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    support = precision_support("onnxruntime", "cuda")
    assert set(support.values()) == {"this onnxruntime build has no CUDAExecutionProvider (the onnxruntime-gpu wheel has it)"}
    assert not isinstance(precision_support("onnxruntime", "cpu")["fp32"], str)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert not isinstance(precision_support("onnxruntime", "cuda:0")["fp16"], str)

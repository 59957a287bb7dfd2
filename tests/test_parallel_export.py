"""Benchmark files exported several at a time in worker processes are the files one process writes:
same ONNX bytes, same TorchScript outputs; a failed export is reported, the others are still written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import informative_init
from ssd_deploy.artifacts import ExportJob, ExportSettings, FileKind, can_overlap, export_files, start_order, usable_cores, waits_for
from ssd_deploy.bench.latency import LatencyConfig
from ssd_deploy.bench.parity import ParityConfig, run_parity
from ssd_deploy.checkpoint import save_checkpoint
from ssd_deploy.data.shapes import CLASS_NAMES
from ssd_deploy.demo import DemoConfig, run_demo
from ssd_deploy.errors import SSDDeployError
from ssd_deploy.export.verify import sample_batch
from ssd_deploy.models import create_model

ONNX, INT8, TS, PT2 = FileKind("onnx", "fp32"), FileKind("onnx", "int8"), FileKind("torchscript", "fp32"), FileKind("pt2", "fp32")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    model = informative_init(create_model("ssdlite_mobilenet_v3", num_classes=len(CLASS_NAMES), input_size=(160, 160)))
    return save_checkpoint(tmp_path_factory.mktemp("parallel") / "v3.pt", model, list(CLASS_NAMES))


def test_the_compile_starts_first_and_int8_onnx_waits_for_the_float_file():
    jobs = {(kind, part): ExportJob(kind, part, Path(f"{kind.format}-{kind.precision}-{part}"))
            for kind in (INT8, ONNX, PT2, TS) for part in ("full", "network")}
    wanted = [jobs[k] for k in [(INT8, "full"), (ONNX, "full"), (PT2, "full"), (PT2, "network"), (TS, "full"), (TS, "network")]]
    assert [(j.kind, j.part) for j in start_order(wanted)] == [
        (PT2, "full"), (ONNX, "full"), (PT2, "network"), (INT8, "full"), (TS, "full"), (TS, "network"),
    ]
    assert waits_for(jobs[(INT8, "full")], wanted) == jobs[(ONNX, "full")]
    assert waits_for(jobs[(INT8, "full")], [jobs[(INT8, "full")]]) is None  # no float file to wait for: exported in full
    assert all(waits_for(job, wanted) is None for job in wanted if job.kind != INT8)
    # Worker processes only where two jobs can run at once.
    assert can_overlap([jobs[(ONNX, "full")], jobs[(TS, "full")]])
    assert not can_overlap([jobs[(ONNX, "full")], jobs[(INT8, "full")]])


@pytest.mark.skipif(usable_cores() < 2, reason="one core: export_files exports one file at a time")
def test_files_exported_in_worker_processes_match_one_process(checkpoint, tmp_path):
    empty = tmp_path / "no-images"
    empty.mkdir()  # INT8 calibration finds nothing: that export fails, the others must not
    kinds = [ONNX, INT8, TS]
    results = {}
    for jobs in (1, 2):
        lines: list[str] = []
        settings = ExportSettings(tmp_path / "cache", calibration=empty, verify=False, jobs=jobs)
        files, errors = export_files(checkpoint, kinds, tmp_path / f"jobs{jobs}", settings, lines.append)
        assert set(files) == {ONNX, TS} and set(errors) == {INT8}, errors
        assert "no images for calibration" in errors[INT8]
        assert any(f"exporting onnx int8 failed: {errors[INT8]}" in line for line in lines)
        assert any("2 at a time" in line for line in lines) == (jobs == 2), lines
        if jobs == 2:  # written by the workers, not by the one-at-a-time pass after them
            for kind in (ONNX, TS):
                assert f"exported {files[kind][0]} in" in "\n".join(lines), lines
            assert not any("worker process" in line for line in lines), lines
        results[jobs] = files

    for part in (0, 1):  # the full file and the companion cut out of it
        assert results[1][ONNX][part].read_bytes() == results[2][ONNX][part].read_bytes()
    images = sample_batch((160, 160), 2)
    for part in (0, 1):  # TorchScript archives differ byte for byte between saves; their outputs must not
        one, two = (torch.jit.load(str(results[jobs][TS][part])) for jobs in (1, 2))
        with torch.no_grad():
            for a, b in zip(one(images), two(images)):
                torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_export_jobs_must_be_positive(checkpoint, tmp_path):
    with pytest.raises(SSDDeployError, match="--export-jobs 0"):
        run_parity(checkpoint, ParityConfig(export_jobs=0, progress=False), tmp_path)
    with pytest.raises(SSDDeployError, match="--export-jobs 0"):
        LatencyConfig(export_jobs=0).check()
    with pytest.raises(SSDDeployError, match="--export-jobs 0"):  # before any data, training or export
        run_demo(DemoConfig(out=tmp_path / "demo", export_jobs=0, progress=False))
    assert not (tmp_path / "demo").exists()

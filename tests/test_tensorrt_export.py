"""``ssd-export --format tensorrt``: refused in one line before any work where TensorRT or a CUDA GPU
is missing, and otherwise an engine and its JSON sidecar written together or not at all.

No engine is built here: the pair-writing tests replace the ONNX export and TensorRT's builder by
stand-ins that write placeholder bytes, so they check only what ssd-export does around the build
(options passed on, the sidecar, the atomic pair). Real engines are built and compared with ONNX
Runtime in ``tests/test_tensorrt.py`` on a machine with TensorRT and a GPU.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from helpers import informative_init

import ssd_deploy.runtimes.tensorrt as trt_runtime
from ssd_deploy.calibration import Calibration
from ssd_deploy.checkpoint import save_checkpoint
from ssd_deploy.cli import export as export_cli
from ssd_deploy.cli import run_cli
from ssd_deploy.compare import Comparison, Tolerances
from ssd_deploy.data.shapes import CLASS_NAMES, render_scene
from ssd_deploy.devices import NO_CUDA
from ssd_deploy.errors import ExportError, RuntimeUnavailableError, SSDDeployError
from ssd_deploy.export import FORMATS, ExportOptions, export_model, format_of_file, read_metadata
from ssd_deploy.export import api as export_api
from ssd_deploy.export import tensorrt_engine
from ssd_deploy.export.formats import read_metadata as read_onnx_file_metadata
from ssd_deploy.models import create_model
from ssd_deploy.runtimes import load
from ssd_deploy.runtimes.tensorrt import engine_record, read_engine_record, sidecar_path

SIZE = (128, 128)
CAN_BUILD = importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()


@pytest.fixture(scope="module")
def model():
    return informative_init(create_model("ssdlite_mobilenet_v2", num_classes=len(CLASS_NAMES), input_size=SIZE))


# ---------------------------------------------------------------------------------------------
# Refused before any work


@pytest.mark.skipif(CAN_BUILD, reason="this machine has TensorRT and a CUDA GPU: nothing to refuse")
def test_refused_here_in_one_line_naming_what_is_missing(model, tmp_path, monkeypatch, capsys):
    checkpoint = save_checkpoint(tmp_path / "model.pt", model, list(CLASS_NAMES))
    monkeypatch.setattr(torch.onnx, "export", lambda *args, **kwargs: pytest.fail("the ONNX export started"))
    monkeypatch.setattr(export_api, "load_checkpoint", lambda *args: pytest.fail("the checkpoint was read"))
    assert run_cli(export_cli.main, ["--model", str(checkpoint), "--format", "tensorrt"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("error: --format tensorrt: ") and len(lines) == 2  # "exporting ..." and the error
    if importlib.util.find_spec("tensorrt") is None:
        assert "tensorrt is not installed" in lines[-1]
    if not torch.cuda.is_available():
        assert "device cuda: " + NO_CUDA in lines[-1]  # --device auto is CUDA for TensorRT
    assert "pip install 'ssd-deploy[gpu]'" in lines[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # nothing written, nothing left behind


def test_build_problem_names_the_package_and_the_gpu_apart(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ModuleNotFoundError
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert tensorrt_engine.build_problem("cuda").startswith("tensorrt is not installed. Note: pip install 'ssd-deploy[gpu]'")
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.9.0.34"))
    assert tensorrt_engine.build_problem("cuda") is None and tensorrt_engine.build_problem("cuda:0") is None
    assert tensorrt_engine.build_problem("cuda:1") == (
        "device cuda:1: this machine has 1 CUDA device(s). Note: --device cuda (or cuda:N) on one of its GPUs"
    )
    assert tensorrt_engine.build_problem("cpu") == (
        "device cpu: TensorRT builds engines on an NVIDIA GPU. Note: --device cuda (or cuda:N) on one of its GPUs"
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    problem = tensorrt_engine.build_problem("cuda")
    assert problem.startswith(f"device cuda: {NO_CUDA}. Note: pip install") and "tensorrt" not in problem.split(".")[0]


def test_auto_device_is_cuda_for_tensorrt(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    parser = export_cli.build_parser()
    assert export_cli._device(parser.parse_args(["--model", "m.pt", "--format", "tensorrt"])) == "cuda"
    assert export_cli._device(parser.parse_args(["--model", "m.pt", "--format", "tensorrt", "--device", "cuda:1"])) == "cuda:1"


def test_engines_are_known_by_suffix_and_read_through_their_sidecar(tmp_path):
    assert format_of_file(Path("model.engine")) is FORMATS["tensorrt"]
    assert FORMATS["tensorrt"].companions(tmp_path / "model.engine") == (tmp_path / "model.engine.json",)
    with pytest.raises(SSDDeployError, match=r"no model.engine.json beside it"):
        (tmp_path / "model.engine").write_bytes(b"x")
        read_metadata(tmp_path / "model.engine")


# ---------------------------------------------------------------------------------------------
# Writing the pair, with stand-ins for the ONNX export and TensorRT's builder (no engine is built)


@dataclasses.dataclass
class Stand_ins:
    onnx_metadata: list = dataclasses.field(default_factory=list)  # metadata handed to the ONNX writer
    onnx_options: list = dataclasses.field(default_factory=list)  # opset, simplify
    builds: list = dataclasses.field(default_factory=list)  # (EngineOptions, device, calibration cache)
    fail_after_engine: bool = False


@pytest.fixture
def stand_ins(monkeypatch):
    """--format tensorrt usable here; the ONNX writer writes an empty graph with the metadata, the
    builder writes placeholder bytes and the sidecar build_engine writes (with a made-up GPU)."""
    made = Stand_ins()
    monkeypatch.setitem(FORMATS, "tensorrt", dataclasses.replace(FORMATS["tensorrt"], problem=lambda device: None))

    def write_onnx(network, spec, example, path, metadata, opset, simplify):
        made.onnx_metadata.append(dict(metadata))
        made.onnx_options.append((opset, simplify))
        graph = onnx.helper.make_graph([], "stand-in", [], [])
        model = onnx.helper.make_model(graph)
        onnx.helper.set_model_props(model, metadata)
        onnx.save_model(model, str(path))

    def build_engine(onnx_path, engine_path, options, device, calibration_cache):
        made.builds.append((options, device, Path(calibration_cache)))
        Path(calibration_cache).write_bytes(b"calibration table")  # as TensorRT 10 writes one
        Path(engine_path).write_bytes(b"placeholder, not an engine")
        if made.fail_after_engine:
            raise SSDDeployError(f"{onnx_path}: TensorRT could not build an engine (planted)")
        metadata = read_onnx_file_metadata(onnx_path)
        record = engine_record(metadata, options, "10.9.0.34", "NVIDIA A100-SXM4-80GB", "8.0", onnx_path, "0" * 64)
        sidecar_path(engine_path).write_text(json.dumps(record))
        return engine_path

    monkeypatch.setattr(tensorrt_engine, "write_onnx", write_onnx)
    monkeypatch.setattr(trt_runtime, "build_engine", build_engine)
    return made


def test_engine_and_sidecar_land_together(model, tmp_path, stand_ins):
    options = ExportOptions(format="tensorrt", dynamic_batch=True, verify=False, simplify=True)
    result = export_model(model, tmp_path / "model.engine", options, list(CLASS_NAMES))
    assert result.path == tmp_path / "model.engine" and result.verification is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.engine", "model.engine.json"]  # no temporary file
    assert (tmp_path / "model.engine").read_bytes() == b"placeholder, not an engine"
    (engine_options, device, calibration_cache), = stand_ins.builds
    assert engine_options.precision == "fp32" and engine_options.calibration == Calibration() and device == "cpu"
    assert not calibration_cache.exists()  # it lived in the temporary folder of the ONNX
    assert stand_ins.onnx_options == [(options.opset, True)]
    onnx_metadata = {key: json.loads(value) for key, value in stand_ins.onnx_metadata[0].items()}
    assert onnx_metadata["format"] == "onnx" and onnx_metadata["precision"] == "fp32"
    record, metadata = read_engine_record(tmp_path / "model.engine")
    assert record["onnx"] == {"path": None, "sha256": "0" * 64}  # the ONNX was temporary
    assert metadata == read_metadata(tmp_path / "model.engine") == result.metadata
    assert metadata.format == "tensorrt" and metadata.simplifier.startswith("onnxslim ")


@pytest.mark.skipif(CAN_BUILD, reason="this machine can run the placeholder: it would try to")
def test_an_exported_engine_goes_to_the_tensorrt_runtime(model, tmp_path, stand_ins):
    export_model(model, tmp_path / "model.engine", ExportOptions(format="tensorrt", verify=False), list(CLASS_NAMES))
    with pytest.raises(RuntimeUnavailableError, match=r"model.engine: runtime tensorrt: not usable here"):
        load(tmp_path / "model.engine")


@pytest.mark.parametrize("precision, onnx_precision", [("fp16", "fp16"), ("int8", "fp32")])
def test_precision_flags_map_to_engine_options(precision, onnx_precision, model, tmp_path, stand_ins):
    calibration = Calibration(_images(tmp_path / "calib"), 3)
    options = ExportOptions(format="tensorrt", precision=precision, calibration=calibration, verify=False)
    result = export_model(model, tmp_path / "model.engine", options, list(CLASS_NAMES))
    (engine_options, _, _), = stand_ins.builds
    assert engine_options.precision == precision
    assert engine_options.calibration == (calibration if precision == "int8" else Calibration())
    assert json.loads(stand_ins.onnx_metadata[0]["precision"]) == onnx_precision  # int8: calibrated from the float graph
    assert read_metadata(result.path).precision == precision
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob("*.calib"))


def test_a_failed_build_leaves_neither_file(model, tmp_path, stand_ins):
    stand_ins.fail_after_engine = True  # the engine's bytes are written, its sidecar never
    with pytest.raises(SSDDeployError, match="could not build an engine"):
        export_model(model, tmp_path / "model.engine", ExportOptions(format="tensorrt", verify=False), list(CLASS_NAMES))
    assert list(tmp_path.iterdir()) == []


def test_a_failed_check_leaves_neither_file_nor_replaces_the_old_pair(model, tmp_path, stand_ins, monkeypatch):
    old = {name: f"old {name}".encode() for name in ("model.engine", "model.engine.json")}
    for name, content in old.items():
        (tmp_path / name).write_bytes(content)
    checked = []
    monkeypatch.setattr(export_api, "load_runner_function", lambda path, device: checked.append(sorted(p.name for p in tmp_path.iterdir())))
    monkeypatch.setattr(export_api, "float32_tolerances", lambda *args: Tolerances())
    monkeypatch.setattr(export_api, "verify", lambda *args, **kwargs: Comparison("detections", Tolerances(), problems=["planted"]))
    with pytest.raises(ExportError, match="does not reproduce the PyTorch model"):
        export_model(model, tmp_path / "model.engine", ExportOptions(format="tensorrt"), list(CLASS_NAMES))
    # The check ran on the temporary pair, beside the old one ...
    assert len(checked) == 1 and len(checked[0]) == 4
    assert {name for name in checked[0] if name.endswith(".tmp.engine") or name.endswith(".tmp.engine.json")}
    # ... which is left exactly as it was, with nothing else beside it.
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == old


def _images(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), render_scene(rng, SIZE).image)
    return folder

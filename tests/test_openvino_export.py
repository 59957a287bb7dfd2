"""``ssd-export --format openvino``: an OpenVINO IR (.xml + .bin) with the metadata inside, FP32
weights, verified through the OpenVINO runtime like every other format, written as a pair or not
at all."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import informative_init

from ssd_deploy.compare import Comparison, Tolerances, compare_detections
from ssd_deploy.data.shapes import CLASS_NAMES, render_scene
from ssd_deploy.errors import ExportError
from ssd_deploy.export import ExportOptions, export_model, read_metadata
from ssd_deploy.export import api as export_api
from ssd_deploy.models import create_model
from ssd_deploy.pipeline import preprocess
from ssd_deploy.runtimes import load

openvino = pytest.importorskip("openvino")
SIZE = (128, 128)


@pytest.fixture(scope="module")
def model():
    return informative_init(create_model("ssdlite_mobilenet_v2", num_classes=len(CLASS_NAMES), input_size=SIZE))


def test_ir_is_verified_fp32_and_detects_as_the_onnx_file(model, tmp_path):
    result = export_model(model, tmp_path / "model.xml", ExportOptions(format="openvino", dynamic_batch=True), list(CLASS_NAMES))
    assert result.verification is not None and result.verification.ok, result.verification.problems
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "model.xml"]  # no temporary file left
    metadata = read_metadata(tmp_path / "model.xml")
    assert metadata == result.metadata and metadata.precision == "fp32" and metadata.class_names == tuple(CLASS_NAMES)
    # FP32 weights: openvino.save_model would have compressed them to FP16 by default.
    ir = openvino.Core().read_model(str(tmp_path / "model.xml"))
    constants = {str(op.get_element_type()) for op in ir.get_ops() if op.get_type_name() == "Constant"}
    assert "<Type: 'float32'>" in constants and "<Type: 'float16'>" not in constants
    onnx_file = export_model(model, tmp_path / "onnx" / "model.onnx", ExportOptions(dynamic_batch=True, verify=False), list(CLASS_NAMES)).path
    rng = np.random.default_rng(4)
    batch, _ = preprocess([render_scene(rng, (200, 160)).image for _ in range(3)], SIZE)
    names = ("num_detections", "boxes", "scores", "labels")
    ir_out, onnx_out = (load(path, runtime="openvino").infer(batch) for path in (tmp_path / "model.xml", onnx_file))
    onnx_padded, ir_padded = ([torch.from_numpy(out[name]) for name in names] for out in (onnx_out, ir_out))
    comparison = compare_detections(onnx_padded, ir_padded, Tolerances(box_atol=1e-5, score_atol=1e-6), 0.01, 0.45)
    assert comparison.ok and comparison.matched > 0, comparison.problems  # the same OpenVINO graph, read from either file


def test_a_failed_check_leaves_neither_file(model, tmp_path, monkeypatch):
    monkeypatch.setattr(export_api, "verify", lambda *args, **kwargs: Comparison("detections", Tolerances(), problems=["planted"]))
    with pytest.raises(ExportError, match="does not reproduce the PyTorch model"):
        export_model(model, tmp_path / "model.xml", ExportOptions(format="openvino"), list(CLASS_NAMES))
    assert list(tmp_path.iterdir()) == []

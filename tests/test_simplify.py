"""``ssd-export --simplify``: the ONNX graph simplified by onnxslim, with the metadata kept (and
saying so), verified against PyTorch on the simplified file, and detecting as the plain export.

References: the plain ONNX export of the same model (ONNX Runtime running both files), compared
with the float32 tolerances of ``ssd_deploy.compare`` (``FP32_TOLERANCES``).
"""

from __future__ import annotations

import sys

import onnx
import onnxruntime
import pytest
import torch
from helpers import informative_init

from ssd_deploy.checkpoint import save_checkpoint
from ssd_deploy.cli import run_cli
from ssd_deploy.cli.export import main as export_main
from ssd_deploy.compare import FP32_TOLERANCES, compare_detections
from ssd_deploy.data.shapes import CLASS_NAMES, generate_shapes_dataset
from ssd_deploy.errors import SSDDeployError
from ssd_deploy.export import ExportOptions, export_model, read_metadata
from ssd_deploy.export import api as export_api
from ssd_deploy.export.int8 import quantizable_nodes
from ssd_deploy.export.verify import sample_batch
from ssd_deploy.models import create_model
from ssd_deploy.postprocess import PostprocessConfig
from ssd_deploy.runtimes.exported import load_function

onnxslim = pytest.importorskip("onnxslim")
SIZE = (128, 128)
POST = PostprocessConfig()


@pytest.fixture(scope="module")
def model():
    return informative_init(create_model("ssdlite_mobilenet_v2", num_classes=len(CLASS_NAMES), input_size=SIZE))


@pytest.fixture(scope="module")
def plain(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("plain") / "model.onnx"
    return export_model(model, path, ExportOptions(dynamic_batch=True, verify=False), list(CLASS_NAMES)).path


def test_simplified_export_keeps_metadata_detects_as_the_plain_one_and_is_not_larger(model, plain, tmp_path, monkeypatch):
    verified = []

    def load_runner_function(path, device):  # the file --verify runs: the temporary one being written
        verified.append(len(onnx.load(str(path)).graph.node))
        return real_load(path, device)

    real_load = export_api.load_runner_function
    monkeypatch.setattr(export_api, "load_runner_function", load_runner_function)
    result = export_model(model, tmp_path / "model.onnx", ExportOptions(dynamic_batch=True, simplify=True), list(CLASS_NAMES))
    assert result.verification is not None and result.verification.ok, result.verification.problems
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no temporary file left

    simplified, original = onnx.load(str(result.path)), onnx.load(str(plain))
    onnx.checker.check_model(simplified, full_check=True)
    onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    # onnxslim did run (this graph loses its redundant nodes) and did not grow the graph.
    assert len(simplified.graph.node) < len(original.graph.node)
    assert verified == [len(simplified.graph.node)]  # --verify checked the simplified graph
    # onnxslim drops the nodes' module scopes; every backbone node gets its own back (INT8 needs them).
    assert quantizable_nodes(simplified) == quantizable_nodes(original)

    # Every metadata entry of the plain file is kept; one more says how the graph was simplified.
    props = {p.key: p.value for p in simplified.metadata_props}
    assert props.pop("simplifier") == f'"onnxslim {onnxslim.__version__}"'
    assert props == {p.key: p.value for p in original.metadata_props}
    metadata = read_metadata(result.path)
    assert metadata == result.metadata and metadata.simplifier == f"onnxslim {onnxslim.__version__}"
    assert read_metadata(plain).simplifier == ""

    run_plain, run_simplified = load_function(plain), load_function(result.path)
    for batch in (1, 3):
        images = sample_batch(SIZE, batch, seed=40 + batch)
        expected, actual = run_plain(images), run_simplified(images)
        comparison = compare_detections(expected, actual, FP32_TOLERANCES, POST.score_threshold, POST.iou_threshold)
        assert comparison.ok and comparison.matched > 0, comparison.problems[:5]
        assert torch.equal(expected[0], actual[0])  # as many detections per image


def test_simplified_graph_quantises_to_int8(trained_checkpoint, tmp_path):
    """INT8 finds the backbone by the module scopes onnxslim drops (restored by simplify_model)."""
    calib = generate_shapes_dataset(tmp_path / "calib", 24, seed=7, size=(160, 160), progress=False)  # as test_runtimes
    options = ExportOptions(simplify=True, precision="int8", calibration=calib, int8_quantizer="ort")
    result = export_model(trained_checkpoint, tmp_path / "model-int8.onnx", options)
    assert result.verification is not None and result.verification.ok, result.verification.problems
    quantized = onnx.load(str(result.path))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in quantized.graph.node}
    assert read_metadata(result.path).simplifier.startswith("onnxslim ")


def test_simplified_openvino_ir_says_so(model, tmp_path):
    pytest.importorskip("openvino")
    result = export_model(model, tmp_path / "model.xml", ExportOptions(format="openvino", simplify=True), list(CLASS_NAMES))
    assert result.verification is not None and result.verification.ok, result.verification.problems
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "model.xml"]
    assert read_metadata(tmp_path / "model.xml").simplifier.startswith("onnxslim ")


def test_missing_onnxslim_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxslim", None)  # find_spec -> None, as when not installed
    missing = tmp_path / "never-read.pt"  # the check comes before the checkpoint is read
    assert run_cli(export_main, ["--model", str(missing), "--simplify"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == "error: --simplify needs the onnxslim package. Note: pip install 'ssd-deploy[simplify]'"
    assert list(tmp_path.iterdir()) == []


def test_simplify_is_refused_for_formats_without_an_onnx_graph(model, tmp_path):
    with pytest.raises(SSDDeployError, match=r"--simplify: torchscript files hold no ONNX graph. Note: it applies to onnx, openvino, tensorrt"):
        export_model(model, tmp_path / "model.ts", ExportOptions(format="torchscript", simplify=True), list(CLASS_NAMES))
    assert list(tmp_path.iterdir()) == []


def test_cli_simplify_flag_reaches_the_file(model, tmp_path, capsys):
    checkpoint = save_checkpoint(tmp_path / "model.pt", model, list(CLASS_NAMES))
    assert export_main(["--model", str(checkpoint), "--simplify", "--no-verify"]) == 0
    assert read_metadata(tmp_path / "model.onnx").simplifier.startswith("onnxslim ")

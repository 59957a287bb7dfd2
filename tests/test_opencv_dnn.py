"""OpenCV DNN as a consumer of exported ONNX files (the ``opencv`` runtime, ``ssd-export --opencv-dnn``).

The model is SSDLite-MobileNetV3, the one architecture whose default export OpenCV misreads
(its squeeze-and-excitation blocks, see ssd_deploy/export/opencv_dnn.py), with spread random
weights (informative_init) so that scores are distinct and comparisons test arithmetic, not tie-breaking.
"""

from __future__ import annotations

import re

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper

from helpers import informative_init, padded_detections
from ssd_deploy.cli.detect import main as detect_main
from ssd_deploy.cli.export import build_parser as export_parser
from ssd_deploy.compare import ROUNDING_FACTOR, compare_decoded, compare_detections, float32_tolerances
from ssd_deploy.data.shapes import CLASS_NAMES, render_scene
from ssd_deploy.errors import ExportError, RuntimeUnavailableError, SSDDeployError
from ssd_deploy.export import ExportOptions, export_model
from ssd_deploy.export.opencv_dnn import GUARD_SUFFIX, guard_hardsigmoid_products, misread_nodes
from ssd_deploy.models import create_model
from ssd_deploy.pipeline import preprocess
from ssd_deploy.runtimes import available, load

SIZE = 128


@pytest.fixture(scope="module")
def model():
    return informative_init(create_model("ssdlite_mobilenet_v3", num_classes=len(CLASS_NAMES), input_size=(SIZE, SIZE)))


@pytest.fixture(scope="module")
def files(model, tmp_path_factory):
    """The files for OpenCV (dynamic batch, NMS inside and not; verified on ONNX Runtime and OpenCV
    DNN) and a default export (not verified: only its graph matters here)."""
    folder = tmp_path_factory.mktemp("opencv_files")
    options = {
        "nms": ExportOptions(dynamic_batch=True, opencv_dnn=True),
        "raw": ExportOptions(dynamic_batch=True, nms=False, opencv_dnn=True, verify=False),
        "default": ExportOptions(dynamic_batch=True, verify=False),
    }
    return {name: export_model(model, folder / f"{name}.onnx", option, list(CLASS_NAMES)) for name, option in options.items()}


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(11)
    return [render_scene(rng, size).image for size in [(200, 300), (128, 128), (360, 480), (90, 160), (256, 256)]]


def _product_graph(hard_swish: bool = False, alpha: float = 1 / 6) -> onnx.ModelProto:
    """y = features * hardsigmoid(mean of features over H, W), features = relu(x): the
    squeeze-and-excitation product; or, ``hard_swish``, y = features * hardsigmoid(features)."""
    nodes = [
        helper.make_node("Relu", ["x"], ["features"]),
        helper.make_node("GlobalAveragePool", ["features"], ["pooled"]),
        helper.make_node("HardSigmoid", ["features" if hard_swish else "pooled"], ["scale"], alpha=alpha, beta=0.5),
        helper.make_node("Mul", ["scale", "features"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "product", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 5, 5])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


def test_guard_makes_opencv_compute_the_squeeze_excitation_product(tmp_path):
    x = np.random.default_rng(0).standard_normal((1, 4, 5, 5)).astype(np.float32)
    product = _product_graph()
    assert misread_nodes(product) == ["y"]
    assert misread_nodes(_product_graph(hard_swish=True)) == []  # Mul(x, HardSigmoid(x)): left alone
    assert misread_nodes(_product_graph(alpha=0.2)) == []  # OpenCV rewrites only alpha 1/6, beta 0.5
    assert guard_hardsigmoid_products(product) == 1 and misread_nodes(product) == []
    assert [node.op_type for node in product.graph.node] == ["Relu", "GlobalAveragePool", "HardSigmoid", "Identity", "Mul"]
    onnx.checker.check_model(product, full_check=True)
    path = tmp_path / "guarded.onnx"
    onnx.save(product, str(path))
    expected = onnxruntime.InferenceSession(str(path)).run(None, {"x": x})[0]
    net = cv2.dnn.readNetFromONNX(str(path))
    net.setInput(x, "x")
    got = net.forward()
    assert got.shape == (1, 4, 5, 5)  # unguarded, OpenCV 5.0.0 returns HardSwish(pooled): [1, 4, 1, 1]
    assert np.abs(got - expected).max() <= 1e-6


def test_default_exports_are_unchanged_and_refused_by_opencv(files):
    default = files["default"].path
    graph = onnx.load(str(default)).graph
    assert not any(node.name.endswith(GUARD_SUFFIX) for node in graph.node)
    assert len(misread_nodes(onnx.load(str(default)))) == 8  # one per squeeze-and-excitation block
    with pytest.raises(ExportError, match=rf"^{re.escape(str(default))}: OpenCV DNN .*misreads 8 HardSigmoid x Mul.*ssd-export --opencv-dnn"):
        load(default, runtime="opencv")
    # ONNX Runtime runs either file: the guard is an Identity
    assert misread_nodes(onnx.load(str(files["nms"].path))) == []


def test_export_for_opencv_is_verified_on_opencv_too(files):
    result = files["nms"]
    assert result.verification.ok, result.verification.problems[:3]
    assert any("OpenCV DNN" in note for note in result.notes)
    assert result.metadata.batch is None  # OpenCV 5 runs a dynamic batch


@pytest.mark.parametrize("file", ["nms", "raw"])
def test_opencv_detects_what_onnxruntime_detects(file, files, images, model):
    """Same file, same images: OpenCV DNN's detections are ONNX Runtime's, within the model's own
    float32 tolerances (ROUNDING_FACTOR x its float32 rounding against float64: each runtime
    measured 0.5-1.2 x that rounding away from PyTorch, so two runtimes differ by at most ~2.4 x)."""
    batch, _ = preprocess(images, (SIZE, SIZE))
    tolerances = float32_tolerances(model, model.priors, [batch])
    assert ROUNDING_FACTOR >= 2.4
    path = files[file].path
    with load(path, runtime="opencv", max_batch=2) as opencv, load(path, runtime="onnxruntime") as reference:
        assert opencv.runner.name == "opencv" and opencv.runner.precision == "fp32"
        got = [torch.from_numpy(v) for v in opencv.infer(batch.numpy()).values()]
        expected = [torch.from_numpy(v) for v in reference.infer(batch.numpy()).values()]
        found = opencv.detect(images)  # batches of 2, 2, 1 through one dynamic-batch net
        assert opencv.last_times.batches == 3
        wanted = reference.detect(images)
    post = files[file].metadata.postprocess
    if file == "raw":
        comparison = compare_decoded(expected, got, tolerances)
    else:
        comparison = compare_detections(expected, got, tolerances, post.score_threshold, post.iou_threshold)
        assert comparison.matched >= 0.95 * int(expected[0].sum())
    assert comparison.ok, comparison.problems[:3]
    # Detector.detect: host NMS for "raw", boxes in each image's pixels (compared as fractions)
    assert all(len(d) > 0 for d in found)
    detected = compare_detections(padded_detections(wanted, images), padded_detections(found, images), tolerances, post.score_threshold, post.iou_threshold)
    assert detected.ok, detected.problems[:3]
    assert detected.matched >= 0.95 * sum(len(d) for d in wanted)


def test_opencv_runtime_is_listed_and_checks_its_arguments(files):
    status = available()["opencv"]
    assert status.usable and status.version == cv2.__version__ and status.devices == ("cpu",)
    path = files["nms"].path
    with pytest.raises(RuntimeUnavailableError, match=rf"^{re.escape(str(path))}: runtime opencv: device cuda: OpenCV DNN runs here on the CPU only"):
        load(path, runtime="opencv", device="cuda")
    with pytest.raises(SSDDeployError, match="engine 'fast'. Note: expected one of auto, new, classic"):
        load(path, runtime="opencv", engine="fast")
    with pytest.raises(SSDDeployError, match="precision int8 is not supported"):
        load(path, runtime="opencv", precision="int8")
    with pytest.raises(SSDDeployError, match="unknown option"):
        load(path, runtime="opencv", threads=2)


def test_opencv_dnn_option_is_for_float_onnx(model, tmp_path):
    names = list(CLASS_NAMES)
    with pytest.raises(SSDDeployError, match="--opencv-dnn with --format torchscript"):
        export_model(model, tmp_path / "m.ts", ExportOptions(format="torchscript", opencv_dnn=True), names)
    with pytest.raises(SSDDeployError, match="--opencv-dnn with --format onnx --precision int8"):
        export_model(model, tmp_path / "m.onnx", ExportOptions(precision="int8", calibration=tmp_path, opencv_dnn=True), names)
    assert export_parser().parse_args(["--model", "m.pt", "--opencv-dnn"]).opencv_dnn is True
    assert export_parser().parse_args(["--model", "m.pt"]).opencv_dnn is False


def test_ssd_detect_runs_on_opencv(files, images, tmp_path, capsys):
    picture = tmp_path / "scene.png"
    cv2.imwrite(str(picture), images[0])
    code = detect_main([str(picture), "--model", str(files["nms"].path), "--runtime", "opencv", "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 0
    assert (tmp_path / "out" / "scene.json").is_file()
    assert detect_main(["--list-runtimes"]) == 0
    assert "opencv" in capsys.readouterr().out

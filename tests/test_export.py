"""ssd-export: every format reproduces the eager PyTorch graph, describes itself, and fails cleanly.

References: the eager graph (``GraphSpec.build(model)``) run by PyTorch, ONNX Runtime running the
exported file, onnx.checker. Tolerances are the export issue's: with NMS the same detections
(label, IoU >= 0.999, score within 1e-5); without, boxes within 1e-4 and scores within 1e-5.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from helpers import informative_init

from ssd_deploy.checkpoint import save_checkpoint
from ssd_deploy.cli import run_cli
from ssd_deploy.cli.export import main as export_main
from ssd_deploy.compare import FP32_TOLERANCES, Tolerances, compare_decoded, compare_detections
from ssd_deploy.data.shapes import CLASS_NAMES, render_scene
from ssd_deploy.deploy import DeployModule
from ssd_deploy.errors import CheckpointError, ExportError, SSDDeployError
from ssd_deploy.export import FORMATS, ExportOptions, export_model, get_format, read_metadata
from ssd_deploy.export.graph import GraphSpec
from ssd_deploy.export.verify import sample_batch
from ssd_deploy.models import create_model
from ssd_deploy.postprocess import PostprocessConfig
from ssd_deploy.runtimes import load as load_runtime
from ssd_deploy.runtimes.exported import load_function

SIZE = (128, 128)
POST = PostprocessConfig()


@pytest.fixture(scope="module")
def ssdlite():
    return informative_init(create_model("ssdlite_mobilenet_v2", num_classes=len(CLASS_NAMES), input_size=SIZE))


@pytest.fixture(scope="module")
def vgg():
    return informative_init(create_model("ssd300_vgg16", num_classes=4), seed=1)


def _eager(model, nms=True, post=POST, batch=None):
    return GraphSpec(model.priors, model.config.input_size, nms, post, batch).build(model)


def _assert_same(model, path, images, nms=True, post=POST, tolerances=FP32_TOLERANCES):
    """Run the exported file (in a fresh loader) and the eager graph on ``images``; compare."""
    run = load_function(path)
    with torch.inference_mode():
        expected = _eager(model, nms, post)(images)
    actual = run(images)
    if nms:
        comparison = compare_detections(expected, actual, tolerances, post.score_threshold, post.iou_threshold)
    else:
        comparison = compare_decoded(expected, actual, tolerances)
    assert comparison.ok, comparison.problems[:5]
    return expected, actual


@pytest.fixture(scope="module")
def exported(ssdlite, tmp_path_factory):
    """One dynamic-batch export per format with NMS (pt2 is slow to compile: one file only)."""
    folder = tmp_path_factory.mktemp("exports")
    return {
        name: export_model(
            ssdlite, folder / f"model{get_format(name).suffix}", ExportOptions(format=name, dynamic_batch=True), list(CLASS_NAMES)
        )
        for name in ("torchscript", "onnx", "pt2")
    }


@pytest.mark.parametrize("name", ["torchscript", "onnx", "pt2"])
def test_dynamic_batch_export_reproduces_pytorch(name, exported, ssdlite):
    result = exported[name]
    assert result.verification is not None and result.verification.ok
    assert result.verification.images == 4  # batches of 3 and 1
    assert result.verification.matched > 0
    for batch in (1, 2, 5):
        expected, actual = _assert_same(ssdlite, result.path, sample_batch(SIZE, batch, seed=batch + 10))
        assert actual[0].dtype == torch.int32 and actual[3].dtype == torch.int32
        assert [tuple(t.shape) for t in actual] == [(batch,), (batch, 200, 4), (batch, 200), (batch, 200)]


@pytest.mark.parametrize("name, runtime", [("torchscript", "torchscript"), ("onnx", "onnxruntime"), ("pt2", "aotinductor")])
def test_exports_run_behind_the_runtime_interface(name, runtime, exported, ssdlite):
    with load_runtime(exported[name].path) as detector:
        assert detector.runner.name == runtime and detector.metadata == exported[name].metadata
        batch = sample_batch(SIZE, 2, seed=21)
        outputs = detector.infer(batch)
    assert list(outputs) == ["num_detections", "boxes", "scores", "labels"]
    with torch.inference_mode():
        expected = DeployModule(ssdlite)(batch)
    actual = [torch.from_numpy(value) for value in outputs.values()]
    assert compare_detections(expected, actual, FP32_TOLERANCES, 0.01, 0.45).ok


@pytest.mark.parametrize("name", ["torchscript", "onnx", "pt2"])
def test_metadata_describes_the_file(name, exported):
    meta = read_metadata(exported[name].path)
    assert meta == exported[name].metadata
    assert meta.format == name and meta.arch == "ssdlite_mobilenet_v2"
    assert list(meta.class_names) == list(CLASS_NAMES) and meta.input_size == SIZE
    assert meta.nms and meta.batch is None and meta.precision == "fp32"
    assert meta.output_names == ("num_detections", "boxes", "scores", "labels")
    assert (meta.score_threshold, meta.iou_threshold, meta.max_detections) == (0.01, 0.45, 200)
    assert meta.mean == (0.5, 0.5, 0.5) and meta.model_config["priors"]["feature_maps"]


def test_onnx_file_is_standard(exported):
    model = onnx.load(str(exported["onnx"].path))
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    ops = {(node.domain, node.op_type) for node in model.graph.node}
    assert ("", "NonMaxSuppression") in ops
    _assert_no_scatter_reduction(model)
    assert {domain for domain, _ in ops} <= {"", "ai.onnx"}, "custom operators in the graph"
    (image_input,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in image_input.type.tensor_type.shape.dim]
    assert image_input.name == "images" and isinstance(dims[0], str) and dims[1:] == [3, *SIZE]
    assert [o.name for o in model.graph.output] == ["num_detections", "boxes", "scores", "labels"]
    props = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert props["class_names"] == list(CLASS_NAMES) and props["contract_version"] == 1


def test_pt2_metadata_is_read_without_loading_and_its_device_is_checked(exported, monkeypatch):
    """The package's metadata (ours and AOTI_DEVICE_KEY) comes from its JSON, not from loading the
    compiled model onto its device; a package runs only on the device type it was compiled for,
    and a CUDA index reaches the loader."""
    from ssd_deploy.export import pt2
    from ssd_deploy.runtimes import aotinductor

    path = exported["pt2"].path
    loads = []
    real_load = torch._inductor.aoti_load_package
    monkeypatch.setattr(torch._inductor, "aoti_load_package", lambda *args, **kwargs: loads.append(kwargs) or real_load(*args, **kwargs))
    metadata = pt2.read_metadata(path)
    assert metadata[pt2.DEVICE_KEY] == "cpu" and json.loads(metadata["arch"]) == "ssdlite_mobilenet_v2"
    assert read_metadata(path) == exported["pt2"].metadata and loads == []
    with monkeypatch.context() as patch, pytest.raises(ExportError, match=r"compiled for cpu, asked to run on cuda:1. Note: run it with device='cpu'"):
        patch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine with two GPUs: the device check is next
        patch.setattr(torch.cuda, "device_count", lambda: 2)
        aotinductor.load_package(path, "cuda:1")
    assert loads == []
    run = aotinductor.load_package(path, "cpu")
    assert loads == [{"device_index": -1}] and run(sample_batch(SIZE, 1, seed=3))[0].shape == (1,)
    assert (aotinductor.device_index("cuda:1"), aotinductor.device_index("cuda"), aotinductor.device_index("cpu")) == (1, -1, -1)


def test_torchscript_convolutions_are_recorded_as_ieee_float32(exported):
    """Tracing records cuDNN's TF32 setting in each ``aten::_convolution`` (its last argument,
    allow_tf32), and PyTorch's default is TF32: such a file computes TF32 on any GPU whatever the
    loading program sets (the GPU check measured scores 1.3e-3 from the CPU's, 50x the model's
    float32 rounding). The writer traces under IEEE float32."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        graph = torch.jit.load(str(exported["torchscript"].path)).inlined_graph
    convolutions = [node for node in graph.nodes() if node.kind() == "aten::_convolution"]
    assert len(convolutions) > 20 and torch.backends.cudnn.conv.fp32_precision != "ieee"  # the default stays as it was
    assert {list(node.inputs())[-1].toIValue() for node in convolutions} == {False}


def test_torchscript_loads_without_torchvision(exported, tmp_path):
    """What LibTorch sees: no torchvision operator in the graph; a process that cannot import
    torchvision loads and runs the file and gets the same outputs."""
    path = exported["torchscript"].path
    images = sample_batch(SIZE, 2, seed=3)
    torch.save(images, tmp_path / "images.pt")
    code = (
        "import sys; sys.modules['torchvision'] = None\n"
        "import torch\n"
        f"m = torch.jit.load({str(path)!r})\n"
        f"images = torch.load({str(tmp_path / 'images.pt')!r}, weights_only=True)\n"
        f"torch.save(tuple(m(images)), {str(tmp_path / 'out.pt')!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    outside = torch.load(tmp_path / "out.pt", weights_only=True)
    inside = load_function(path)(images)
    assert all(torch.equal(a, b) for a, b in zip(outside, inside))
    graph = str(torch.jit.load(str(path)).inlined_graph)
    assert "torchvision::" not in graph


@pytest.mark.parametrize("name", ["torchscript", "onnx"])
def test_fixed_batch_of_three(name, ssdlite, tmp_path):
    result = export_model(ssdlite, tmp_path / f"m{get_format(name).suffix}", ExportOptions(format=name, batch=3))
    assert result.metadata.batch == 3 and result.verification.images == 3
    _assert_same(ssdlite, result.path, sample_batch(SIZE, 3, seed=7))
    with pytest.raises(Exception, match="3|batch|dimension"):
        load_function(result.path)(sample_batch(SIZE, 2))


@pytest.mark.parametrize("name", ["torchscript", "onnx"])
def test_without_nms_outputs_decoded_boxes_and_scores(name, ssdlite, tmp_path):
    result = export_model(ssdlite, tmp_path / f"raw{get_format(name).suffix}", ExportOptions(format=name, nms=False, dynamic_batch=True))
    assert result.metadata.output_names == ("boxes", "scores") and not result.metadata.nms
    images = sample_batch(SIZE, 2, seed=4)
    _, (boxes, scores) = _assert_same(ssdlite, result.path, images, nms=False)
    assert boxes.shape == (2, ssdlite.num_priors, 4) and scores.shape == (2, ssdlite.num_priors, len(CLASS_NAMES))
    assert torch.allclose(scores.sum(-1), torch.ones(2, ssdlite.num_priors), atol=1e-5)


@pytest.mark.parametrize("name", ["torchscript"])  # ONNX: tests/test_verify.py exports VGG16 with 91 classes
def test_ssd300_vgg16(name, vgg, tmp_path):
    result = export_model(vgg, tmp_path / f"vgg{get_format(name).suffix}", ExportOptions(format=name, dynamic_batch=True))
    assert result.verification.ok and result.verification.matched > 0
    _assert_same(vgg, result.path, sample_batch((300, 300), 3, seed=5))


@pytest.mark.parametrize("name", ["torchscript", "onnx"])
def test_nothing_detected_gives_zero_rows(name, ssdlite, tmp_path):
    """A model that sees only background: num_detections 0 and all-zero padded rows."""
    blind = create_model("ssdlite_mobilenet_v2", num_classes=len(CLASS_NAMES), input_size=SIZE)
    blind.load_state_dict(ssdlite.state_dict())
    background_only = torch.tensor([10.0] + [0.0] * (len(CLASS_NAMES) - 1))  # logits per prior
    with torch.no_grad():
        for predictor in blind.head.classification.predictors:
            conv = predictor[-1]  # channels are (prior, class) pairs
            conv.weight.zero_()
            conv.bias.copy_(background_only.repeat(conv.out_channels // len(CLASS_NAMES)))
    result = export_model(blind.eval(), tmp_path / f"blind{get_format(name).suffix}", ExportOptions(format=name, batch=2))
    num, boxes, scores, labels = load_function(result.path)(sample_batch(SIZE, 2))
    assert num.tolist() == [0, 0]
    assert not boxes.any() and not scores.any() and not labels.any()


@pytest.mark.parametrize("name", ["torchscript", "onnx"])
def test_more_candidates_than_k_keeps_the_best_k(name, ssdlite, tmp_path):
    post = PostprocessConfig(score_threshold=0.01, max_detections=5)
    result = export_model(ssdlite, tmp_path / f"k5{get_format(name).suffix}", ExportOptions(format=name, batch=2, postprocess=post))
    images = sample_batch(SIZE, 2)
    expected, actual = _assert_same(ssdlite, result.path, images, post=post)
    assert actual[0].tolist() == [5, 5] and actual[1].shape == (2, 5, 4)
    uncapped = _eager(ssdlite, post=PostprocessConfig(score_threshold=0.01, max_detections=200))(images)
    assert (uncapped[0] > 5).all()  # there were more candidates than K
    assert torch.allclose(actual[2], uncapped[2][:, :5], atol=1e-5)  # and the best K were kept


@pytest.mark.parametrize("name", ["torchscript", "onnx"])
def test_fp16_export(name, ssdlite, tmp_path):
    """float16 network: verified against the eager float16 graph, and within a stated tolerance of
    float32 (decoded outputs: boxes within 2e-3, scores within 5e-3; measured 6e-4 and 1.5e-3)."""
    result = export_model(ssdlite, tmp_path / f"h{get_format(name).suffix}", ExportOptions(format=name, precision="fp16", batch=2))
    assert result.verification.ok and result.metadata.precision == "fp16"
    raw = export_model(ssdlite, tmp_path / f"hraw{get_format(name).suffix}", ExportOptions(format=name, precision="fp16", nms=False, batch=2))
    images = sample_batch(SIZE, 2, seed=9)
    _assert_same(ssdlite, raw.path, images, nms=False, tolerances=Tolerances(box_atol=2e-3, score_atol=5e-3))
    num, *_ = load_function(result.path)(images)
    assert num.dtype == torch.int32 and (num > 0).all()


def _assert_no_scatter_reduction(model: onnx.ModelProto) -> None:
    """TensorRT 10's parser rejects a ScatterND with any ``reduction`` attribute, even "none"."""
    scatters = [node for node in model.graph.node if node.op_type == "ScatterND"]
    assert scatters, "the NMS mask is written by a ScatterND"
    assert not [node.name for node in scatters if any(a.name == "reduction" for a in node.attribute)]


def test_default_scatter_reduction_is_dropped_and_others_kept():
    from ssd_deploy.export.onnx import drop_default_scatter_reduction

    nodes = [
        onnx.helper.make_node("ScatterND", ["x", "i", "u"], ["y0"], reduction="none"),
        onnx.helper.make_node("ScatterND", ["x", "i", "u"], ["y1"], reduction="add"),
        onnx.helper.make_node("ScatterND", ["x", "i", "u"], ["y2"]),
    ]
    graph = onnx.helper.make_graph(nodes, "g", [], [])
    model = onnx.helper.make_model(graph)
    assert drop_default_scatter_reduction(model) == 1
    assert [[(a.name, a.s) for a in node.attribute] for node in model.graph.node] == [[], [("reduction", b"add")], []]


def test_opset_17(ssdlite, tmp_path):
    result = export_model(ssdlite, tmp_path / "o17.onnx", ExportOptions(format="onnx", opset=17))
    model = onnx.load(str(result.path))
    _assert_no_scatter_reduction(model)
    assert [o.version for o in model.opset_import if o.domain == ""] == [17]
    assert result.verification.ok


def test_wrong_input_shape_is_rejected_with_a_clear_message(exported):
    run = load_function(exported["torchscript"].path)
    with pytest.raises(Exception, match=r"expected shape \[N, 3, 128, 128\]"):
        run(torch.rand(1, 3, 96, 128))
    with pytest.raises(Exception, match="float32"):
        run(torch.rand(1, 3, 128, 128).double())
    onnx_run = load_function(exported["onnx"].path)
    with pytest.raises(Exception, match="[Ii]nvalid|dimension|Got"):
        onnx_run(torch.rand(1, 3, 96, 128))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
@pytest.mark.parametrize("name", ["torchscript", "pt2"])
def test_cuda_without_a_gpu_names_what_is_missing(name, exported):
    with pytest.raises(ExportError, match="CUDA is not available"):
        load_function(exported[name].path, "cuda")


def test_failed_verification_writes_nothing(ssdlite, tmp_path, monkeypatch):
    import ssd_deploy.export.api as api

    real = api.verify

    def corrupted(reference, run, *args):
        return real(reference, lambda images: tuple(t * 1.01 if t.is_floating_point() else t for t in run(images)), *args)

    monkeypatch.setattr(api, "verify", corrupted)
    target = tmp_path / "bad.ts"
    with pytest.raises(ExportError, match="does not reproduce the PyTorch model"):
        export_model(ssdlite, target, ExportOptions(format="torchscript"))
    assert list(tmp_path.iterdir()) == []


def test_interrupted_export_leaves_no_file(ssdlite, tmp_path, monkeypatch):
    def interrupted(network, spec, example, path, metadata):
        Path(path).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setitem(FORMATS, "torchscript", dataclasses.replace(FORMATS["torchscript"], write=interrupted))
    (tmp_path / "m.ts").write_bytes(b"previous export")
    with pytest.raises(KeyboardInterrupt):
        export_model(ssdlite, tmp_path / "m.ts", ExportOptions(format="torchscript"))
    assert [p.name for p in tmp_path.iterdir()] == ["m.ts"]
    assert (tmp_path / "m.ts").read_bytes() == b"previous export"


def test_bad_requests_get_clear_errors(ssdlite, tmp_path):
    with pytest.raises(SSDDeployError, match="Did you mean onnx"):
        export_model(ssdlite, tmp_path / "m.x", ExportOptions(format="onx"))
    with pytest.raises(SSDDeployError, match="should end in .pt or .ts"):
        export_model(ssdlite, tmp_path / "m.onnx", ExportOptions(format="torchscript"))
    with pytest.raises(SSDDeployError, match="opset 13: too old"):
        export_model(ssdlite, tmp_path / "m.onnx", ExportOptions(format="onnx", opset=13))
    with pytest.raises(SSDDeployError, match="CUDA is not available|expected cpu or cuda"):
        export_model(ssdlite, tmp_path / "m.onnx", ExportOptions(device="cuda" if not torch.cuda.is_available() else "tpu"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ExportError, match="cannot write"):
        export_model(ssdlite, blocker / "m.ts", ExportOptions(format="torchscript"))
    with pytest.raises(ExportError, match="no ssd-deploy metadata|not a readable"):
        read_metadata(_foreign_onnx(tmp_path))


def _foreign_onnx(folder: Path) -> Path:
    node = onnx.helper.make_node("Identity", ["x"], ["y"])
    value = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph([node], "g", [value("x", 1, [1])], [value("y", 1, [1])])
    path = folder / "foreign.onnx"
    onnx.save_model(onnx.helper.make_model(graph), str(path))
    return path


def test_cli_exports_a_checkpoint_and_reports_json(ssdlite, tmp_path, capsys):
    checkpoint = save_checkpoint(tmp_path / "model.pt", ssdlite, list(CLASS_NAMES))
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    rng = np.random.default_rng(0)
    for i, size in enumerate([(200, 300), (90, 90), (128, 128)]):  # any size: resized like at run time
        cv2.imwrite(str(pictures / f"{i}.png"), render_scene(rng, size).image)
    argv = ["--checkpoint", str(checkpoint), "--format", "torchscript", "--batch", "2", "--max-det", "50"]
    assert export_main(argv + ["--verify-images", str(pictures), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["path"] == str(tmp_path / "model.ts") and report["verification"]["ok"]
    assert report["verification"]["images"] == 2 and report["verification"]["matched"] > 0
    assert report["metadata"]["max_detections"] == 50 and report["metadata"]["batch"] == 2
    assert read_metadata(tmp_path / "model.ts").class_names == tuple(CLASS_NAMES)


def test_cli_errors_exit_non_zero(tmp_path, capsys):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    assert run_cli(export_main, ["--checkpoint", str(corrupt)]) == 2
    assert "corrupt.pt" in capsys.readouterr().err
    assert run_cli(export_main, ["--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert run_cli(export_main, ["--checkpoint", str(corrupt), "--verify-images", str(tmp_path / "empty")]) == 2
    assert "no images found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        export_main(["--checkpoint", str(corrupt), "--format", "tflite"])
    assert exit_info.value.code == 2
    for flags in (["--fp16", "--int8"], ["--half", "--precision", "int8"]):  # one precision per file
        with pytest.raises(SystemExit) as exit_info:
            export_main(["--checkpoint", str(corrupt), *flags])
        assert exit_info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert run_cli(export_main, ["--checkpoint", str(corrupt), "--calib-images", "0"]) == 2
    assert "--calib-images 0: expected a whole number of images" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.onnx"))


def test_torchvision_state_dict_is_a_valid_input(tmp_path):
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    torch.manual_seed(0)
    tv = informative_init(ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=91))
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    result = export_model(tmp_path / "tv.pth", options=ExportOptions(format="torchscript"))
    assert result.path == tmp_path / "tv.ts" and result.verification.ok
    meta = read_metadata(result.path)
    assert meta.arch == "ssdlite_mobilenet_v3" and meta.input_size == (320, 320)
    assert meta.class_names[1] == "person" and len(meta.class_names) == 91
    assert meta.resize == "torchvision" and meta.model_config["resize"] == "torchvision"  # torchvision's own transform


def test_resize_method_is_recorded_and_old_files_read_as_opencv(exported, tmp_path):
    path = exported["onnx"].path
    assert read_metadata(path).resize == "opencv"  # trained here: OpenCV's uint8 resize
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["resize"]) == "opencv"
    for edit, expected in (({"resize": None}, "opencv"), ({"resize": '"torchvision"'}, "torchvision")):
        del model.metadata_props[:]
        onnx.helper.set_model_props(model, {k: v for k, v in {**props, **edit}.items() if v is not None})
        onnx.save(model, str(tmp_path / "edited.onnx"))
        assert read_metadata(tmp_path / "edited.onnx").resize == expected
        with load_runtime(tmp_path / "edited.onnx", runtime="onnxruntime") as detector:
            assert detector.metadata.resize == expected
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {**props, "resize": '"area"'})
    onnx.save(model, str(tmp_path / "unknown.onnx"))
    with pytest.raises(ExportError, match="resize method 'area' is unknown"):
        read_metadata(tmp_path / "unknown.onnx")


def test_checkpoint_errors_propagate(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        export_model(tmp_path / "missing.pt")


@pytest.mark.parametrize(
    "options, problem",
    [
        (ExportOptions(format="onnx", precision="int8"), "--int8 needs --calib FOLDER"),
        (ExportOptions(format="torchscript", precision="int8", calibration=Path(".")), "INT8 files are ONNX"),
        (ExportOptions(format="onnx", precision="bf16", calibration=Path(".")), "precision 'bf16': expected one of fp32, fp16, int8"),
        (ExportOptions(format="onnx", precision="int8", calibration=Path("/nonexistent")), "/nonexistent: calibration folder not found"),
    ],
)
def test_int8_options_are_checked_before_exporting(options, problem, ssdlite, tmp_path):
    output = tmp_path / f"model{get_format(options.format).suffix}"
    with pytest.raises(SSDDeployError, match=re.escape(problem)):
        export_model(ssdlite, output, options)
    assert not output.exists()

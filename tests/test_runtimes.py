"""One Detector interface over every runtime: the same detections from a trained model on each.

Runtimes tested here (CPU): PyTorch eager (the reference), TorchScript, ONNX Runtime and OpenVINO,
on files with NMS inside, without NMS (host NMS) and with a fixed batch; INT8 and reduced
precisions with looser, stated criteria. TensorRT has its own tests (tests/test_tensorrt.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch

from helpers import padded_detections
from ssd_deploy.cli import run_cli
from ssd_deploy.cli.detect import main as detect_main
from ssd_deploy.compare import Tolerances, compare_detections, detection_recall
from ssd_deploy.data.shapes import CLASS_NAMES, generate_shapes_dataset, render_scene
from ssd_deploy.errors import ExportError, ImageReadError, RuntimeUnavailableError, SSDDeployError
from ssd_deploy.export import ExportOptions, export_int8_from_float, export_model
from ssd_deploy.export.int8 import asymmetric_qdq_nodes, module_scopes
from ssd_deploy.pipeline import preprocess
from ssd_deploy.runtimes import RUNTIMES, InputError, available, load, runtime_for_file

# The runtimes issue's FP32 parity tolerances: same labels, IoU >= 0.99, scores within 1e-4.
FP32_PARITY = Tolerances(box_atol=1e-3, score_atol=1e-4, min_iou=0.99)
# Reduced precisions are judged as detectors (see ssd_deploy.compare.RecallCriterion): each
# run must find 95 % of the other's detections scoring above 0.1 (same label, IoU >= 0.5, score
# above 0.05). This briefly trained model scores few objects above 0.3, hence 0.1. Measured on 16
# scenes (about 400 detections): BF16 and FP16 (OpenVINO) 99.8-100 %, INT8 (NNCF or ONNX Runtime
# quantiser, on ONNX Runtime or OpenVINO) 98.5-100 %.
MIN_RECALL = 0.95


@pytest.fixture(scope="module")
def files(trained_checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("runtime_files")
    calibration = folder / "calibration"
    generate_shapes_dataset(calibration, 24, seed=7, size=(160, 160), progress=False)
    options = {
        "ts": ExportOptions(format="torchscript", dynamic_batch=True),
        "onnx": ExportOptions(format="onnx", dynamic_batch=True),
        "raw": ExportOptions(format="onnx", dynamic_batch=True, nms=False),
        "fixed": ExportOptions(format="onnx", batch=2),
        "fixed_raw": ExportOptions(format="onnx", batch=2, nms=False),
        "int8_nncf": ExportOptions(format="onnx", dynamic_batch=True, precision="int8", calibration=calibration, int8_quantizer="nncf"),
        "int8_ort": ExportOptions(format="onnx", dynamic_batch=True, precision="int8", calibration=calibration, int8_quantizer="ort"),
    }
    paths = {"ckpt": trained_checkpoint}
    for name, option in options.items():
        suffix = ".ts" if option.format == "torchscript" else ".onnx"
        paths[name] = export_model(trained_checkpoint, folder / f"{name}{suffix}", option).path
    import openvino  # an OpenVINO IR converted from the exported ONNX keeps its metadata

    paths["xml"] = folder / "ir" / "model.xml"
    openvino.save_model(openvino.convert_model(paths["onnx"]), paths["xml"], compress_to_fp16=False)  # FP32 weights
    return paths


@pytest.fixture(scope="module")
def images():
    """Held-out scenes of several sizes and pixel formats (gray, BGRA, 16-bit)."""
    rng = np.random.default_rng(123)
    scenes = [render_scene(rng, size).image for size in [(200, 300), (128, 128), (360, 480), (90, 160), (256, 256)]]
    return scenes + [
        cv2.cvtColor(scenes[0], cv2.COLOR_BGR2GRAY),
        cv2.cvtColor(scenes[1], cv2.COLOR_BGR2BGRA),
        scenes[2].astype(np.uint16) * 257,
    ]


@pytest.fixture(scope="module")
def reference(files, images):
    with load(files["ckpt"]) as detector:
        assert detector.runner.name == "pytorch"
        return detector.detect(images)


@pytest.mark.parametrize(
    "runtime, file",
    [
        ("torchscript", "ts"),
        ("onnxruntime", "onnx"),
        ("openvino", "onnx"),
        ("openvino", "xml"),
        ("onnxruntime", "raw"),
        ("openvino", "raw"),
        ("onnxruntime", "fixed"),
        ("openvino", "fixed"),
        ("onnxruntime", "fixed_raw"),
    ],
)
def test_every_runtime_gives_the_same_detections(runtime, file, files, images, reference):
    with load(files[file], runtime=runtime, max_batch=3) as detector:
        assert detector.runner.name == runtime
        detections = detector.detect(images)
        assert detector.last_times.batches == (4 if file.startswith("fixed") else 3) and detector.last_times.infer_ms > 0
    assert [len(d) > 0 for d in detections] == [True] * len(images)
    comparison = compare_detections(padded_detections(reference, images), padded_detections(detections, images), FP32_PARITY, 0.01, 0.45)
    assert comparison.ok, comparison.problems[:5]
    assert comparison.matched >= 0.95 * sum(len(d) for d in reference)  # excuses are rare, not the rule
    assert detections[0].class_names == list(CLASS_NAMES)


def test_openvino_compiles_a_free_batch_file_for_each_batch_size(files, images, reference):
    """A file with a free batch runs on OpenVINO reshaped to each batch size it is given (static
    shapes, which its CPU plugin runs faster than dynamic ones); the last few sizes stay compiled,
    and every size gives the reference's detections."""
    from ssd_deploy.runtimes.openvino import MAX_COMPILED_BATCHES

    with load(files["onnx"], runtime="openvino") as detector:
        for max_batch in (8, 3, 2, 1, 5):  # batches of 8; 3 3 2; 2 2 2 2; 1 x 8; 5 3
            detector.max_batch = max_batch
            detections = detector.detect(images)
            comparison = compare_detections(padded_detections(reference, images), padded_detections(detections, images), FP32_PARITY, 0.01, 0.45)
            assert comparison.ok, (max_batch, comparison.problems[:5])
        compiled = detector.runner._by_batch
        assert list(compiled) == [2, 1, 5, 3][-MAX_COMPILED_BATCHES:]
        for size, (model, _) in compiled.items():
            assert [d.get_length() for d in model.inputs[0].get_partial_shape()] == [size, 3, *detector.runner.metadata.input_size]


def test_ctrl_c_after_openvino_runners_closed_out_of_order(files):
    """OpenVINO's compile_model gives the calling thread an alternate signal stack and each
    compiled model puts back the previous one when destroyed: models destroyed in another order
    than made left the main thread on a freed stack, and the next Ctrl-C crashed Python (SIGSEGV).
    Two runners, three batch sizes, closed first-made first, then a SIGINT with a handler."""
    import subprocess
    import sys

    script = f"""
import signal, numpy as np
from ssd_deploy.runtimes import load
first, second = load({str(files["onnx"])!r}, runtime="openvino"), load({str(files["xml"])!r}, runtime="openvino")
for size in (1, 3, 2):
    first.runner.infer(np.zeros((size, 3, *first.runner.metadata.input_size), np.float32))
second.runner.infer(np.zeros((1, 3, *second.runner.metadata.input_size), np.float32))
first.close(); second.close()
caught = []
signal.signal(signal.SIGINT, lambda *_: caught.append(1))
signal.raise_signal(signal.SIGINT)
print("caught", len(caught))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("caught 1"), (run.returncode, run.stderr[-2000:])


@pytest.mark.parametrize("runtime, file, precision", [("openvino", "onnx", "bf16"), ("openvino", "onnx", "fp16"), ("onnxruntime", "int8_nncf", "int8"), ("openvino", "int8_nncf", "int8"), ("onnxruntime", "int8_ort", "int8"), ("openvino", "int8_ort", "int8")])
def test_reduced_precisions_find_the_same_objects(runtime, file, precision, files, images, reference):
    with load(files[file], runtime=runtime, precision=precision) as detector:
        if runtime == "openvino":  # what OpenVINO applied; INT8 files keep their float parts in f32
            hint = detector.runner.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
            native = precision == "int8" or precision.upper() in _openvino_cpu_capabilities()
            applied = precision if native else "fp32"  # a CPU without bf16/fp16 units runs f32
            assert hint == {"bf16": "bf16", "fp16": "f16", "int8": "f32", "fp32": "f32"}[applied]
            assert detector.runner.precision == applied
            assert [note for note in detector.runner.notes if "no native" in note] == ([] if native else [
                f"{files[file].name}: OpenVINO runs fp32 on CPU, which has no native {precision}"
            ])
        detections = detector.detect(images)
    expected, actual = padded_detections(reference, images), padded_detections(detections, images)
    for first, second in ((expected, actual), (actual, expected)):
        found, total = detection_recall(first, second, score_threshold=0.1, min_iou=0.5, score_margin=0.05)
        assert total >= 50 and found >= MIN_RECALL * total, (found, total)


def _openvino_cpu_capabilities() -> tuple[str, ...]:
    import openvino

    return tuple(openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


@pytest.mark.parametrize("quantizer", ["nncf", "ort"])
def test_int8_file_quantises_the_backbone_only(quantizer, files):
    model = onnx.load(str(files[f"int8_{quantizer}"]))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["precision"] == '"int8"' and f'"quantizer": "{quantizer}"' in meta["int8"]
    producers = {output: node for node in model.graph.node for output in node.output}
    # A quantised convolution takes its weights through DequantizeLinear (its input may be dequantised
    # for a float head convolution too, where a quantised backbone tensor feeds the head).
    quantized_convs = [n for n in model.graph.node if n.op_type == "Conv" and getattr(producers.get(n.input[1]), "op_type", "") == "DequantizeLinear"]
    float_convs = [n for n in model.graph.node if n.op_type == "Conv" and n not in quantized_convs]
    assert len(quantized_convs) > 40
    assert all(any(".backbone" in s for s in module_scopes(n)) for n in quantized_convs)
    assert float_convs and all(any(".head" in s for s in module_scopes(n)) for n in float_convs)
    assert {"NonMaxSuppression", "Softmax"} <= {n.op_type for n in model.graph.node}
    assert sum(n.op_type == "QuantizeLinear" for n in model.graph.node) > 40  # the check below sees Q/DQ nodes
    problems = asymmetric_qdq_nodes(model)
    if quantizer == "ort":
        assert problems == []  # int8 zero points of 0 and float biases: what TensorRT builds
    else:  # NNCF: symmetric, but activations after a ReLU are uint8 (TensorRT refuses those)
        assert problems and all(problem.endswith("zero point of type uint8") for problem in problems)


def test_int8_from_the_float_file_equals_a_full_int8_export(trained_checkpoint, files, tmp_path):
    """Quantising the float32 file already exported (what ssd-bench does to skip a second ONNX
    export) gives the same INT8 model as exporting with --int8: same metadata, same outputs."""
    from ssd_deploy.export import formats

    def no_export(*args, **kwargs):
        raise AssertionError("the graph was exported again")

    options = ExportOptions(format="onnx", dynamic_batch=True, precision="int8", calibration=files["int8_ort"].parent / "calibration", int8_quantizer="ort")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(formats.FORMATS, "onnx", dataclasses.replace(formats.FORMATS["onnx"], write=no_export))
        reused = export_int8_from_float(trained_checkpoint, tmp_path / "reused.onnx", files["onnx"], options).path

    def props(path):
        return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}

    assert props(reused) == props(files["int8_ort"])
    batch = torch.rand(3, 3, 128, 128)
    with load(reused, runtime="onnxruntime") as first, load(files["int8_ort"], runtime="onnxruntime") as second:
        ours, theirs = first.infer(batch), second.infer(batch)
    assert int(ours["num_detections"].sum()) > 0
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def test_int8_from_a_float_file_with_other_settings_is_refused(trained_checkpoint, files, tmp_path):
    options = ExportOptions(format="onnx", dynamic_batch=True, precision="int8", calibration=files["int8_ort"].parent / "calibration", int8_quantizer="ort")
    with pytest.raises(ExportError, match=r"raw\.onnx: not the float32 export .*differs in: .*nms"):
        export_int8_from_float(trained_checkpoint, tmp_path / "int8.onnx", files["raw"], options)  # exported without NMS
    with pytest.raises(ExportError, match=r"onnx\.onnx: not the float32 export .*differs in: opset 18, not 17"):
        export_int8_from_float(trained_checkpoint, tmp_path / "int8.onnx", files["onnx"], dataclasses.replace(options, opset=17))
    assert not (tmp_path / "int8.onnx").exists()


def test_detect_maps_boxes_to_each_original_image(files, images):
    with load(files["onnx"]) as detector:
        picture = images[0]  # 200 x 300
        batch, _ = preprocess([picture], (128, 128))
        raw = detector.infer(batch)
        found = detector.detect(picture)  # one image in, one Detections out
        count = int(raw["num_detections"][0])
        assert len(found) == count > 0
        np.testing.assert_allclose(found.boxes, raw["boxes"][0, :count] * [300, 200, 300, 200], rtol=1e-6)
        np.testing.assert_array_equal(found.labels, raw["labels"][0, :count])
        assert found.class_names == list(CLASS_NAMES)
        # The same pixels in another format give the same detections.
        gray, bgra, deep = detector.detect(images[5:])
        same_gray = detector.detect(cv2.cvtColor(images[5], cv2.COLOR_GRAY2BGR))
        np.testing.assert_array_equal(gray.scores, same_gray.scores)
        np.testing.assert_array_equal(bgra.boxes, detector.detect(images[1]).boxes)
        np.testing.assert_array_equal(deep.boxes, detector.detect(images[2]).boxes)


def test_min_score_filters_like_a_higher_threshold(files, images):
    with load(files["onnx"]) as everything, load(files["onnx"], min_score=0.5) as confident:
        for full, kept in zip(everything.detect(images), confident.detect(images)):
            assert np.all(kept.scores > 0.5)
            np.testing.assert_array_equal(kept.boxes, full.boxes[full.scores > 0.5])
    with pytest.raises(SSDDeployError, match="below the 0.01 built into the model"):
        load(files["onnx"], min_score=0.001)


def test_available_lists_every_runtime_with_a_reason():
    status = available()
    assert list(status) == list(RUNTIMES)
    for name in ("pytorch", "torchscript", "onnxruntime", "openvino"):
        assert status[name].usable and status[name].version, name
    assert "CPUExecutionProvider" in status["onnxruntime"].devices and "CPU" in status["openvino"].devices
    if not torch.cuda.is_available():
        assert not status["tensorrt"].usable and status["tensorrt"].reason


def test_auto_picks_the_runtime_from_the_file(files, tmp_path):
    assert runtime_for_file(files["ckpt"]) == "pytorch"
    assert runtime_for_file(files["ts"]) == "torchscript"
    renamed = tmp_path / "model.pt"  # TorchScript saved as .pt is still TorchScript
    renamed.write_bytes(files["ts"].read_bytes())
    assert runtime_for_file(renamed) == "torchscript"
    with load(renamed) as detector:
        assert detector.runner.name == "torchscript"
    assert runtime_for_file(files["onnx"]) == "onnxruntime"
    for suffix, name in [(".engine", "tensorrt"), (".plan", "tensorrt"), (".xml", "openvino"), (".pt2", "aotinductor")]:
        assert runtime_for_file(tmp_path / f"m{suffix}") == name
    with pytest.raises(SSDDeployError, match="cannot tell which runtime reads a .tflite file"):
        runtime_for_file(tmp_path / "m.tflite")


def test_precision_defaults_to_the_files(files):
    for name, runtime, precision in [("int8_ort", "onnxruntime", "int8"), ("int8_nncf", "openvino", "int8"), ("onnx", "openvino", "fp32"), ("ckpt", "pytorch", "fp32")]:
        with load(files[name], runtime=runtime) as detector:
            assert detector.runner.precision == precision == detector.metadata.precision or name == "ckpt"


def test_bad_images_and_batches_are_named(files):
    with load(files["fixed"]) as detector:
        with pytest.raises(SSDDeployError, match="not an image. Note: pass a file path, an OpenCV array, a PIL image"):
            detector.detect(None)
        with pytest.raises(SSDDeployError, match="^street.jpg: no such file"):  # a path is read, and named when it cannot be
            detector.detect("street.jpg")
        with pytest.raises(SSDDeployError, match="empty list of images"):
            detector.detect([])
        with pytest.raises(ImageReadError, match="image 1: not an image array"):
            detector.detect([np.zeros((10, 10, 3), np.uint8), np.zeros((0,), np.uint8)])
        with pytest.raises(ImageReadError, match="image 0: unsupported pixel type float32"):
            detector.detect(np.zeros((10, 10, 3), np.float32))
        with pytest.raises(InputError, match=re.escape("input of shape [2, 3, 64, 64]. Note: expected float32 [N, 3, 128, 128]")):
            detector.infer(np.zeros((2, 3, 64, 64), np.float32))
        with pytest.raises(InputError, match="input of type uint8"):
            detector.infer(np.zeros((2, 3, 128, 128), np.uint8))
        with pytest.raises(InputError, match=r"batch of 3 images. Note: .* with N = 2 \(exported with a fixed batch"):
            detector.infer(torch.zeros(3, 3, 128, 128))
    detector.close()
    with pytest.raises(SSDDeployError, match="closed"):
        detector.infer(torch.zeros(2, 3, 128, 128))


def test_bad_files_and_settings_are_named(files, tmp_path):
    with pytest.raises(SSDDeployError, match="no such file"):
        load(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ExportError, match=re.escape(f"{garbage}: not a readable ONNX file")):
        load(garbage)
    with pytest.raises(ExportError, match="no ssd-deploy metadata"):
        foreign = tmp_path / "foreign.onnx"
        model = onnx.load(str(files["onnx"]))
        del model.metadata_props[:]
        onnx.save_model(model, str(foreign))
        load(foreign, runtime="openvino")
    with pytest.raises(SSDDeployError, match="the onnxruntime runtime does not read .pt files"):
        load(files["ckpt"], runtime="onnxruntime")
    with pytest.raises(SSDDeployError, match=re.escape("takes (128, 128) (height, width) images, not (300, 300)")):
        load(files["onnx"], input_size=(300, 300))
    with pytest.raises(SSDDeployError, match="unknown runtime 'onxruntime'.*Did you mean onnxruntime"):
        load(files["onnx"], runtime="onxruntime")
    with pytest.raises(RuntimeUnavailableError, match="precision int8 is not supported.*holds a fp32 model"):
        load(files["onnx"], precision="int8")
    with pytest.raises(RuntimeUnavailableError, match="precision fp16 is not supported.*fp16 needs CUDA"):
        load(files["ckpt"], precision="fp16")
    with pytest.raises(RuntimeUnavailableError, match="exported in fp32"):
        load(files["ts"], precision="bf16")
    with pytest.raises(RuntimeUnavailableError, match="device 'npu' is not present"):
        load(files["onnx"], runtime="openvino", device="npu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeUnavailableError, match="CUDA"):
            load(files["onnx"], device="cuda")
        with pytest.raises(RuntimeUnavailableError, match="runtime tensorrt: not usable here"):
            load(files["onnx"], runtime="tensorrt")


def test_ssd_detect_runs_any_runtime(files, images, tmp_path, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    cv2.imwrite(str(folder / "scene.png"), images[0])
    outputs = {}
    for runtime, model in [("pytorch", "ckpt"), ("openvino", "onnx"), ("onnxruntime", "raw")]:
        out = tmp_path / runtime
        code = run_cli(detect_main, [str(folder), "--model", str(files[model]), "--runtime", runtime, "--out", str(out), "--score", "0.1"])
        assert code == 0 and (out / "scene.jpg").is_file()
        outputs[runtime] = (out / "scene.json").read_text()
    import json

    records = [json.loads(text)["detections"] for text in outputs.values()]
    assert len(records[0]) > 0 and all(d["score"] > 0.1 for d in records[0])
    assert all([d["label"] for d in record] == [d["label"] for d in records[0]] for record in records)
    assert run_cli(detect_main, ["--list-runtimes"]) == 0
    table = capsys.readouterr().out
    assert all(re.search(rf"^{name}\s+(yes|no)\s", table, re.M) for name in RUNTIMES)
    code = run_cli(detect_main, [str(folder), "--model", str(files["onnx"]), "--score", "0.001"])
    assert code == 2 and "below the 0.01 built into the model" in capsys.readouterr().err


def test_onnxruntime_settings_are_applied_and_checked(files, images):
    with load(files["onnx"], intra_op_threads=1, graph_optimization="disable") as plain, load(files["onnx"]) as optimised:
        assert plain.runner.session.get_session_options().intra_op_num_threads == 1
        assert plain.runner.providers == ["CPUExecutionProvider"] and not plain.runner.io_binding
        first, second = plain.detect(images[0]), optimised.detect(images[0])
        np.testing.assert_allclose(first.scores, second.scores, atol=1e-4)
    with pytest.raises(SSDDeployError, match="graph_optimization 'fast': expected one of disable, basic, extended, all"):
        load(files["onnx"], graph_optimization="fast")
    if "CUDAExecutionProvider" not in available()["onnxruntime"].devices:
        with pytest.raises(RuntimeUnavailableError, match="CUDAExecutionProvider not available in onnxruntime .* onnxruntime-gpu wheel"):
            load(files["onnx"], device="cuda", providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(SSDDeployError, match="runtime onnxruntime: unknown option.s. threads. Note: it takes providers, intra_op_threads"):
        load(files["onnx"], threads=2)


def test_torch_compile_gives_the_eager_detections(files, images, reference):
    with load(files["ckpt"], compile=True) as detector:
        detections = detector.detect(images[:3])
    comparison = compare_detections(padded_detections(reference[:3], images[:3]), padded_detections(detections, images[:3]), FP32_PARITY, 0.01, 0.45)
    assert comparison.ok and comparison.matched > 0, comparison.problems[:5]


# ---------------------------------------------------------------------------------------------
# ONNX Runtime's TensorRT provider: the options it gets (a stand-in session records them; the
# provider itself needs the onnxruntime-gpu wheel and an NVIDIA GPU)


class _RecordingSession:
    """Stands in for onnxruntime.InferenceSession: records the providers and their options."""

    made: list[dict] = []

    def __init__(self, path, options, providers, provider_options):
        self.providers = providers
        _RecordingSession.made.append(dict(zip(providers, provider_options, strict=True)))

    def get_providers(self):
        return self.providers

    def disable_fallback(self):
        pass


@pytest.fixture
def tensorrt_provider(monkeypatch, tmp_path):
    import onnxruntime

    from ssd_deploy.runtimes import onnxruntime as ort_runtime

    gpu_providers = [ort_runtime.TENSORRT, ort_runtime.CUDA, ort_runtime.CPU]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: gpu_providers)
    monkeypatch.setattr(onnxruntime, "InferenceSession", _RecordingSession)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    _RecordingSession.made = []
    return ort_runtime, gpu_providers


def _metadata_onnx(path, batch=None, precision="fp32", nodes=(), initializers=()):
    from ssd_deploy.export.metadata import ExportMetadata

    metadata = ExportMetadata(
        format="onnx", arch="ssdlite_mobilenet_v2", class_names=CLASS_NAMES, input_size=(128, 96), mean=(0.5,) * 3,
        std=(0.5,) * 3, nms=True, score_threshold=0.01, iou_threshold=0.45, max_detections=200, topk_candidates=400,
        batch=batch, precision=precision,
    )
    model = onnx.helper.make_model(onnx.helper.make_graph(list(nodes), "g", [], [], initializer=list(initializers)))
    onnx.helper.set_model_props(model, metadata.to_strings())
    onnx.save_model(model, str(path))
    return path


def test_tensorrt_provider_caches_under_the_users_cache_with_a_profile(tensorrt_provider, tmp_path):
    ort_runtime, providers = tensorrt_provider
    folder = tmp_path / "models"
    folder.mkdir()
    path = _metadata_onnx(folder / "model.onnx")
    folder.chmod(0o555)  # a read-only model folder: nothing may be written beside the file
    try:
        runner = ort_runtime.OnnxRuntimeRunner(path, device="cuda:1", precision="fp16", providers=providers, trt_max_batch=64)
    finally:
        folder.chmod(0o755)
    options = _RecordingSession.made[-1][ort_runtime.TENSORRT]
    root = tmp_path / "xdg" / "ssd-deploy" / "onnxruntime-tensorrt"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert options["trt_engine_cache_path"] == str(root / f"model-{digest}") and Path(options["trt_engine_cache_path"]).is_dir()
    assert options["trt_timing_cache_path"] == str(root) and options["trt_timing_cache_enable"]
    assert (options["trt_profile_min_shapes"], options["trt_profile_opt_shapes"], options["trt_profile_max_shapes"]) == (
        "images:1x3x128x96", "images:64x3x128x96", "images:64x3x128x96")
    assert options["device_id"] == 1 and options["trt_fp16_enable"] and not options["trt_int8_enable"]
    assert _RecordingSession.made[-1][ort_runtime.CUDA] == {"device_id": 1, "use_tf32": 0}  # float32 as float32
    assert runner.batch_range == (1, 64)

    fixed = _metadata_onnx(tmp_path / "fixed.onnx", batch=2)
    ort_runtime.OnnxRuntimeRunner(fixed, device="cuda", providers=providers, trt_cache_dir=tmp_path / "mine")
    options = _RecordingSession.made[-1][ort_runtime.TENSORRT]
    assert options["trt_profile_min_shapes"] == options["trt_profile_max_shapes"] == "images:2x3x128x96"
    assert options["trt_timing_cache_path"] == str(tmp_path / "mine")


def test_tensorrt_provider_refuses_an_asymmetric_int8_file(tensorrt_provider, tmp_path):
    ort_runtime, providers = tensorrt_provider
    nodes = [onnx.helper.make_node("QuantizeLinear", ["x", "scale", "zero_point"], ["q"], name="quant")]
    initializers = [onnx.numpy_helper.from_array(np.array(0.1, dtype=np.float32), "scale"),
                    onnx.numpy_helper.from_array(np.array(12, dtype=np.int8), "zero_point")]
    path = _metadata_onnx(tmp_path / "int8.onnx", precision="int8", nodes=nodes, initializers=initializers)
    with pytest.raises(ExportError, match=r"TensorRT provider builds only symmetric INT8 Q/DQ.*quant: zero point 12"):
        ort_runtime.OnnxRuntimeRunner(path, device="cuda", providers=providers)
    assert _RecordingSession.made == []
    with pytest.raises(SSDDeployError, match="trt_max_batch 0"):
        ort_runtime.OnnxRuntimeRunner(_metadata_onnx(tmp_path / "m.onnx"), device="cuda", providers=providers, trt_max_batch=0)


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "cpu"])
def test_float32_calls_on_cuda_are_ieee_float32(device):
    """The torch runtimes run each call in ``devices.inference``: on CUDA, cuDNN convolutions and
    matrix products compute IEEE float32 (PyTorch's default runs convolutions in TF32), and the
    caller's settings come back after, also after an error. The flags need no GPU to be read."""
    from ssd_deploy.devices import inference

    flags = (torch.backends.cudnn.conv, torch.backends.cuda.matmul)
    before = [flag.fp32_precision for flag in flags]
    cuda = device.startswith("cuda")
    with pytest.raises(KeyError):
        with inference(device):
            assert torch.is_inference_mode_enabled()
            assert [flag.fp32_precision for flag in flags] == (["ieee", "ieee"] if cuda else before)
            raise KeyError("a failing call")
    assert [flag.fp32_precision for flag in flags] == before and not torch.is_inference_mode_enabled()

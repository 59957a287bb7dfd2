"""TensorRT runtime: engine cache keys, optimisation profiles, INT8 calibration data, sidecars and
their version/GPU check, and (on a machine with TensorRT and an NVIDIA GPU) engines built from our
ONNX exports compared with ONNX Runtime.

Without a GPU everything but building and running engines is tested: the pure parts of
:mod:`ssd_deploy.runtimes.tensorrt` and the errors a user gets here. The GPU tests are skipped
with a reason; wherever TensorRT and CUDA exist they build real engines.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import importlib.util
import json
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ssd_deploy.compare import Tolerances, compare_decoded, compare_detections
from ssd_deploy.calibration import Calibration
from ssd_deploy.data.shapes import CLASS_NAMES, render_scene
from ssd_deploy.devices import NO_CUDA
from ssd_deploy.errors import RuntimeUnavailableError, SSDDeployError
from ssd_deploy.export import read_metadata
from ssd_deploy.export.metadata import NMS_OUTPUTS, ExportMetadata
from ssd_deploy.pipeline import preprocess
from ssd_deploy.runtimes import load
from ssd_deploy.runtimes import tensorrt as trt_runtime
from ssd_deploy.runtimes.tensorrt import open_runner
from ssd_deploy.runtimes.tensorrt import (
    EngineOptions,
    calibration_cache_key,
    check_engine_matches,
    engine_cache_key,
    engine_cache_path,
    engine_record,
    entropy_calibrator,
    parse_device,
    precision_mode,
    profile_shapes,
    read_engine_record,
    resolve_options,
    sidecar_path,
)

META = ExportMetadata(
    format="onnx",
    arch="ssdlite_mobilenet_v2",
    class_names=CLASS_NAMES,
    input_size=(128, 96),
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    nms=True,
    score_threshold=0.01,
    iou_threshold=0.45,
    max_detections=200,
    topk_candidates=400,
    batch=None,
    precision="fp32",
)
RAW = dataclasses.replace(META, nms=False)  # exported without NMS
FIXED = dataclasses.replace(META, batch=2)
ONNX = b"onnx bytes of one model"
TARGET = ("10.9.0.34", "NVIDIA A100-SXM4-80GB", "8.0")  # TensorRT version, GPU name, compute capability


# ---------------------------------------------------------------------------------------------
# Optimisation profile and option checks


def test_profile_shapes_of_a_dynamic_batch():
    assert profile_shapes(META, EngineOptions()) == ((1, 3, 128, 96), (8, 3, 128, 96), (8, 3, 128, 96))
    explicit = EngineOptions(profile_min_batch=2, profile_opt_batch=4, profile_max_batch=16)
    assert profile_shapes(META, explicit) == ((2, 3, 128, 96), (4, 3, 128, 96), (16, 3, 128, 96))
    # Unset values follow the given ones: opt defaults to max, max to at least min and opt.
    assert [s[0] for s in profile_shapes(META, EngineOptions(profile_max_batch=4))] == [1, 4, 4]
    assert [s[0] for s in profile_shapes(META, EngineOptions(profile_min_batch=16))] == [16, 16, 16]
    assert [s[0] for s in profile_shapes(META, EngineOptions(profile_opt_batch=12))] == [1, 12, 12]


def test_profile_shapes_of_a_fixed_batch():
    assert profile_shapes(FIXED, EngineOptions()) == ((2, 3, 128, 96),) * 3
    assert profile_shapes(FIXED, EngineOptions(profile_min_batch=2, profile_max_batch=2)) == ((2, 3, 128, 96),) * 3
    with pytest.raises(SSDDeployError, match=r"exactly 2 images.*dynamic_batch"):
        profile_shapes(FIXED, EngineOptions(profile_max_batch=4))


@pytest.mark.parametrize("batches", [(4, 2, 8), (1, 16, 8), (9, None, 8)])
def test_profile_batches_out_of_order_are_refused(batches):
    low, opt, high = batches
    options = EngineOptions(profile_min_batch=low, profile_opt_batch=opt, profile_max_batch=high)
    with pytest.raises(SSDDeployError, match="min <= opt <= max"):
        profile_shapes(META, options)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"precision": "fp64"}, "precision 'fp64'"),
        ({"profile_min_batch": 0}, "profile_min_batch 0"),
        ({"calibration_batch": 2.5}, "calibration_batch 2.5"),
        ({"workspace_mib": 0}, "workspace_mib 0"),
    ],
)
def test_engine_options_refuse_bad_values(fields, message):
    with pytest.raises(SSDDeployError, match=message):
        EngineOptions(**fields)


def test_resolve_options_fills_in_batches_and_checks_nms_and_int8(tmp_path):
    resolved = resolve_options(META, EngineOptions())
    assert (resolved.profile_min_batch, resolved.profile_opt_batch, resolved.profile_max_batch) == (1, 8, 8)
    assert resolve_options(RAW, EngineOptions(efficient_nms=True)).efficient_nms
    with pytest.raises(SSDDeployError, match=r"model.onnx: efficient_nms.*already has NMS"):
        resolve_options(META, EngineOptions(efficient_nms=True), "model.onnx")
    with pytest.raises(SSDDeployError, match="int8 needs calibration images"):
        resolve_options(META, EngineOptions(precision="int8"))
    quantised = dataclasses.replace(META, precision="int8")  # a Q/DQ ONNX needs no calibration
    assert resolve_options(quantised, EngineOptions(precision="int8")).calibration_batch is None
    int8 = EngineOptions(precision="int8", calibration=tmp_path)
    assert resolve_options(META, int8).calibration_batch == 8
    assert resolve_options(META, dataclasses.replace(int8, profile_max_batch=4)).calibration_batch == 4
    assert resolve_options(FIXED, int8).calibration_batch == 2
    with pytest.raises(SSDDeployError, match="calibration_batch 3.*2 to 2"):
        resolve_options(FIXED, dataclasses.replace(int8, calibration_batch=3))


@pytest.mark.parametrize(
    "onnx, asked, weakly_typed, expected",
    [
        ("fp32", "fp32", False, "as-exported"),
        ("fp16", "fp16", False, "as-exported"),
        ("fp16", "fp16", True, "as-exported"),
        ("fp32", "fp16", True, "fp16-flag"),
        ("fp32", "int8", True, "int8-calibration"),
        ("fp32", "bf16", True, "bf16-flag"),
        ("int8", "int8", False, "as-exported"),  # a Q/DQ ONNX: explicit quantisation
        ("bf16", "bf16", False, "as-exported"),
        ("fp32", "fp16", False, (RuntimeUnavailableError, r"strongly typed networks only.*ssd-export --fp16")),
        ("fp32", "int8", False, (RuntimeUnavailableError, r"strongly typed networks only.*removed implicit INT8 calibration.*ssd-export --int8")),
        ("fp16", "fp32", True, (SSDDeployError, "the ONNX computes in fp16. Note: ask for precision fp16")),
        ("fp16", "int8", True, (SSDDeployError, "or build from an fp32 export")),
        ("int8", "fp32", True, (SSDDeployError, "the ONNX computes in int8")),
    ],
)
def test_precision_mode_table(onnx, asked, weakly_typed, expected):
    if isinstance(expected, str):
        assert precision_mode(onnx, asked, weakly_typed) == expected
    else:
        with pytest.raises(expected[0], match=expected[1]):
            precision_mode(onnx, asked, weakly_typed)


# ---------------------------------------------------------------------------------------------
# Engine cache


def _key(onnx=ONNX, options=EngineOptions(), target=TARGET):
    return engine_cache_key(onnx, resolve_options(RAW, options), *target)


def test_engine_cache_key_is_stable_and_accepts_the_onnx_hash():
    key = _key()
    assert key == _key() and len(key) == 64 and int(key, 16) >= 0
    assert key == _key(onnx=hashlib.sha256(ONNX).hexdigest())
    # Defaults and the equal explicit values resolve to one engine.
    assert key == _key(options=EngineOptions(profile_min_batch=1, profile_opt_batch=8, profile_max_batch=8))
    # Calibration settings do not make another fp32 engine.
    assert key == _key(options=EngineOptions(calibration=Calibration(Path("elsewhere"), 3)))
    with pytest.raises(SSDDeployError, match="not a sha256"):
        engine_cache_key("model.onnx", EngineOptions(), *TARGET)


def test_engine_cache_key_changes_with_every_build_input(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    int8 = EngineOptions(precision="int8", calibration=tmp_path / "a")
    variants = {
        "base": _key(),
        "onnx": _key(onnx=ONNX + b" "),
        "fp16": _key(options=EngineOptions(precision="fp16")),
        "int8": _key(options=int8),
        "min": _key(options=EngineOptions(profile_min_batch=2)),
        "opt": _key(options=EngineOptions(profile_opt_batch=4)),
        "max": _key(options=EngineOptions(profile_max_batch=16)),
        "workspace": _key(options=EngineOptions(workspace_mib=2048)),
        "nms": _key(options=EngineOptions(efficient_nms=True)),
        "images": _key(options=dataclasses.replace(int8, calibration=tmp_path / "b")),
        "calibration batch": _key(options=dataclasses.replace(int8, calibration_batch=4)),
        "calibration count": _key(options=dataclasses.replace(int8, calibration=Calibration(tmp_path / "a", 64))),
        "tensorrt": _key(target=("10.9.0.35",) + TARGET[1:]),
        "gpu": _key(target=(TARGET[0], "NVIDIA A100-PCIE-40GB", TARGET[2])),
        "capability": _key(target=TARGET[:2] + ("8.6",)),
    }
    assert len(set(variants.values())) == len(variants), variants


def test_calibration_cache_key_follows_the_calibration_not_the_engine(tmp_path):
    options = resolve_options(RAW, EngineOptions(precision="int8", calibration=tmp_path, calibration_batch=4))
    key = calibration_cache_key(ONNX, options, TARGET[0])
    same = [
        dataclasses.replace(options, profile_max_batch=16, workspace_mib=64),
        dataclasses.replace(options, efficient_nms=True),
    ]
    assert all(calibration_cache_key(ONNX, other, TARGET[0]) == key for other in same)
    different = [
        calibration_cache_key(ONNX + b"!", options, TARGET[0]),
        calibration_cache_key(ONNX, options, "10.9.0.35"),
        calibration_cache_key(ONNX, dataclasses.replace(options, calibration=Calibration(tmp_path, 9)), TARGET[0]),
        calibration_cache_key(ONNX, dataclasses.replace(options, calibration_batch=2), TARGET[0]),
        calibration_cache_key(ONNX, dataclasses.replace(options, calibration=tmp_path / "x"), TARGET[0]),
    ]
    assert len({key, *different}) == 1 + len(different)


def test_engine_cache_paths(tmp_path, monkeypatch):
    key = _key()
    assert engine_cache_path(tmp_path, "models/ssd.onnx", key) == tmp_path / f"ssd-{key[:16]}.engine"
    assert sidecar_path(tmp_path / "ssd.engine") == tmp_path / "ssd.engine.json"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert trt_runtime.default_cache_dir() == tmp_path / "ssd-deploy" / "engines"


# ---------------------------------------------------------------------------------------------
# INT8 calibration data


@pytest.fixture
def calibration_folder(tmp_path):
    """Five generated scenes of different sizes (PNG, so they read back exactly) and a stray file."""
    folder = tmp_path / "calibration"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i, size in enumerate([(100, 140), (64, 64), (200, 120), (96, 128), (150, 150)]):
        cv2.imwrite(str(folder / f"scene_{i}.png"), render_scene(rng, size).image)
    (folder / "notes.txt").write_text("not an image")
    return folder


class _CalibratorBase:
    """Stands in for ``trt.IInt8EntropyCalibrator2`` (the callbacks are ours; TensorRT only calls them)."""

    def __init__(self) -> None:
        self.base_initialised = True


def _floats_at(pointer: int, count: int) -> np.ndarray:
    return np.ctypeslib.as_array((ctypes.c_float * count).from_address(pointer)).copy()


def test_entropy_calibrator_feeds_batches_lazily_and_caches(tmp_path):
    fake_trt = types.SimpleNamespace(IInt8EntropyCalibrator2=_CalibratorBase)
    batches = [np.full((2, 3, 4, 4), value, dtype=np.float32) for value in (0.25, 0.5)]
    made = []

    def make_batches():
        made.append(True)
        return batches

    cache = tmp_path / "cache" / "model.calib"
    calibrator = entropy_calibrator(fake_trt, make_batches, 2, cache, torch.device("cpu"))
    assert calibrator.base_initialised and calibrator.get_batch_size() == 2
    assert made == [] and calibrator.read_calibration_cache() is None  # a cache hit would never read the images
    for batch in batches:
        (pointer,) = calibrator.get_batch(["images"])
        np.testing.assert_array_equal(_floats_at(pointer, batch.size), batch.ravel())
    assert calibrator.get_batch(["images"]) is None and calibrator.batches_used == 2 and made == [True]
    calibrator.write_calibration_cache(memoryview(b"TRT-1001-EntropyCalibration2"))
    assert calibrator.read_calibration_cache() == b"TRT-1001-EntropyCalibration2" and calibrator.error is None


def test_entropy_calibrator_keeps_the_error_for_build_engine(tmp_path):
    def no_images():
        raise SSDDeployError(f"{tmp_path}: no images to calibrate with")

    fake_trt = types.SimpleNamespace(IInt8EntropyCalibrator2=_CalibratorBase)
    calibrator = entropy_calibrator(fake_trt, no_images, 2, tmp_path / "x.calib", torch.device("cpu"))
    assert calibrator.get_batch(["images"]) is None
    assert isinstance(calibrator.error, SSDDeployError) and "no images" in str(calibrator.error)


# ---------------------------------------------------------------------------------------------
# Sidecar and the version / GPU check


def _write_engine(folder: Path, metadata=RAW, options=EngineOptions(efficient_nms=True, precision="fp16"), target=TARGET) -> Path:
    engine = folder / "model.engine"
    engine.write_bytes(b"not a real engine")
    record = engine_record(metadata, resolve_options(metadata, options), *target, "model.onnx", hashlib.sha256(ONNX).hexdigest())
    sidecar_path(engine).write_text(json.dumps(record))
    return engine


def test_sidecar_holds_the_engine_metadata_and_build_facts(tmp_path):
    record, metadata = read_engine_record(_write_engine(tmp_path))
    assert metadata == dataclasses.replace(RAW, format="tensorrt", precision="fp16", nms=True)
    assert metadata.output_names == NMS_OUTPUTS  # EfficientNMS gives the contract's padded detections
    assert (record["tensorrt_version"], record["gpu_name"], record["compute_capability"]) == TARGET
    assert record["profile"] == {"min": [1, 3, 128, 96], "opt": [8, 3, 128, 96], "max": [8, 3, 128, 96]}
    assert record["build_options"]["efficient_nms"] is True and "calibration_images" not in record["build_options"]
    _, graph = read_engine_record(_write_engine(tmp_path, META, EngineOptions()))
    assert graph == dataclasses.replace(META, format="tensorrt")


def test_engines_without_a_readable_sidecar_are_refused(tmp_path):
    engine = tmp_path / "foreign.engine"
    engine.write_bytes(b"built by trtexec")
    with pytest.raises(SSDDeployError, match=r"foreign.engine: no foreign.engine.json beside it"):
        read_engine_record(engine)
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(SSDDeployError, match=r"foreign.engine.json: not an ssd-deploy engine sidecar"):
        read_engine_record(engine)


def test_engine_check_accepts_its_own_machine(tmp_path):
    engine = _write_engine(tmp_path)
    check_engine_matches(engine, read_engine_record(engine)[0], *TARGET)


@pytest.mark.parametrize(
    "here, shown",
    [
        (("10.13.0.35", TARGET[1], TARGET[2]), "this machine has TensorRT 10.13.0.35 / GPU NVIDIA A100-SXM4-80GB"),
        (
            (TARGET[0], "NVIDIA H100 80GB HBM3", "9.0"),
            "this machine has TensorRT 10.9.0.34 / GPU NVIDIA H100 80GB HBM3 (compute capability 9.0)",
        ),
        ((TARGET[0], TARGET[1], "8.6"), "(compute capability 8.6)"),
    ],
)
def test_engine_of_another_tensorrt_or_gpu_is_refused(tmp_path, here, shown):
    engine = _write_engine(tmp_path)
    with pytest.raises(SSDDeployError) as error:
        check_engine_matches(engine, read_engine_record(engine)[0], *here)
    message = str(error.value)
    assert message.startswith(f"{engine}: built with TensorRT 10.9.0.34 for GPU NVIDIA A100-SXM4-80GB (compute capability 8.0)")
    assert shown in message and "Note: rebuild it" in message


# ---------------------------------------------------------------------------------------------
# What a user gets on a machine without TensorRT or a GPU


def test_parse_device():
    assert parse_device("cuda") is None and parse_device("cuda:1") == 1 and parse_device("CUDA:0") == 0
    with pytest.raises(RuntimeUnavailableError, match="TensorRT runs only on NVIDIA GPUs"):
        parse_device("cpu")
    with pytest.raises(SSDDeployError, match="expected cuda or cuda:N"):
        parse_device("npu")


def test_availability_without_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ModuleNotFoundError
    status = trt_runtime.availability()
    assert not status.usable and status.reason == "tensorrt is not installed" and status.version == ""


def test_availability_without_a_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.9.0.34"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    status = trt_runtime.availability()
    assert not status.usable and status.version == "10.9.0.34"
    assert status.reason == NO_CUDA and "torch.cuda.is_available() is False" in NO_CUDA


def test_availability_here_says_why_it_is_unusable():
    status = trt_runtime.availability()
    if importlib.util.find_spec("tensorrt") is None:
        assert (status.usable, status.reason) == (False, "tensorrt is not installed")
    elif not torch.cuda.is_available():
        assert not status.usable and status.reason == NO_CUDA
    else:
        assert status.usable and status.devices[0].startswith("cuda:0 (")


def test_load_names_the_missing_package(tmp_path, monkeypatch):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"never read: the runtime check comes first")
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(RuntimeUnavailableError, match=r"runtime tensorrt: not usable here: tensorrt is not installed.*pip install"):
        load(onnx, runtime="tensorrt")


def test_load_on_the_default_cpu_device_is_refused_everywhere(tmp_path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"never read")
    with pytest.raises(RuntimeUnavailableError, match="runtime tensorrt: (not usable here|device cpu)"):
        load(onnx, runtime="tensorrt")  # device defaults to cpu


def test_open_runner_refuses_what_it_can_tell_without_tensorrt(tmp_path):
    engine = _write_engine(tmp_path)  # an fp16 engine
    with pytest.raises(RuntimeUnavailableError, match="device cpu: TensorRT runs only on NVIDIA GPUs"):
        open_runner(engine, device="cpu")
    with pytest.raises(SSDDeployError, match="precision 'fp64' is unknown"):
        open_runner(engine, device="cuda", precision="fp64")
    with pytest.raises(SSDDeployError, match=r"unknown tensorrt options \['max_batch'\].*profile_max_batch"):
        open_runner(tmp_path / "model.onnx", device="cuda", max_batch=4)
    with pytest.raises(SSDDeployError, match="the engine computes in fp16, not fp32. Note: load it with precision='fp16'"):
        open_runner(engine, device="cuda", precision="fp32")
    with pytest.raises(SSDDeployError, match="build options apply to an .onnx"):
        open_runner(engine, device="cuda", precision="fp16", profile_max_batch=4)
    with pytest.raises(SSDDeployError, match="no model.plan.json beside it"):
        (tmp_path / "model.plan").write_bytes(b"x")
        open_runner(tmp_path / "model.plan", device="cuda")


# ---------------------------------------------------------------------------------------------
# On a machine with TensorRT and an NVIDIA GPU: real engines against ONNX Runtime

HERE = trt_runtime.availability()
gpu = pytest.mark.skipif(not HERE.usable, reason=f"needs TensorRT and an NVIDIA GPU: {HERE.reason}")
SIZE = (128, 128)
# The informative SSDLite scores every one of its 522 priors above the 0.01 threshold for every
# class (2610 candidates per image). TensorRT's NMS layer considers at most 5000 boxes per batch
# item, and a batch item of our graph's NonMaxSuppression is one (image, class) group: the graph-NMS
# exports keep 100 per class, or all 522 (topk 1000), both well within it.
# EfficientNMS considers up to 4096 per image: its reference keeps all of them (topk above 522).
GRAPH_TOPK, ALL_CANDIDATES = 100, 1000
FP32 = Tolerances(box_atol=1e-3, score_atol=1e-4, min_iou=0.99)  # TF32 off: only accumulation order differs
FP16 = Tolerances(box_atol=2e-2, score_atol=1e-2, min_iou=0.9)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """One informative SSDLite exported (dynamic batch) with NMS (two candidate limits) and without."""
    from helpers import informative_init

    from ssd_deploy.export import ExportOptions, export_model
    from ssd_deploy.models import create_model
    from ssd_deploy.postprocess import PostprocessConfig

    model = informative_init(create_model("ssdlite_mobilenet_v2", num_classes=len(CLASS_NAMES), input_size=SIZE))
    folder = tmp_path_factory.mktemp("tensorrt")
    files = {}
    for name, nms, topk in (("nms", True, GRAPH_TOPK), ("nms_all", True, ALL_CANDIDATES), ("raw", False, ALL_CANDIDATES)):
        options = ExportOptions(
            format="onnx", nms=nms, dynamic_batch=True, verify=False, postprocess=PostprocessConfig(topk_candidates=topk)
        )
        files[name] = export_model(model, folder / f"{name}.onnx", options, list(CLASS_NAMES)).path
    return files


def _batch(size: int, seed: int = 0) -> torch.Tensor:
    from ssd_deploy.export.verify import sample_batch

    return sample_batch(SIZE, size, seed=seed)


def _onnxruntime(path: Path, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
    from ssd_deploy.export.onnx import load as load_onnx

    return load_onnx(path)(batch)


def _tensorrt(runner, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
    outputs = runner.infer(batch)
    return tuple(torch.from_numpy(outputs[name]) for name in runner.metadata.output_names)


def _assert_padded_contract(outputs, num_classes: int, capacity: int) -> None:
    count, boxes, scores, labels = outputs
    assert count.dtype == labels.dtype == torch.int32 and boxes.dtype == scores.dtype == torch.float32
    for image, n in enumerate(count.tolist()):
        assert 0 <= n <= capacity
        assert ((labels[image, :n] >= 1) & (labels[image, :n] < num_classes)).all()
        assert ((boxes[image, :n] >= 0) & (boxes[image, :n] <= 1)).all()
        assert not boxes[image, n:].any() and not scores[image, n:].any() and not labels[image, n:].any()


@gpu
def test_fp32_engine_with_graph_nms_matches_onnxruntime_and_is_cached(exports, tmp_path, capsys):
    metadata = read_metadata(exports["nms"])
    with open_runner(exports["nms"], device="cuda", cache_dir=tmp_path) as runner:
        assert "building an engine (fp32, batch 1-8, nms graph)" in capsys.readouterr().err
        for size in (1, 3):  # one engine, any batch in its profile
            batch = _batch(size, seed=size)
            comparison = compare_detections(
                _onnxruntime(exports["nms"], batch), _tensorrt(runner, batch), FP32, metadata.score_threshold, metadata.iou_threshold
            )
            assert comparison.ok and comparison.matched > 0, (comparison.summary(), comparison.problems[:5])
        engine = runner.path
    built = engine.stat().st_mtime_ns
    with open_runner(exports["nms"], device="cuda", cache_dir=tmp_path) as again:
        assert again.path == engine and engine.stat().st_mtime_ns == built and capsys.readouterr().err == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == [engine.name, engine.name + ".json"]


@gpu
def test_efficient_nms_engine_matches_onnxruntime_nms(exports, tmp_path):
    metadata = read_metadata(exports["nms_all"])
    batch = _batch(4)
    with open_runner(exports["raw"], device="cuda", cache_dir=tmp_path, efficient_nms=True) as runner:
        assert runner.metadata.nms and runner.metadata.output_names == NMS_OUTPUTS
        outputs = _tensorrt(runner, batch)
    _assert_padded_contract(outputs, len(CLASS_NAMES), metadata.max_detections)
    reference = _onnxruntime(exports["nms_all"], batch)
    comparison = compare_detections(reference, outputs, FP32, metadata.score_threshold, metadata.iou_threshold)
    assert comparison.ok and comparison.matched > 0, (comparison.summary(), comparison.problems[:5])


@gpu
def test_fp16_engine_decoded_outputs_match_onnxruntime(exports, tmp_path):
    import tensorrt

    if not trt_runtime.weakly_typed(tensorrt):
        with pytest.raises(RuntimeUnavailableError, match="ssd-export --fp16"):
            open_runner(exports["raw"], device="cuda", precision="fp16", cache_dir=tmp_path)
        pytest.skip(f"TensorRT {tensorrt.__version__} builds fp16 only from an fp16 export (checked above)")
    batch = _batch(2)
    with open_runner(exports["raw"], device="cuda", precision="fp16", cache_dir=tmp_path) as runner:
        assert runner.precision == "fp16" and runner.metadata.output_names == ("boxes", "scores")
        comparison = compare_decoded(_onnxruntime(exports["raw"], batch), _tensorrt(runner, batch), FP16)
    assert comparison.ok, (comparison.summary(), comparison.problems)


@gpu
def test_fp16_engine_with_efficient_nms_keeps_the_contract(exports, tmp_path):
    import tensorrt

    if not trt_runtime.weakly_typed(tensorrt):
        pytest.skip(f"TensorRT {tensorrt.__version__} builds fp16 only from an fp16 export")
    metadata = read_metadata(exports["raw"])
    with open_runner(exports["raw"], device="cuda", precision="fp16", cache_dir=tmp_path, efficient_nms=True) as runner:
        outputs = _tensorrt(runner, _batch(3))
    _assert_padded_contract(outputs, len(CLASS_NAMES), metadata.max_detections)
    assert outputs[0].sum() > 0


@gpu
def test_int8_engine_calibrates_once_and_reuses_the_cache(exports, tmp_path, capsys):
    import tensorrt

    if not hasattr(tensorrt, "IInt8EntropyCalibrator2"):
        pytest.skip(f"TensorRT {tensorrt.__version__} has no implicit INT8 calibration (removed in 11)")
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(5)
    for i in range(8):
        cv2.imwrite(str(images / f"{i}.png"), render_scene(rng, (160, 200)).image)
    cache = tmp_path / "engines"
    options = dict(cache_dir=cache, efficient_nms=True, calibration=Calibration(images, 8), calibration_batch=4)
    with open_runner(exports["raw"], device="cuda", precision="int8", **options) as runner:
        assert runner.precision == "int8"
        _assert_padded_contract(_tensorrt(runner, _batch(2)), len(CLASS_NAMES), runner.metadata.max_detections)
    (calibration,) = cache.glob("*.calib")
    assert calibration.stat().st_size > 0
    for image in images.iterdir():  # a rebuild must take the scales from the cache, not the images
        image.unlink()
    capsys.readouterr()
    with open_runner(exports["raw"], device="cuda", precision="int8", rebuild=True, **options) as rebuilt:
        assert "building an engine (int8, batch 1-8, nms efficient)" in capsys.readouterr().err
        _assert_padded_contract(_tensorrt(rebuilt, _batch(1)), len(CLASS_NAMES), rebuilt.metadata.max_detections)


@gpu
def test_engine_of_another_tensorrt_version_is_refused_before_deserialising(exports, tmp_path):
    with open_runner(exports["raw"], device="cuda", cache_dir=tmp_path) as runner:
        engine = runner.path
    record = json.loads(sidecar_path(engine).read_text())
    record["tensorrt_version"] = "8.6.1"
    sidecar_path(engine).write_text(json.dumps(record))
    engine.write_bytes(b"garbage that TensorRT could not deserialise")
    with pytest.raises(SSDDeployError, match=r"built with TensorRT 8.6.1 for GPU .*; this machine has TensorRT .*Note: rebuild it"):
        open_runner(engine, device="cuda")


@gpu
def test_detector_on_tensorrt_gives_detections_in_image_pixels(exports, tmp_path):
    image = render_scene(np.random.default_rng(11), (240, 320)).image
    count, _, scores, _ = _onnxruntime(exports["nms"], preprocess([image], SIZE)[0])
    detector = load(exports["nms"], runtime="tensorrt", device="cuda", cache_dir=tmp_path)
    found = detector.detect(image)
    detector.runner.close()
    assert len(found) > 0 and ((found.labels >= 1) & (found.labels < len(CLASS_NAMES))).all()
    assert 128 < found.boxes[:, 2].max() <= 320  # pixels of the 320-wide image, not of the network input
    top = min(5, len(found), int(count[0]))  # the best scores are not near-ties of the NMS order
    np.testing.assert_allclose(np.sort(found.scores)[::-1][:top], scores[0, :top].numpy(), atol=1e-4)


# ---------------------------------------------------------------------------------------------
# Input addresses: TensorRT needs 256-byte alignment


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.uint8])
def test_misaligned_views_are_copied_to_an_aligned_address(dtype):
    batch = torch.arange(5 * 3 * 7 * 9).to(dtype).reshape(5, 3, 7, 9)
    view = batch[3:5]  # contiguous, but 3 images (567 bytes as uint8) into the buffer
    assert view.is_contiguous() and view.data_ptr() % 256 != 0
    copy = trt_runtime.aligned(view)
    assert copy.data_ptr() % 256 == 0 and copy.is_contiguous() and copy.dtype == dtype
    assert torch.equal(copy, view) and copy.data_ptr() != view.data_ptr()
    again = trt_runtime.aligned(copy)
    assert again.data_ptr() == copy.data_ptr()  # aligned tensors pass through without a copy


# ---------------------------------------------------------------------------------------------
# Checks build_engine makes before TensorRT parses the ONNX (a stand-in tensorrt module: none of
# them reaches TensorRT's own API, which the stand-in would fail on)


def _fake_tensorrt(version: str) -> types.SimpleNamespace:
    """What build_engine reads of ``tensorrt`` before parsing: its version and whether BuilderFlag
    still has FP16 (TensorRT 10; 11 builds strongly typed networks only)."""
    flags = types.SimpleNamespace(FP16=1, INT8=2) if version.startswith("10.") else types.SimpleNamespace()
    return types.SimpleNamespace(__version__=version, BuilderFlag=flags)


def _write_onnx(path: Path, metadata: ExportMetadata, nodes, initializers=(), value_info=()) -> Path:
    """A small ONNX carrying ``metadata`` in its metadata_props (what read_metadata reads)."""
    import onnx

    graph = onnx.helper.make_graph(list(nodes), "g", [], [], initializer=list(initializers), value_info=list(value_info))
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    onnx.helper.set_model_props(model, metadata.to_strings())
    onnx.save_model(model, str(path))
    return path


def _qdq(zero_point: np.ndarray | None):
    import onnx

    inputs = ["x", "scale"] + (["zero_point"] if zero_point is not None else [])
    initializers = [onnx.numpy_helper.from_array(np.array(0.1, dtype=np.float32), "scale")]
    if zero_point is not None:
        initializers.append(onnx.numpy_helper.from_array(zero_point, "zero_point"))
    nodes = [onnx.helper.make_node("QuantizeLinear", inputs, ["q"], name="quant"),
             onnx.helper.make_node("DequantizeLinear", ["q", *inputs[1:]], ["y"], name="dequant")]
    return nodes, initializers


@pytest.fixture
def no_gpu_needed(monkeypatch):
    """build_engine on this machine up to its GPU work: a stand-in TensorRT 10 and an A100."""
    from ssd_deploy.runtimes.tensorrt import build as tensorrt_build

    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt("10.9.0.34"))
    monkeypatch.setattr(tensorrt_build, "cuda_index", lambda device: 0)
    monkeypatch.setattr(tensorrt_build, "gpu_identity", lambda index: ("NVIDIA A100-SXM4-80GB", "8.0"))
    return tensorrt_build


@pytest.mark.parametrize("asked", [EngineOptions(precision="int8"), "calibration"])
def test_tensorrt_11_int8_from_an_fp32_onnx_asks_for_a_qdq_file(asked, tmp_path, monkeypatch, calibration_folder):
    from ssd_deploy.runtimes.tensorrt import build_engine

    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt("11.0.0.1"))
    options = EngineOptions(precision="int8", calibration=calibration_folder) if asked == "calibration" else asked
    onnx_path = _write_onnx(tmp_path / "model.onnx", META, [])
    with pytest.raises(RuntimeUnavailableError, match=r"removed implicit INT8 calibration.*ssd-export --int8 --int8-quantizer ort --calib"):
        build_engine(onnx_path, tmp_path / "model.engine", options)
    with pytest.raises(RuntimeUnavailableError, match=r"removed implicit INT8 calibration"):
        open_runner(onnx_path, device="cuda", precision="int8")  # the cached-engine path checks the same first


@pytest.mark.parametrize(
    "zero_point, problem",
    [
        (np.array([3], dtype=np.int8), r"quant: zero point 3 \(not 0\)"),
        (np.array(0, dtype=np.uint8), r"quant: zero point of type uint8"),
        (None, r"quant: no zero point \(uint8 output\)"),
    ],
)
def test_an_asymmetric_qdq_onnx_is_refused_before_parsing(zero_point, problem, tmp_path, no_gpu_needed):
    nodes, initializers = _qdq(zero_point)
    onnx_path = _write_onnx(tmp_path / "int8.onnx", dataclasses.replace(META, precision="int8"), nodes, initializers)
    with pytest.raises(SSDDeployError, match=rf"TensorRT builds only symmetric INT8 Q/DQ.*{problem}.*--int8-quantizer ort"):
        no_gpu_needed.build_engine(onnx_path, tmp_path / "int8.engine", EngineOptions(precision="int8"))


def test_a_symmetric_qdq_onnx_passes_the_check(tmp_path):
    import onnx

    from ssd_deploy.export.int8 import asymmetric_qdq_nodes

    nodes, initializers = _qdq(np.array([0, 0], dtype=np.int8))
    model = onnx.load(str(_write_onnx(tmp_path / "int8.onnx", META, nodes, initializers)))
    assert asymmetric_qdq_nodes(model) == []


def _topk_and_nms(k: int, boxes_per_item: int | None):
    """A TopK with constant k, and a NonMaxSuppression whose boxes are [G, boxes_per_item, 4]."""
    import onnx

    initializers = [onnx.numpy_helper.from_array(np.array([k], dtype=np.int64), "k")]
    nodes = [onnx.helper.make_node("TopK", ["scores", "k"], ["values", "indices"], name="topk", axis=2),
             onnx.helper.make_node("NonMaxSuppression", ["boxes", "nms_scores"], ["selected"], name="nms")]
    dims = ["groups", boxes_per_item, 4] if boxes_per_item else ["groups", "boxes", 4]
    return nodes, initializers, [onnx.helper.make_tensor_value_info("boxes", onnx.TensorProto.FLOAT, dims)]


def test_limit_problems_name_topk_and_nms_beyond_tensorrts_limits():
    import onnx

    from ssd_deploy.runtimes.tensorrt import limit_problems

    def problems(k, boxes, capability, topk_candidates=400):
        nodes, initializers, info = _topk_and_nms(k, boxes)
        graph = onnx.helper.make_graph(nodes, "g", [], [], initializer=initializers, value_info=info)
        return limit_problems(onnx.helper.make_model(graph), capability, topk_candidates)

    assert problems(3840, 3840, "9.0") == []
    assert problems(8732, 400, "9.0") == ["TopK topk: k 8732 > 3840"]  # SSD300's priors, all in one TopK
    assert problems(400, 2500, "9.0") == []
    assert problems(400, 2500, "6.2") == ["NonMaxSuppression nms: 2500 boxes per batch item > 2000 (GPU compute capability 6.2)"]
    assert problems(400, None, "5.3", topk_candidates=2400) == [
        "NonMaxSuppression nms: 2400 boxes per batch item > 2000 (GPU compute capability 5.3)"  # shape unknown: topk_candidates
    ]


def test_build_engine_refuses_an_onnx_beyond_the_limits(tmp_path, no_gpu_needed):
    nodes, initializers, info = _topk_and_nms(8732, 8732)
    onnx_path = _write_onnx(tmp_path / "ssd300.onnx", dataclasses.replace(META, topk_candidates=10_000), nodes, initializers, info)
    with pytest.raises(SSDDeployError, match=r"beyond TensorRT's limits: TopK topk: k 8732 > 3840; NonMaxSuppression nms: 8732 boxes.*"
                       r"ssd-export --topk 3840 --pre-nms-topk 3840; they are 10000 and \d+\)"):
        no_gpu_needed.build_engine(onnx_path, tmp_path / "ssd300.engine")


def test_our_export_is_within_the_limits_on_every_gpu(tmp_path):
    """The graph-NMS export's TopK ks and NMS boxes as shape inference sees them: the image's
    pre-selected candidates (pre_nms_topk) in one list, max_detections for the final selection;
    without pre-selection, topk_candidates per group."""
    import onnx

    from helpers import informative_init

    from ssd_deploy.export import ExportOptions, export_model
    from ssd_deploy.models import create_model
    from ssd_deploy.postprocess import DEFAULT_PRE_NMS_TOPK, PostprocessConfig
    from ssd_deploy.runtimes.tensorrt.limits import _nms_boxes_per_item, limit_problems

    model = informative_init(create_model("ssdlite_mobilenet_v2", num_classes=len(CLASS_NAMES), input_size=SIZE))
    options = ExportOptions(format="onnx", dynamic_batch=True, verify=False, postprocess=PostprocessConfig(topk_candidates=2100))
    path = export_model(model, tmp_path / "model.onnx", options, list(CLASS_NAMES)).path
    exported = onnx.load(str(path), load_external_data=False)
    # 522 priors x 5 classes > 2000: the pre-selected candidates, one list per image.
    assert [boxes for _, boxes in _nms_boxes_per_item(exported, fallback=0)] == [DEFAULT_PRE_NMS_TOPK]
    assert limit_problems(exported, "6.2", 2100) == []  # 2000 boxes: within even Jetson's limit
    exact = ExportOptions(format="onnx", dynamic_batch=True, verify=False, postprocess=PostprocessConfig(topk_candidates=2100, pre_nms_topk=0))
    path = export_model(model, tmp_path / "exact.onnx", exact, list(CLASS_NAMES)).path
    exported = onnx.load(str(path), load_external_data=False)
    assert [boxes for _, boxes in _nms_boxes_per_item(exported, fallback=0)] == [len(model.priors)]  # 522 priors < 2100
    assert limit_problems(exported, "6.2", 2100) == []

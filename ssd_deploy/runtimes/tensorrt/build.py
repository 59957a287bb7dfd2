"""Building an engine from an exported ONNX: parse, optimisation profile, precision flags and
INT8 calibrator, and (``efficient_nms``) the EfficientNMS plugin appended to the parsed network.

    model.onnx ─ checks (precision mode, Q/DQ, TensorRT's limits) ─ parse ─ [EfficientNMS] ─ profile,
        precision ─ build_serialized_network ─ x.engine + x.engine.json (written atomically)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from ...files import atomic_write
from ...errors import ExportError, RuntimeUnavailableError, SSDDeployError
from ...export.onnx import onnx_metadata as read_metadata
from ...export.int8 import check_symmetric_qdq
from ...export.metadata import INPUT_NAME, NMS_OUTPUTS, ExportMetadata
from .cache import MIB, engine_record, file_sha256, sidecar_path
from .calibrator import entropy_calibrator
from .limits import check_limits
from .machine import cuda_index, gpu_identity, import_tensorrt, trt_logger, weakly_typed
from .options import RUNTIME, EngineOptions, precision_mode, profile_shapes, resolve_options

EFFICIENT_NMS = ("EfficientNMS_TRT", "1")  # plugin name, version


@dataclass(frozen=True)
class _Recipe:
    """What one :func:`build_engine` call builds: the ONNX, its metadata, the resolved options and
    the precision mode (:func:`~.options.precision_mode`)."""

    onnx_path: Path
    metadata: ExportMetadata
    options: EngineOptions
    mode: str


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    options: EngineOptions = EngineOptions(),
    device: str = "cuda",
    calibration_cache: str | Path | None = None,
) -> Path:
    """Build a TensorRT engine from an exported ONNX; write it and its sidecar atomically.

    Args:
        onnx_path: a file from ``ssd-export --format onnx``.
        engine_path: where to write the serialised engine (``<engine>.json`` goes beside it).
        options: see :class:`EngineOptions`.
        device: ``cuda`` or ``cuda:N``: the GPU to build for.
        calibration_cache: int8 only; the calibration cache to reuse or write
            (default ``<engine_path>`` with suffix ``.calib``).

    Returns:
        ``engine_path``.

    Raises:
        ExportError: not an ssd-deploy ONNX, an INT8 ONNX with asymmetric Q/DQ, or TensorRT's parser
            rejects it (naming the node).
        RuntimeUnavailableError: no TensorRT or GPU, or a precision this TensorRT cannot build (int8
            from an fp32 ONNX on TensorRT 11).
        SSDDeployError: inconsistent options, a TopK or NMS beyond TensorRT's limits, calibration
            failure, or the build fails.
    """
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    metadata = read_metadata(onnx_path)
    trt = import_tensorrt()
    mode = precision_mode(metadata.precision, options.precision, weakly_typed(trt))  # before asking for calibration images
    options = resolve_options(metadata, options, onnx_path)
    if metadata.precision == "int8":
        check_symmetric_qdq(onnx_path)
    index = cuda_index(device)
    check_limits(onnx_path, metadata, gpu_identity(index)[1])
    calibration_cache = Path(calibration_cache) if calibration_cache else engine_path.with_suffix(".calib")
    plan = _serialized_engine(trt, _Recipe(onnx_path, metadata, options, mode), calibration_cache, index)
    atomic_write(engine_path, lambda tmp: tmp.write_bytes(memoryview(plan)))
    name, capability = gpu_identity(index)
    record = engine_record(metadata, options, trt.__version__, name, capability, onnx_path, file_sha256(onnx_path))
    atomic_write(sidecar_path(engine_path), lambda tmp: tmp.write_text(json.dumps(record, indent=2)))
    return engine_path


def _serialized_engine(trt: ModuleType, recipe: _Recipe, calibration_cache: Path, index: int) -> Any:
    """The serialised engine of ``recipe`` built on CUDA device ``index``.

    Raises:
        SSDDeployError: calibration failed, or TensorRT could not build it.
    """
    metadata, options = recipe.metadata, recipe.options
    logger = trt_logger(trt)
    with torch.cuda.device(index):
        builder = trt.Builder(logger)
        strongly_typed = recipe.mode == "as-exported" and metadata.precision != "fp32"
        network, parser = _parse_onnx(trt, builder, logger, recipe.onnx_path, strongly_typed)
        if options.efficient_nms:
            _append_efficient_nms(trt, network, metadata, recipe.onnx_path, set_output_types=recipe.mode != "as-exported")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib * MIB)
        profile = builder.create_optimization_profile()
        profile.set_shape(INPUT_NAME, *profile_shapes(metadata, options))
        config.add_optimization_profile(profile)
        calibrator = _set_precision(trt, builder, config, recipe, calibration_cache, torch.device("cuda", index))
        plan = builder.build_serialized_network(network, config)
        del parser  # holds the weights until the network is built
    if calibrator is not None and calibrator.error is not None:
        raise SSDDeployError(f"{options.calibration.folder}: INT8 calibration failed: {calibrator.error}") from calibrator.error
    if plan is None:
        raise SSDDeployError(
            f"{recipe.onnx_path}: TensorRT could not build an engine (its log above says why). Note: try more workspace_mib, or another precision"
        )
    return plan


def _parse_onnx(trt: ModuleType, builder: Any, logger: Any, onnx_path: Path, strongly_typed: bool) -> tuple[Any, Any]:
    """A network parsed from ``onnx_path`` and its parser (which must outlive the build)."""
    flags = 0
    if strongly_typed and weakly_typed(trt):  # TensorRT 11 networks are always strongly typed
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)).strip() for i in range(parser.num_errors)]
        raise ExportError(
            onnx_path,
            f"TensorRT {trt.__version__}'s ONNX parser rejects it: {' | '.join(errors[:3]) or 'no details'}. "
            "Note: expected an ssd-export ONNX (opset >= 17); a newer TensorRT may support the operator",
        )
    return network, parser


def _append_efficient_nms(trt: ModuleType, network: Any, metadata: ExportMetadata, onnx_path: Path, set_output_types: bool) -> None:
    """Replace the decoded outputs (boxes [N, P, 4], scores [N, P, C]) by EfficientNMS's padded
    detections, named as the contract: num_detections [N] int32, boxes [N, K, 4], scores [N, K],
    labels [N, K] int32 (zero past num_detections: the plugin clears its outputs).

    ``set_output_types``: pin the outputs to float32 / int32 (a weakly typed network built with the
    FP16 or INT8 flag may otherwise give the plugin float16 inputs and outputs)."""
    outputs = {network.get_output(i).name: network.get_output(i) for i in range(network.num_outputs)}
    if set(outputs) != {"boxes", "scores"}:
        raise ExportError(onnx_path, f"outputs {sorted(outputs)}. Note: efficient_nms expects an export without NMS (boxes, scores)")
    boxes, scores = outputs["boxes"], outputs["scores"]
    for tensor in (boxes, scores):
        network.unmark_output(tensor)
        tensor.name = f"decoded_{tensor.name}"  # frees the contract's names for the plugin's outputs
    # The arrays must outlive create_plugin: a PluginField points into their memory.
    values = {
        "score_threshold": np.array([metadata.score_threshold], dtype=np.float32),
        "iou_threshold": np.array([metadata.iou_threshold], dtype=np.float32),
        "max_output_boxes": np.array([metadata.max_detections], dtype=np.int32),
        "background_class": np.array([0], dtype=np.int32),
        "score_activation": np.array([0], dtype=np.int32),  # scores are already softmaxed
        "class_agnostic": np.array([0], dtype=np.int32),
        "box_coding": np.array([0], dtype=np.int32),  # xyxy corners
    }
    kinds = {np.dtype(np.float32): trt.PluginFieldType.FLOAT32, np.dtype(np.int32): trt.PluginFieldType.INT32}
    fields = trt.PluginFieldCollection([trt.PluginField(name, value, kinds[value.dtype]) for name, value in values.items()])
    registry = trt.get_plugin_registry()
    name, version = EFFICIENT_NMS
    creator = (
        registry.get_creator(name, version, "") if hasattr(registry, "get_creator") else registry.get_plugin_creator(name, version, "")
    )
    if creator is None:
        raise RuntimeUnavailableError(
            RUNTIME,
            f"TensorRT {trt.__version__} has no {name} plugin version {version}. Note: use nms='graph' with an ONNX exported with NMS",
        )
    v3 = isinstance(creator, getattr(trt, "IPluginCreatorV3One", ()))  # the plugin may move to the V3 interface
    plugin = (
        creator.create_plugin("efficient_nms", fields, trt.TensorRTPhase.BUILD) if v3 else creator.create_plugin("efficient_nms", fields)
    )
    if plugin is None:
        raise SSDDeployError(
            f"{onnx_path}: TensorRT's {name} rejects its settings { ({k: v.item() for k, v in values.items()}) } (its log above says why)"
        )
    layer = network.add_plugin_v3([boxes, scores], [], plugin) if v3 else network.add_plugin_v2([boxes, scores], plugin)
    count = network.add_shuffle(layer.get_output(0))  # [N, 1] -> [N]
    count.reshape_dims = (-1,)
    results = [count.get_output(0)] + [layer.get_output(i) for i in (1, 2, 3)]
    for tensor, contract_name in zip(results, NMS_OUTPUTS, strict=True):
        tensor.name = contract_name
        network.mark_output(tensor)
        if set_output_types:
            tensor.dtype = trt.int32 if contract_name in ("num_detections", "labels") else trt.float32


def _set_precision(trt: ModuleType, builder: Any, config: Any, recipe: _Recipe, calibration_cache: Path, device: torch.device) -> Any:
    """Set the builder flags of ``recipe.mode``; the INT8 calibrator (None for other modes)."""
    metadata, options, mode = recipe.metadata, recipe.options, recipe.mode
    if options.precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)  # TensorRT allows TF32 by default: not fp32 arithmetic
    if mode in ("fp16-flag", "bf16-flag"):  # an fp16 or bf16 ONNX is parsed strongly typed: no flags
        config.set_flag(trt.BuilderFlag.FP16 if mode == "fp16-flag" else trt.BuilderFlag.BF16)
    if mode != "int8-calibration":
        return None
    config.set_flag(trt.BuilderFlag.INT8)
    calibration_profile = builder.create_optimization_profile()
    height, width = metadata.input_size
    shape = (options.calibration_batch, 3, height, width)
    calibration_profile.set_shape(INPUT_NAME, shape, shape, shape)
    config.set_calibration_profile(calibration_profile)
    calibrator = entropy_calibrator(
        trt,
        lambda: options.calibration.batches(metadata.input_size, options.calibration_batch, metadata.resize),
        options.calibration_batch,
        calibration_cache,
        device,
    )
    config.int8_calibrator = calibrator
    return calibrator

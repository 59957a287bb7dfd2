"""INT8 post-training quantisation of an exported ONNX file, calibrated on dataset images.

The result is a QDQ ONNX file (QuantizeLinear/DequantizeLinear pairs around the quantised
operators): ONNX Runtime runs it with integer kernels, and OpenVINO reads it as a low-precision
model, so one file serves both CPU runtimes. Two quantisers are offered:

- ``ort``: ONNX Runtime's ``quantize_static`` (per-channel weights, calibration method of choice),
- ``nncf``: NNCF, OpenVINO's quantiser, on the same ONNX graph.

TensorRT builds only symmetric INT8 Q/DQ (int8 zero points of 0), and a file with another zero
point is refused before TensorRT parses it (:func:`check_symmetric_qdq`). ONNX Runtime's quantiser
is told to write exactly that (``ActivationSymmetric``; ``QuantizeBias`` off, since TensorRT
rejects an int32 bias DequantizeLinear), so its files serve the CPU runtimes and TensorRT alike.
NNCF's files are symmetric too, but quantise activations after a ReLU to uint8, which TensorRT
does not build, and NNCF's hardware configurations do not allow forcing them signed: for
TensorRT, quantise with ``ort``.

Only the backbone is quantised by default. The detection head (whose outputs are box offsets and
class logits, where a quantisation step is visible as box jitter and score noise), decoding and
NMS stay in float32. Graph nodes are attributed to modules through the name scopes the
``torch.onnx`` exporter records in each node's metadata.
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import onnx

from ..calibration import CalibrationBatches
from ..errors import ExportError, SSDDeployError
from .metadata import INPUT_NAME

QUANTIZERS = ("ort", "nncf")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
SCOPE_KEY = "pkg.torch.onnx.name_scopes"


def module_scopes(node: onnx.NodeProto) -> list[str]:
    """The module paths the exporter recorded for ``node``, outermost first (e.g. ``deploy.model.backbone``)."""
    for prop in node.metadata_props:
        if prop.key == SCOPE_KEY:
            try:
                return [str(scope) for scope in ast.literal_eval(prop.value)]
            except (ValueError, SyntaxError):
                return []
    return []


def quantizable_nodes(model: onnx.ModelProto, include_head: bool = False, source: object = "<onnx>") -> list[str]:
    """Names of the nodes to quantise: the backbone's (and the head's with ``include_head``).

    Raises:
        ExportError: the graph has no module scopes (not exported by ssd-export's ONNX exporter).
    """
    parts = (".backbone.",) + ((".head.",) if include_head else ())
    names = [
        node.name
        for node in model.graph.node
        if any(part in f".{scope}." for scope in module_scopes(node) for part in parts)
    ]
    if not names:
        raise ExportError(source, "no backbone nodes found (the graph lacks torch.onnx name scopes). Note: quantise files from ssd-export")
    return names


class _OrtReader:
    """ONNX Runtime's CalibrationDataReader protocol over :class:`CalibrationBatches`."""

    def __init__(self, batches: CalibrationBatches) -> None:
        self.batches = batches
        self._iterator: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._iterator, None)
        return None if batch is None else {INPUT_NAME: batch}

    def rewind(self) -> None:
        self._iterator = iter(self.batches)


def quantize_onnx(
    source: Path,
    output: Path,
    batches: CalibrationBatches,
    quantizer: str = "ort",
    method: str = "minmax",
    include_head: bool = False,
) -> None:
    """Write an INT8 QDQ version of the float ONNX file ``source`` to ``output``.

    Args:
        source: a float32 ONNX file from ssd-export (any batch; calibration feeds ``batches``).
        output: where to write the quantised model (its ``metadata_props`` are kept).
        batches: calibration batches at the model's input size.
        quantizer: ``ort`` (ONNX Runtime) or ``nncf`` (OpenVINO's NNCF).
        method: ONNX Runtime's calibration: ``minmax``, ``entropy`` or ``percentile``.
        include_head: quantise the detection head too (faster, usually less accurate).
    """
    if quantizer not in QUANTIZERS:
        raise SSDDeployError(f"INT8 quantizer {quantizer!r}: expected one of {', '.join(QUANTIZERS)}")
    if method not in CALIBRATION_METHODS:
        raise SSDDeployError(f"INT8 calibration method {method!r}: expected one of {', '.join(CALIBRATION_METHODS)}")
    model = onnx.load(str(source))
    nodes = quantizable_nodes(model, include_head, source)
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    if quantizer == "ort":
        quantized = _quantize_ort(model, batches, nodes, method)
    else:
        quantized = _quantize_nncf(model, batches, nodes)
    del quantized.metadata_props[:]
    onnx.helper.set_model_props(quantized, {**metadata, "precision": '"int8"', "int8": _describe(quantizer, method, include_head, batches)})
    onnx.save_model(quantized, str(output))


def _describe(quantizer: str, method: str, include_head: bool, batches: CalibrationBatches) -> str:
    return json.dumps({"quantizer": quantizer, "method": method if quantizer == "ort" else "nncf-default", "head": include_head, "calibration_images": len(batches.paths)})


@contextlib.contextmanager
def _quiet(logger_name: str | None, level: int = logging.WARNING) -> Iterator[None]:
    """Raise a chatty logger's level for the duration (restored afterwards)."""
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _quantize_ort(model: onnx.ModelProto, batches: CalibrationBatches, nodes: list[str], method: str) -> onnx.ModelProto:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}[method]
    # quantize_static warns on the root logger that optional pre-processing was skipped.
    with tempfile.TemporaryDirectory(prefix="ssd-int8-") as folder, _quiet(None, logging.ERROR):
        output = Path(folder) / "int8.onnx"
        quantize_static(
            model,
            output,
            _OrtReader(batches),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            # Convolutions carry nearly all the arithmetic. Restricting the op types also keeps the
            # calibrator off the post-processing tensors, whose shapes vary per batch and break
            # its histogram collectors.
            op_types_to_quantize=["Conv"],
            nodes_to_quantize=nodes,
            calibrate_method=calibrate,
            # TensorRT builds symmetric int8 Q/DQ only: zero points 0, and float biases (it rejects an int32
            # DequantizeLinear: "only activation types allowed as input to this layer").
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
        )
        return onnx.load(str(output))


QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Initializers and Constant-node outputs by name; tensors stored outside the file are left out
    (zero points are a few bytes, always inside)."""
    tensors = {tensor.name: tensor for tensor in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensors[node.output[0]] = node.attribute[0].t
    return {
        name: onnx.numpy_helper.to_array(tensor)
        for name, tensor in tensors.items()
        if tensor.data_location != onnx.TensorProto.EXTERNAL
    }


def asymmetric_qdq_nodes(model: onnx.ModelProto) -> list[str]:
    """Q/DQ nodes TensorRT cannot build: a zero point that is not int8 (an int32 bias included), or
    not all zeros.

    A QuantizeLinear without a zero point quantises to uint8 (ONNX's default), so it is listed too.

    Returns:
        ``"<node name>: <why>"`` per offending node, in graph order (empty for a symmetric file).
    """
    constants = _constants(model)
    problems = []
    for node in model.graph.node:
        if node.op_type not in QDQ_OPS:
            continue
        zero_point = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if zero_point is None:
            if node.op_type == "QuantizeLinear":
                problems.append(f"{node.name}: no zero point (uint8 output)")
            continue
        value = constants.get(zero_point)
        if not isinstance(value, np.ndarray):
            problems.append(f"{node.name}: zero point {zero_point} is not a constant")
        elif value.dtype != np.int8:
            problems.append(f"{node.name}: zero point of type {value.dtype}")
        elif value.any():
            problems.append(f"{node.name}: zero point {value.ravel()[np.flatnonzero(value)[0]]} (not 0)")
    return problems


def check_symmetric_qdq(path: str | Path, runtime: str = "TensorRT") -> None:
    """Refuse an INT8 Q/DQ file that ``runtime`` cannot build before it is parsed.

    Raises:
        ExportError: naming the first offending nodes and how to make a symmetric file.
    """
    model = onnx.load(str(path), load_external_data=False)
    problems = asymmetric_qdq_nodes(model)
    if problems:
        raise ExportError(
            path,
            f"{runtime} builds only symmetric INT8 Q/DQ (int8 zero points of 0); {len(problems)} node(s) are not: "
            f"{'; '.join(problems[:3])}. Note: re-export with ssd-export --int8 --int8-quantizer ort (symmetric int8 throughout)",
        )


def _quantize_nncf(model: onnx.ModelProto, batches: CalibrationBatches, nodes: list[str]) -> onnx.ModelProto:
    try:
        import nncf
    except ImportError:
        raise SSDDeployError("INT8 quantizer nncf: nncf is not installed. Note: pip install 'ssd-deploy[openvino]'") from None
    keep = set(nodes)
    ignored = [node.name for node in model.graph.node if node.name not in keep]
    dataset = nncf.Dataset(list(batches), lambda batch: {INPUT_NAME: batch})
    with _quiet("nncf"):  # it logs a line per skipped node at INFO
        return nncf.quantize(
            model,
            dataset,
            subset_size=len(batches),  # dataset items are whole batches
            ignored_scope=nncf.IgnoredScope(names=ignored, validate=False),
        )

"""TensorRT's operator limits, checked on the ONNX before building (pure ``onnx``, no ``tensorrt``).

TensorRT's TopK takes k <= 3840, and its NMS layer considers at most 5000 boxes per batch item
(2000 on SM 5.3 and 6.2 GPUs) and silently drops the rest: an ONNX beyond them is refused instead
of truncated.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from ...errors import SSDDeployError
from ...export.metadata import ExportMetadata

# TensorRT's operator limits (operator reference, TopK and NMS): k of a TopK, and boxes one batch
# item of the NMS layer considers (2000 on SM 5.3 and 6.2 GPUs; more are silently dropped).
TOPK_LIMIT = 3840
NMS_BOX_LIMIT = 5000
NMS_BOX_LIMIT_BY_SM = {"5.3": 2000, "6.2": 2000}


def nms_box_limit(compute_capability: str) -> int:
    """Most boxes one batch item of TensorRT's NMS layer considers on a GPU of ``"major.minor"``."""
    return NMS_BOX_LIMIT_BY_SM.get(compute_capability, NMS_BOX_LIMIT)


def limit_problems(model: onnx.ModelProto, compute_capability: str, topk_candidates: int) -> list[str]:
    """What in ``model`` exceeds TensorRT's TopK and NMS limits on a GPU of ``compute_capability``.

    TopK's k is read from its constant input. The boxes per NMS batch item are dimension 1 of
    NonMaxSuppression's boxes [B, boxes, 4], from ONNX shape inference; where it cannot tell,
    ``topk_candidates`` (the most the export puts in one group).

    Returns:
        One ``"<op> <node>: ..."`` line per node beyond a limit (empty: within every limit).
    """
    constants = {tensor.name: tensor for tensor in model.graph.initializer}
    constants.update({n.output[0]: n.attribute[0].t for n in model.graph.node if n.op_type == "Constant" and n.attribute})
    problems = []
    for node in model.graph.node:
        if node.op_type == "TopK" and node.input[1] in constants:
            k = int(onnx.numpy_helper.to_array(constants[node.input[1]]).max())
            if k > TOPK_LIMIT:
                problems.append(f"TopK {node.name}: k {k} > {TOPK_LIMIT}")
    limit = nms_box_limit(compute_capability)
    for node, boxes in _nms_boxes_per_item(model, topk_candidates):
        if boxes > limit:
            problems.append(
                f"NonMaxSuppression {node}: {boxes} boxes per batch item > {limit} (GPU compute capability {compute_capability})"
            )
    return problems


def _nms_boxes_per_item(model: onnx.ModelProto, fallback: int) -> list[tuple[str, int]]:
    """(node name, boxes per batch item) of every NonMaxSuppression, ``fallback`` where unknown."""
    nodes = [node for node in model.graph.node if node.op_type == "NonMaxSuppression"]
    if not nodes:
        return []
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes = {value.name: value.type.tensor_type.shape.dim for value in [*inferred.graph.value_info, *inferred.graph.input]}
    found = []
    for node in nodes:
        dims = shapes.get(node.input[0], [])
        found.append((node.name, dims[1].dim_value if len(dims) == 3 and dims[1].dim_value > 0 else fallback))
    return found


def check_limits(onnx_path: str | Path, metadata: ExportMetadata, compute_capability: str) -> None:
    """Refuse an ONNX that TensorRT would reject (TopK) or silently truncate (NMS) on this GPU.

    Raises:
        SSDDeployError: naming the nodes and the export setting to lower.
    """
    model = onnx.load(str(onnx_path), load_external_data=False)
    problems = limit_problems(model, compute_capability, metadata.topk_candidates)
    if problems:
        limit = min(TOPK_LIMIT, nms_box_limit(compute_capability))
        raise SSDDeployError(
            f"{onnx_path}: beyond TensorRT's limits: {'; '.join(problems[:3])}. Note: export with topk_candidates "
            f"and pre_nms_topk <= {limit} (ssd-export --topk {limit} --pre-nms-topk {limit}; they are "
            f"{metadata.topk_candidates} and {metadata.postprocess.pre_nms_topk}), or without NMS and efficient_nms=True"
        )

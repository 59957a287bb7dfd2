"""ONNX files through the exporter PyTorch recommends (``torch.onnx.export(..., dynamo=True)``).

``torch.export`` captures the graph; our NMS operators (``ssd_deploy::grouped_nms``,
``ssd_deploy::candidate_nms``) are translated to the standard ``NonMaxSuppression``
(:mod:`ssd_deploy.postprocess.grouped_nms`, :mod:`ssd_deploy.postprocess.candidate_nms`), so the
file has no custom operators.
Metadata goes into ``metadata_props``. With ``simplify``, onnxslim (``onnxslim.slim``) folds and
fuses the graph further before the metadata is attached. The file is checked (``onnx.checker``
full check, which includes shape inference) before it is written.
"""

from __future__ import annotations

import importlib.metadata
import logging
import warnings
from pathlib import Path
import onnx
import torch
from torch import Tensor, nn

from ..postprocess import candidate_nms, grouped_nms, index_div
from ..errors import ExportError
from .graph import GraphSpec
from .metadata import DECODED_OUTPUTS, INPUT_NAME, NMS_OUTPUTS, ExportMetadata
from .opencv_dnn import guard_hardsigmoid_products

# The dynamo exporter emits opset 18 natively; lower versions go through ONNX's version converter.
MIN_OPSET = 17
DEFAULT_OPSET = 18
# Exporter progress and notes that are not problems of the user's model.
QUIET_LOGGERS = ("torch.onnx", "onnxscript", "onnx_ir")
# The graph simplifier of ``simplify`` (``ssd-export --simplify``): its Python package.
SIMPLIFIER = "onnxslim"
# Our operators in the graph and the ONNX Script that writes them as standard operators.
CUSTOM_TRANSLATIONS = {
    torch.ops.ssd_deploy.grouped_nms.default: grouped_nms.onnx_translation,
    torch.ops.ssd_deploy.candidate_nms.default: candidate_nms.onnx_translation,
    torch.ops.ssd_deploy.index_div.default: index_div.onnx_translation,
}


# Eight parameters: the writer's signature is the format table's contract (network, graph, example,
# path, metadata) plus the options the table names for ONNX (opset, simplify, opencv_dnn).
def write(
    network: nn.Module,
    spec: GraphSpec,
    example: Tensor,
    path: Path,
    metadata: dict[str, str],
    opset: int = DEFAULT_OPSET,
    simplify: bool = False,
    opencv_dnn: bool = False,
) -> None:
    """Export ``spec.build(network)`` on ``example`` to ``path`` with ``metadata``; with
    ``simplify``, the graph simplified by :func:`simplify_model` first; ``opencv_dnn`` guards the
    products OpenCV's DNN module misreads (:mod:`ssd_deploy.export.opencv_dnn`)."""
    graph = spec.build(network, nms_backend="onnx")
    dynamic_shapes = None if spec.batch is not None else {INPUT_NAME: {0: torch.export.Dim("batch", min=1)}}
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecations inside torchvision's meta kernels
            program = torch.onnx.export(
                graph,
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=list(NMS_OUTPUTS if spec.nms else DECODED_OUTPUTS),
                dynamic_shapes=dynamic_shapes,
                optimize=True,
                custom_translation_table=CUSTOM_TRANSLATIONS,
                verbose=False,
            )
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
    model = program.model_proto
    if simplify:
        model = simplify_model(model, path)
    drop_default_scatter_reduction(model)
    if opencv_dnn:  # after simplifying, which would remove the guards (Identity nodes)
        guard_hardsigmoid_products(model)
    onnx.helper.set_model_props(model, metadata)  # after simplifying: whatever onnxslim kept is replaced
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise ExportError(path, f"the exported graph fails onnx.checker: {str(error).splitlines()[0][:300]}") from None
    onnx.save_model(model, str(path))


def simplifier_version() -> str:
    """``onnxslim <version>``, as the metadata records it (``simplifier``)."""
    return f"{SIMPLIFIER} {importlib.metadata.version(SIMPLIFIER)}"


def simplify_model(model: onnx.ModelProto, path: Path) -> onnx.ModelProto:
    """``model`` simplified by ``onnxslim.slim`` (constant folding, dead-node removal, fusions;
    shapes inferred). The NMS and its padding are standard operators, so they stay as they are.

    onnxslim drops every node's ``metadata_props``, among them the module scopes the exporter
    records (``pkg.torch.onnx.name_scopes``), which INT8 quantisation needs to find the backbone
    (:func:`ssd_deploy.export.int8.quantizable_nodes`). It keeps node names, so each node it kept
    gets its own entries back; nodes it made (fused reshapes) have none.

    Raises:
        ExportError: naming ``path`` when onnxslim fails or returns nothing.
    """
    import onnxslim

    node_props = {node.name: [(p.key, p.value) for p in node.metadata_props] for node in model.graph.node if node.name}
    try:
        simplified = onnxslim.slim(model)
    except Exception as error:  # onnxslim raises what its passes raise
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        raise ExportError(path, f"onnxslim could not simplify the graph: {first}. Note: export without --simplify") from error
    if simplified is None:
        raise ExportError(path, "onnxslim returned no model. Note: export without --simplify")
    for node in simplified.graph.node:
        if node.name in node_props and not node.metadata_props:
            onnx.helper.set_metadata_props(node, dict(node_props[node.name]))
    return simplified


def drop_default_scatter_reduction(model: onnx.ModelProto) -> int:
    """Remove ``reduction="none"`` from every ScatterND (in place); returns how many were removed.

    The dynamo exporter writes the attribute explicitly although "none" is its default. TensorRT
    10's ONNX parser rejects any ``reduction`` on ScatterND ("Attribute reduction is not supported",
    onnx-tensorrt issue 957, fixed by its pull request 1013), and ONNX Runtime's TensorRT provider
    then hands the node to CUDA. Without the attribute the node means the same to every runtime.
    """
    removed = 0
    graphs = [model.graph, *model.functions]
    for graph in graphs:
        for node in graph.node:
            if node.op_type != "ScatterND":
                continue
            keep = [a for a in node.attribute if not (a.name == "reduction" and a.s in (b"none", b""))]
            removed += len(node.attribute) - len(keep)
            del node.attribute[:]
            node.attribute.extend(keep)
    return removed


def read_model(path: Path) -> onnx.ModelProto:
    """The file's model proto (external weight files are not read); unreadable: ExportError."""
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf's DecodeError and friends
        raise ExportError(path, f"not a readable ONNX file ({type(error).__name__})") from None


def read_metadata(path: Path) -> dict[str, str]:
    """``metadata_props`` as a dict, without loading external weight files."""
    return {prop.key: prop.value for prop in read_model(path).metadata_props}


def onnx_metadata(path: str | Path) -> ExportMetadata:
    """The :class:`ExportMetadata` of an exported ONNX file (the TensorRT runtime builds from
    these; it reads them here rather than through the format table, which imports its builder)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(path, "no such file")
    return ExportMetadata.from_strings(read_metadata(path), path)

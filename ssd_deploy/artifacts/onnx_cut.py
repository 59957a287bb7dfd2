"""ONNX surgery for network-only companions: cut the network out of a full file, name its outputs.

Nodes the exporter made from the network carry the name scope ``<graph attribute>.model``
(``deploy.model`` in files with NMS, ``decode.model`` without); decoding and NMS nodes carry other
scopes; quantisers' Q/DQ nodes carry none. Cutting keeps the network node for node as timed in
the full file, quantisation included.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import onnx

from ..files import atomic_write
from ..export.int8 import module_scopes
from ..export.metadata import DECODED_OUTPUTS, INPUT_NAME, NETWORK_OUTPUTS

NETWORK_SCOPES = ("deploy.model", "decode.model")


def head_outputs(model: onnx.ModelProto) -> tuple[str, str]:
    """Names of the tensors ``loc`` and ``logits`` in a full ONNX file from ssd-export.

    They are the network's tensors read by decoding: produced by a network node, consumed by a
    scoped node outside the network. ``loc`` leads to the decoder's ``Exp`` (box sizes), ``logits``
    to the ``Softmax`` (or ``Sigmoid``).

    Raises:
        ValueError: the graph lacks the exporter's name scopes, or these two tensors are not found.
    """
    def network(node: onnx.NodeProto) -> bool:
        return any(scope in NETWORK_SCOPES for scope in module_scopes(node))

    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    produced = {name for node in model.graph.node if network(node) for name in node.output}
    if not produced:
        raise ValueError("no node carries the network's name scope")
    crossing = sorted({name for name in produced for user in consumers.get(name, []) if module_scopes(user) and not network(user)})
    found = {kind: [name for name in crossing if _leads_to(name, consumers) == kind] for kind in NETWORK_OUTPUTS}
    if len(found["loc"]) != 1 or len(found["logits"]) != 1:
        raise ValueError(f"expected one loc and one logits tensor between network and decoding, found {found}")
    return found["loc"][0], found["logits"][0]


def _leads_to(name: str, consumers: dict[str, list[onnx.NodeProto]], depth: int = 4) -> str | None:
    """``loc`` if an ``Exp`` is nearer downstream than a ``Softmax``/``Sigmoid``, ``logits`` if the
    reverse, None if neither is within ``depth`` nodes."""
    queue, seen = deque([(name, 0)]), {name}
    while queue:
        tensor, distance = queue.popleft()
        for node in consumers.get(tensor, []):
            if node.op_type == "Exp":
                return "loc"
            if node.op_type in ("Softmax", "Sigmoid"):
                return "logits"
            if distance + 1 < depth:
                for output in node.output:
                    if output not in seen:
                        seen.add(output)
                        queue.append((output, distance + 1))
    return None


def extract_network(full: Path, path: Path) -> Path:
    """Write the network-only part of the ONNX file ``full`` (outputs ``loc``, ``logits``) to ``path``.

    Raises:
        ValueError: the head's outputs cannot be found (see :func:`head_outputs`).
    """
    model = onnx.load(str(full))
    loc, logits = head_outputs(model)
    graph = model.graph
    producer = {name: index for index, node in enumerate(graph.node) for name in node.output}
    keep, stack = set(), [loc, logits]
    while stack:  # every node the two tensors depend on
        index = producer.get(stack.pop())
        if index is not None and index not in keep:
            keep.add(index)
            stack.extend(name for name in graph.node[index].input if name)
    nodes = [graph.node[i] for i in sorted(keep)]
    used = {name for node in nodes for name in node.input}
    nodes += [onnx.helper.make_node("Identity", [loc], ["loc"], name="network_only_loc"),
              onnx.helper.make_node("Identity", [logits], ["logits"], name="network_only_logits")]
    outputs = [_typed_output(model, tensor, name) for tensor, name in zip((loc, logits), NETWORK_OUTPUTS)]
    inputs = [value for value in graph.input if value.name == INPUT_NAME]
    initializers = [tensor for tensor in graph.initializer if tensor.name in used]
    cut = onnx.helper.make_model(
        onnx.helper.make_graph(nodes, f"{graph.name}_network_only", inputs, outputs, initializers),
        opset_imports=model.opset_import, ir_version=model.ir_version,
    )
    cut.functions.extend(model.functions)
    properties = {prop.key: prop.value for prop in model.metadata_props}
    properties.update(nms="false", output_names=json.dumps(list(NETWORK_OUTPUTS)), network_only="true")
    onnx.helper.set_model_props(cut, properties)
    atomic_write(path, lambda tmp: onnx.save_model(cut, str(tmp)))
    return path


def _typed_output(model: onnx.ModelProto, tensor: str, name: str) -> onnx.ValueInfoProto:
    """The graph output ``name`` with the type and shape ONNX infers for ``tensor`` in ``model``
    ([N, P, 4] / [N, P, C]): OpenCV DNN refuses outputs declared without a shape."""
    inferred = {value.name: value for value in onnx.shape_inference.infer_shapes(model).graph.value_info}
    output = onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
    if tensor in inferred:
        output.type.CopyFrom(inferred[tensor].type)
    return output


def name_network_outputs(path: Path) -> None:
    """Rename, in place, the outputs of a network-only ONNX file written by the ONNX writer (which
    names them as the decoded contract, ``boxes`` and ``scores``) to what they hold: ``loc``, ``logits``."""
    model = onnx.load(str(path))
    renames = dict(zip(DECODED_OUTPUTS, NETWORK_OUTPUTS))
    for node in model.graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [renames.get(name, name) for name in node.output]
    for value in [*model.graph.output, *model.graph.value_info]:
        value.name = renames.get(value.name, value.name)
    onnx.save_model(model, str(path))

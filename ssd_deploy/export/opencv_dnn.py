"""ONNX files OpenCV's DNN module runs (``ssd-export --opencv-dnn``): what it misreads and the guard.

OpenCV's ONNX importer rewrites ``Mul(x, HardSigmoid(x))`` (alpha 1/6, beta 0.5) into one
``HardSwish(x)``. In OpenCV 5.0.0 (the opencv-python-headless wheel; both its classic and new
engine) the rewrite also fires when the Mul's other operand is *another* tensor: the
squeeze-and-excitation block of MobileNetV3, ``features * hardsigmoid(fc2(pool(features)))``,
becomes ``HardSwish(fc2(...))`` of shape [N, C, 1, 1] instead of [N, C, H, W]. The network then
carries wrong shapes until the head's first Reshape fails in ``forward``::

    reshape2_layer.cpp:172: (-215:Assertion failed) autoSize <= INT_MAX && autoSize*outTotal == inpTotal

An ``Identity`` between the HardSigmoid and the Mul breaks the pattern and changes no value: every
runtime passes the tensor through. It is added only on request (``ExportOptions.opencv_dnn``), so
the default files stay byte for byte what they were (INT8 quantisers and TensorRT parse the same
graph as before). Other nodes need nothing: SSDLite-MobileNetV2, SSD300-VGG16 and SSD300-ResNet50
files, NonMaxSuppression included, run as exported, with a dynamic or a fixed batch (measured on
OpenCV 5.0.0; OpenCV 4.x has no NonMaxSuppression layer, and 4.6's importer reads none of these files).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

GUARD_SUFFIX = "_opencv_dnn_guard"


def _is_hard_swish_gate(node: onnx.NodeProto) -> bool:
    """A HardSigmoid with alpha 1/6 and beta 0.5 (as float32): the one OpenCV's rewrite matches
    (ONNX's defaults are alpha 0.2, beta 0.5)."""
    if node.op_type != "HardSigmoid":
        return False
    values = {attribute.name: attribute.f for attribute in node.attribute}
    return np.float32(values.get("alpha", 0.2)) == np.float32(1 / 6) and np.float32(values.get("beta", 0.5)) == np.float32(0.5)


def _misread_products(graph: onnx.GraphProto) -> list[tuple[onnx.NodeProto, onnx.NodeProto]]:
    """(HardSigmoid, Mul) pairs where the Mul multiplies the HardSigmoid's output directly by a
    tensor other than the HardSigmoid's own input: the products OpenCV misreads as HardSwish."""
    producers = {output: node for node in graph.node for output in node.output}
    pairs = []
    for node in graph.node:
        if node.op_type != "Mul" or len(node.input) != 2:
            continue
        for operand, other in (node.input, node.input[::-1]):
            source = producers.get(operand)
            if source is not None and _is_hard_swish_gate(source) and source.input[0] != other:
                pairs.append((source, node))
    return pairs


def misread_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the Mul nodes OpenCV DNN would turn into a HardSwish of the wrong tensor (empty:
    none, or every one guarded)."""
    return [mul.name or mul.output[0] for _, mul in _misread_products(model.graph)]


def guard_hardsigmoid_products(model: onnx.ModelProto) -> int:
    """Put an ``Identity`` between each HardSigmoid and the Mul OpenCV misreads (in place).

    Returns:
        The number of Identity nodes added (8 in SSDLite-MobileNetV3: one per SE block).
    """
    graph = model.graph
    pairs = _misread_products(graph)
    guards: dict[str, onnx.NodeProto] = {}  # HardSigmoid output -> its Identity
    for source, mul in pairs:
        output = source.output[0]
        if output not in guards:
            guards[output] = helper.make_node("Identity", [output], [output + GUARD_SUFFIX], name=(source.name or output) + GUARD_SUFFIX)
        for index, name in enumerate(mul.input):
            if name == output:
                mul.input[index] = output + GUARD_SUFFIX
    # Each Identity right after its HardSigmoid keeps the node list topologically sorted.
    nodes = []
    for node in graph.node:
        nodes.append(node)
        if node.op_type == "HardSigmoid" and node.output[0] in guards:
            nodes.append(guards[node.output[0]])
    del graph.node[:]
    graph.node.extend(nodes)
    return len(guards)

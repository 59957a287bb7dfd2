"""Floor division of non-negative indices, exported to ONNX as one integer ``Div``.

The selection splits a flat top-k index over ``P x G`` (prior, class) pairs into its prior and its
class by dividing by ``G``. Neither of PyTorch's spellings exports to something every ONNX consumer
runs exactly:

- ``torch.div(..., rounding_mode="floor")`` becomes a float ``Div`` and ``Floor``, which a runtime
  computing in fp16 (OpenVINO on CPUs with native fp16, TensorRT's FP16 flag) rounds past 2048:
  the index then points outside the tensors it gathers from;
- ``//`` becomes an integer ``Div`` plus a correction for negative operands, whose ``Equal`` over
  booleans OpenCV DNN cannot run.

Indices are never negative, where truncation is floor division, so the custom operator
``ssd_deploy::index_div`` is ``//`` in eager PyTorch and one integer ``Div`` in ONNX
(:func:`onnx_translation`). Only ONNX graphs use it (:class:`~ssd_deploy.postprocess.select.Selection`
with the ``onnx`` NMS backend): TorchScript and AOTInductor files keep ``//``, which they compute
in integers and load without our operator library.
"""

from __future__ import annotations

import torch
from torch import Tensor

OP_NAME = "ssd_deploy::index_div"


@torch.library.custom_op(OP_NAME, mutates_args=())
def index_div(index: Tensor, divisor: int) -> Tensor:
    """``index // divisor`` for integer ``index >= 0`` (any shape); same shape and dtype."""
    return index // divisor


@index_div.register_fake
def _index_div_fake(index: Tensor, divisor: int) -> Tensor:
    return torch.empty_like(index)


def onnx_translation(index, divisor: int):
    """ONNX Script for :func:`index_div`: one ``Div`` of the int64 indices by an int64 constant."""
    from onnxscript import opset18 as op

    return op.Div(index, op.Constant(value_int=divisor))

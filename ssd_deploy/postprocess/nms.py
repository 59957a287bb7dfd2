"""The NMS backends: one per kind of graph, each keeping exactly what ``torchvision.ops.batched_nms`` keeps.

Every backend maps per-class candidate lists to a keep mask with static shapes:
``boxes [N, G, k, 4] xyxy, scores [N, G, k] -> Bool[N, G, k]``; only candidates scoring strictly
above the threshold take part, and NMS runs within each (image, class) group. The graph being
built chooses its backend by name (:data:`NMS_BACKENDS`):

- ``operator``: the custom operator ``ssd_deploy::grouped_nms`` (:mod:`.grouped_nms`). Eager
  PyTorch runs it with :mod:`.padded_nms` on CPU (all groups at once) and torchvision on other
  devices; the ONNX exporter translates it to one standard
  ``NonMaxSuppression``, which ONNX Runtime, OpenVINO and TensorRT run in native code.
- ``onnx``: ``operator``, and with the bounded pre-selection always the custom operator
  ``ssd_deploy::candidate_nms`` (:mod:`.candidate_nms`) on one candidate list per image, which
  the ONNX exporter translates to one ``NonMaxSuppression`` without per-class slots (eager
  PyTorch takes that layout too when the candidates are no more than the per-class slots).
- ``tensor``: plain tensor code (:mod:`.tensor_nms`), for TorchScript files, which must load in
  LibTorch without torchvision's (or our) operator library.
- ``torchvision``: one ``torchvision::nms`` over offset boxes, for AOTInductor packages, which C++
  programs load with torchvision's operator library.

Each is an ``nn.Module`` so that TorchScript compiles only the backend a graph holds.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .grouped_nms import grouped_nms, offset_nms_mask
from .tensor_nms import batched_nms_tensor


class OperatorNms(nn.Module):
    """NMS as ``ssd_deploy::grouped_nms`` (eager PyTorch, ONNX)."""

    def forward(self, boxes: Tensor, scores: Tensor, iou_threshold: float, score_threshold: float) -> Tensor:
        return grouped_nms(boxes, scores, iou_threshold, score_threshold)


class OnnxNms(OperatorNms):
    """:class:`OperatorNms` whose graphs keep pre-selected candidates in one list per image
    (``ssd_deploy::candidate_nms``, see :mod:`.candidate_nms`) whatever their number."""

    compact = True


class TensorNms(nn.Module):
    """NMS in plain tensor code (TorchScript)."""

    def forward(self, boxes: Tensor, scores: Tensor, iou_threshold: float, score_threshold: float) -> Tensor:
        candidates = (scores > score_threshold).nonzero()
        image, group, index = candidates[:, 0], candidates[:, 1], candidates[:, 2]
        groups = image * scores.size(1) + group
        kept = batched_nms_tensor(boxes[image, group, index], scores[image, group, index], groups, iou_threshold)
        keep = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
        keep[image[kept], group[kept], index[kept]] = True
        return keep


class TorchvisionNms(nn.Module):
    """NMS as one ``torchvision::nms`` over offset boxes (AOTInductor packages)."""

    def forward(self, boxes: Tensor, scores: Tensor, iou_threshold: float, score_threshold: float) -> Tensor:
        return offset_nms_mask(boxes, scores, iou_threshold, score_threshold)


NMS_BACKENDS: dict[str, type[nn.Module]] = {"operator": OperatorNms, "onnx": OnnxNms, "tensor": TensorNms, "torchvision": TorchvisionNms}


def nms_backend(name: str) -> nn.Module:
    """A fresh backend module by name (:data:`NMS_BACKENDS`)."""
    if name not in NMS_BACKENDS:
        raise ValueError(f"unknown NMS backend {name!r}; expected one of {sorted(NMS_BACKENDS)}")
    return NMS_BACKENDS[name]()

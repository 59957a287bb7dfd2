"""The deploy modules: the whole network-side flow every runtime executes.

    images [N, 3, H, W] RGB in [0, 1]
      -> normalise -> backbone -> heads            (SSD.forward)
      -> decode with priors -> softmax (or sigmoid)  (postprocess.decode_predictions)
      -> candidates, class-aware NMS, best K, pad   (postprocess.Selection)
      -> num_detections [N], boxes [N, K, 4] xyxy in [0, 1], scores [N, K], labels [N, K]

:class:`DecodeModule` stops after decoding, for programs that run their own NMS. Both are what
eager PyTorch runs and what every exporter captures (TorchScript scripts them around a traced
network; ``torch.export`` and ONNX export them whole). Pre-processing (resize, colour order) and
mapping boxes back to each original image happen on the host, once, in :mod:`ssd_deploy.pipeline`.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from .postprocess import PaddedDetections, PostprocessConfig, Selection, decode_predictions


def _uses_sigmoid(model: nn.Module, sigmoid: bool | None) -> bool:
    if sigmoid is not None:
        return sigmoid
    config = getattr(model, "config", None)
    return getattr(config, "score_function", "softmax") == "sigmoid"


def _priors_of(model: nn.Module, priors: Tensor | None) -> Tensor:
    if priors is not None:
        return priors
    found = getattr(model, "priors", None)
    if not isinstance(found, Tensor):
        raise TypeError("pass priors=Tensor[P, 4] for a network that does not carry them (e.g. a traced one)")
    return found


class DecodeModule(nn.Module):
    """Network plus decoding: images -> ``(boxes [N, P, 4] xyxy in [0, 1], scores [N, P, C])``.

    Args:
        model: maps images to ``(loc [N, P, 4], logits [N, P, C])``: an :class:`SSD`, or that
            network traced or cast to another precision.
        priors: Tensor[P, 4] cxcywh; taken from ``model.priors`` when omitted.
        sigmoid: per-class sigmoid scores instead of softmax; taken from
            ``model.config.score_function`` when omitted.
    """

    def __init__(self, model: nn.Module, priors: Tensor | None = None, sigmoid: bool | None = None) -> None:
        super().__init__()
        self.model = model
        self.sigmoid = _uses_sigmoid(model, sigmoid)
        self.register_buffer("priors", _priors_of(model, priors).detach().clone().float(), persistent=False)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        loc, logits = self.model(images)
        return decode_predictions(loc, logits, self.priors, sigmoid=self.sigmoid)


class DeployModule(DecodeModule):
    """Network, decoding and NMS with the fixed-size padded output contract.

    ``nms_backend`` names the NMS of the graph being built (``operator`` for eager PyTorch,
    ``onnx`` for ONNX, ``tensor`` for TorchScript, ``torchvision`` for AOTInductor; see
    :mod:`ssd_deploy.postprocess.nms`); every backend keeps the same detections.
    """

    def __init__(
        self,
        model: nn.Module,
        postprocess: PostprocessConfig = PostprocessConfig(),
        priors: Tensor | None = None,
        sigmoid: bool | None = None,
        nms_backend: str = "operator",
    ) -> None:
        super().__init__(model, priors, sigmoid)
        self.postprocess = postprocess
        self.select = Selection(postprocess, nms_backend)

    def forward(self, images: Tensor) -> PaddedDetections:
        loc, logits = self.model(images)
        boxes, scores = decode_predictions(loc, logits, self.priors, sigmoid=self.sigmoid)
        return self.select(boxes, scores)


class CastNetwork(nn.Module):
    """Runs ``network`` in ``dtype`` (e.g. float16) behind a float32 interface.

    Inputs are cast on entry and ``(loc, logits)`` cast back to float32, so decoding, softmax and
    NMS stay in float32 and the exported contract (float32 in, float32 out) does not change.
    """

    def __init__(self, network: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.network = copy.deepcopy(network).to(dtype)
        self.dtype = dtype

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        loc, logits = self.network(images.to(self.dtype))
        return loc.float(), logits.float()

"""The module every exporter captures: the deploy module with an input check and tuple outputs.

Exported graphs return plain tuples in the order of
:data:`ssd_deploy.export.metadata.NMS_OUTPUTS` (or ``DECODED_OUTPUTS``): that is what ONNX,
AOTInductor and C++ consumers see, and ``torch.export`` cannot serialise our NamedTuple.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..deploy import DecodeModule, DeployModule
from ..postprocess import PostprocessConfig


class _CheckedInput(nn.Module):
    """Rejects inputs that break the contract with a message a C++ caller can act on.

    The checks read only static facts (dtype, rank, channel and image size, and the batch size
    when it is fixed), so ``torch.export``/ONNX fold them away and TorchScript keeps them.
    """

    def __init__(self, height: int, width: int, batch: int) -> None:
        super().__init__()
        self.height = height
        self.width = width
        self.batch = batch  # -1: dynamic

    def check(self, images: Tensor) -> None:
        if images.dtype != torch.float32:
            raise ValueError("images: expected float32 RGB values in [0, 1]")
        if images.dim() != 4 or images.size(1) != 3 or images.size(2) != self.height or images.size(3) != self.width:
            raise ValueError(
                "images: expected shape [N, 3, {}, {}] (NCHW, RGB), got {}".format(
                    self.height, self.width, list(images.shape)
                )
            )
        if self.batch > 0 and images.size(0) != self.batch:
            raise ValueError(
                "images: this model was exported for batch {}, got {}. Note: export with --dynamic-batch".format(
                    self.batch, images.size(0)
                )
            )


class DetectionsGraph(_CheckedInput):
    """images -> (num_detections [N] int32, boxes [N, K, 4], scores [N, K], labels [N, K] int32)."""

    def __init__(self, deploy: DeployModule, height: int, width: int, batch: int) -> None:
        super().__init__(height, width, batch)
        self.deploy = deploy

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        self.check(images)
        detections = self.deploy(images)
        return detections.num_detections, detections.boxes, detections.scores, detections.labels


class DecodedGraph(_CheckedInput):
    """images -> (boxes [N, P, 4] xyxy in [0, 1], scores [N, P, C] softmaxed)."""

    def __init__(self, decode: DecodeModule, height: int, width: int, batch: int) -> None:
        super().__init__(height, width, batch)
        self.decode = decode

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        self.check(images)
        return self.decode(images)


@dataclass(frozen=True)
class GraphSpec:
    """Everything but the network that defines an exported graph.

    Attributes:
        priors: Tensor[P, 4] cxcywh. input_size: (height, width).
        nms: padded detections (True) or decoded boxes and scores (False).
        postprocess: NMS settings. batch: fixed batch size, or None for a dynamic batch.
    """

    priors: Tensor
    input_size: tuple[int, int]
    nms: bool
    postprocess: PostprocessConfig
    batch: int | None
    sigmoid: bool = False  # per-class sigmoid scores (focal-loss models) instead of softmax

    def build(self, network: nn.Module, nms_backend: str = "operator") -> nn.Module:
        """The graph around ``network`` (an SSD, possibly traced or cast), in eval mode.
        ``nms_backend``: the NMS this kind of graph can hold, see :mod:`ssd_deploy.postprocess.nms`."""
        height, width = self.input_size
        batch = -1 if self.batch is None else self.batch
        if self.nms:
            graph: nn.Module = DetectionsGraph(DeployModule(network, self.postprocess, self.priors, self.sigmoid, nms_backend), height, width, batch)
        else:
            graph = DecodedGraph(DecodeModule(network, self.priors, self.sigmoid), height, width, batch)
        return graph.eval()

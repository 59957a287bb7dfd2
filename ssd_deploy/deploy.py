"""The deploy module: the whole network-side flow every runtime executes.

    images [N, 3, H, W] RGB in [0, 1]
      -> normalise -> backbone -> heads            (SSD.forward)
      -> decode with priors -> softmax              (postprocess.decode_predictions)
      -> threshold, top-k, class-aware NMS, pad     (postprocess.select_detections)
      -> num_detections [N], boxes [N, K, 4] xyxy in [0, 1], scores [N, K], labels [N, K]

Pre-processing (resize, colour order) and mapping boxes back to each original image happen on
the host, once, in :mod:`ssd_deploy.pipeline`.
"""

from __future__ import annotations

from torch import Tensor, nn

from .models.ssd import SSD
from .postprocess import PaddedDetections, PostprocessConfig, decode_predictions, select_detections


class DeployModule(nn.Module):
    """An :class:`SSD` followed by decoding and NMS, with the fixed-size padded output contract."""

    def __init__(self, model: SSD, postprocess: PostprocessConfig = PostprocessConfig()) -> None:
        super().__init__()
        self.model = model
        self.postprocess = postprocess

    def forward(self, images: Tensor) -> PaddedDetections:
        loc, logits = self.model(images)
        boxes, scores = decode_predictions(loc, logits, self.model.priors)
        return select_detections(boxes, scores, self.postprocess)

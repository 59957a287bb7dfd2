"""The settings of post-processing and the fixed-size layout of its output.

The output layout is TensorRT's EfficientNMS layout, used by every runtime and exported file:
``num_detections [N] int32, boxes [N, K, 4] float32 xyxy in [0, 1], scores [N, K] float32,
labels [N, K] int32``; rows past ``num_detections`` are zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from torch import Tensor

# Candidates that enter NMS with the default bounded pre-selection (see PostprocessConfig). At most
# TensorRT's TopK limit (3840), so every exported graph builds into an engine.
DEFAULT_PRE_NMS_TOPK = 2000


@dataclass(frozen=True)
class PostprocessConfig:
    """Thresholds of post-processing. Defaults are the SSD paper's evaluation settings.

    Attributes:
        score_threshold: candidates must score strictly above this (per class); >= 0.
        iou_threshold: class-aware NMS IoU threshold.
        max_detections: K, detections kept per image.
        topk_candidates: per class and image, only the best this many candidates enter NMS
            (torchvision's ``topk_candidates``; bounds NMS time on untrained models).
        pre_nms_topk: per image, only the best this many of those candidates (over all classes)
            enter NMS, as in TensorRT's EfficientNMS and mmdeploy; 0 = all of them. The result
            is always the first detections of the exact result (no detection is added or
            changed), and all of them whenever at least ``max_detections`` of the pre-selected
            candidates survive NMS or at most ``pre_nms_topk`` pass the score threshold; see
            :mod:`ssd_deploy.postprocess.select`.
    """

    score_threshold: float = 0.01
    iou_threshold: float = 0.45
    max_detections: int = 200
    topk_candidates: int = 400
    pre_nms_topk: int = DEFAULT_PRE_NMS_TOPK

    def __post_init__(self) -> None:
        if self.score_threshold < 0:
            raise ValueError(f"PostprocessConfig: score_threshold {self.score_threshold} < 0 (scores are probabilities)")
        if self.pre_nms_topk < 0:
            raise ValueError(f"PostprocessConfig: pre_nms_topk {self.pre_nms_topk} < 0 (0 turns pre-selection off)")

    @property
    def exact(self) -> "PostprocessConfig":
        """The same settings without pre-selection: exactly what torchvision's SSD keeps."""
        return PostprocessConfig(self.score_threshold, self.iou_threshold, self.max_detections, self.topk_candidates, 0)


class PaddedDetections(NamedTuple):
    """Detections of a batch in the fixed-size layout described in the module docstring."""

    num_detections: Tensor  # [N] int32
    boxes: Tensor  # [N, K, 4] float32 xyxy, fractions of the image
    scores: Tensor  # [N, K] float32
    labels: Tensor  # [N, K] int32, 1 ... C-1

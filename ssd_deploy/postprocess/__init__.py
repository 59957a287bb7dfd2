"""Post-processing: decoded network outputs to fixed-size padded detections.

- :mod:`.config`: :class:`PostprocessConfig` (thresholds) and :class:`PaddedDetections` (output layout);
- :mod:`.decode`: loc and logits to boxes and probabilities;
- :mod:`.select`: candidates, NMS and the best K (:class:`Selection`, :func:`select_detections`);
  ONNX graphs split its flat pair indices with :mod:`.index_div` (one integer ``Div``);
- :mod:`.nms`: the NMS backends, one per kind of graph, over :mod:`.grouped_nms` (custom
  operator and its ONNX translation; its CPU kernel is :mod:`.padded_nms`), :mod:`.candidate_nms`
  (NMS over one candidate list per image, for ONNX graphs) and :mod:`.tensor_nms` (plain tensor code).
"""

from .config import DEFAULT_PRE_NMS_TOPK, PaddedDetections, PostprocessConfig
from .decode import decode_predictions
from .nms import NMS_BACKENDS
from .select import Selection, select_detections

__all__ = [
    "DEFAULT_PRE_NMS_TOPK",
    "NMS_BACKENDS",
    "PaddedDetections",
    "PostprocessConfig",
    "Selection",
    "decode_predictions",
    "select_detections",
]

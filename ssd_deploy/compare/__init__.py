"""Comparing two runs of the same detector: the one comparison every check uses.

It serves ``ssd-export --verify`` (the loaded file against the eager graph it came from), runtime
parity (``ssd-bench parity``'s raw differences and detections found both ways), the benchmarks'
checks of exported files, and the GPU check (each CUDA runtime against CPU FP32).

- :mod:`.tolerances`: how close runs must be (:class:`Tolerances` per precision, float32's derived
  from the model's rounding; :class:`RecallCriterion` for INT8).
- :mod:`.comparison`: :class:`Comparison`, the outcome (measured differences, one line per problem).
- :mod:`.detections`: padded detections matched as sets (:func:`compare_detections`), decoded
  outputs element-wise (:func:`compare_decoded`).
- :mod:`.recall`: confident detections found by the other run (:func:`detection_recall`, both ways
  :func:`mutual_recall`).
- :mod:`.runs`: a loaded file's run function against the eager module, over batches
  (:func:`verify`, :func:`verify_recall`).
"""

from .comparison import Comparison
from .detections import compare_decoded, compare_detections
from .recall import detection_recall, mutual_recall
from .runs import verify, verify_recall
from .tolerances import (
    FP16_TOLERANCES,
    FP32_TOLERANCES,
    INT8_CRITERION,
    MAX_BOX_PIXELS,
    ROUNDING_FACTOR,
    RecallCriterion,
    Tolerances,
    float32_tolerances,
)

__all__ = [
    "FP16_TOLERANCES",
    "FP32_TOLERANCES",
    "INT8_CRITERION",
    "MAX_BOX_PIXELS",
    "ROUNDING_FACTOR",
    "Comparison",
    "RecallCriterion",
    "Tolerances",
    "compare_decoded",
    "compare_detections",
    "detection_recall",
    "float32_tolerances",
    "mutual_recall",
    "verify",
    "verify_recall",
]

"""TensorRT runtime: an engine built from the exported ONNX once per machine, cached, run on a GPU.

    model.onnx ─ build_engine (parse, optimisation profile, precision, [EfficientNMS]) ─ x.engine + x.engine.json
        └─ TensorRTRunner: check the sidecar against this TensorRT and GPU ─ deserialise ─ execute_async_v3

``open_runner("model.onnx")`` looks the engine up in a cache keyed by the ONNX bytes, the build
options, the TensorRT version and the GPU (name and compute capability), builds it on a miss, and
loads it; ``open_runner("x.engine")`` loads an engine built before. A serialised engine cannot hold
our metadata, so it lives in a JSON sidecar ``<engine>.json`` beside it.

NMS (``EngineOptions.nms``):

- ``graph``: the engine computes what the ONNX computes. An ONNX exported with NMS has the standard
  ``NonMaxSuppression`` operator, which TensorRT's parser maps to its own NMS layer (INMSLayer); one
  exported without NMS gives decoded boxes and scores (the Detector then runs NMS on the host).
  The graph's NonMaxSuppression has one batch item per (image, class) holding that class's best
  ``topk_candidates`` (400) boxes. INMSLayer considers at most 5000 boxes per batch item (2000 on
  SM 5.3 and 6.2 GPUs) and silently drops the rest, and TensorRT's TopK takes k <= 3840: both are
  checked before building (:func:`~.limits.check_limits`), so a larger ``topk_candidates`` (or an SSD300
  export whose 8,732 priors all enter TopK) is refused instead of truncated.
- ``efficient``: for an ONNX exported without NMS, TensorRT's ``EfficientNMS_TRT`` plugin is
  appended to the parsed network (background class 0, no score activation: the scores are already
  softmaxed) and its outputs renamed to the contract's ``num_detections``, ``boxes``, ``scores``,
  ``labels``. The plugin differs from our NMS only at the margins: it keeps the best 4096
  candidates over all classes (we keep ``topk_candidates`` per class) and suppresses at IoU >= the
  threshold (we suppress above it).

Precision: the engine's arithmetic against the ONNX's (``ssd-export --fp16`` makes an fp16 ONNX).

    asked      ONNX fp32                                     ONNX of the asked precision
    fp32       as exported (TF32 off)                        -
    fp16/bf16  TensorRT 10: FP16/BF16 flag; 11: error        as exported (strongly typed network)
    int8       TensorRT 10: INT8 flag + entropy calibration  as exported: a Q/DQ ONNX (explicit
               from images; 11: error (implicit INT8         quantisation, ``ssd-export --int8``);
               calibration was removed: use an INT8 ONNX)    symmetric int8 Q/DQ only (ssd-export
                                                             --int8-quantizer ort), checked before parsing

Any other pair (an fp16 ONNX asked for fp32, ...) is an error naming the ONNX's precision.

Engines run only on the TensorRT version and GPU they were built for: a mismatch is reported from
the sidecar before deserialising. ``tensorrt`` is imported only inside functions, so this module
imports (and its pure parts run) on machines without it.

One job per module:

    options.py     EngineOptions, the optimisation profile, the precision mode (pure)
    cache.py       engine cache keys and paths, the JSON sidecar and its version/GPU check (pure)
    limits.py      TensorRT's TopK and NMS limits, checked on the ONNX (pure onnx)
    machine.py     importing tensorrt, its logger, the CUDA device and GPU identity
    calibrator.py  the INT8 entropy calibrator (TensorRT 10)
    build.py       build_engine, with the EfficientNMS plugin appended for efficient_nms
    runner.py      TensorRTRunner and open_runner (the runtime's entry point: load or build and cache)
"""

from .build import EFFICIENT_NMS, build_engine
from .cache import (
    BUILD_RECIPE,
    SIDECAR_FORMAT,
    calibration_cache_key,
    check_engine_matches,
    default_cache_dir,
    engine_cache_key,
    engine_cache_path,
    engine_record,
    file_sha256,
    options_record,
    read_engine_record,
    sidecar_path,
)
from .calibrator import entropy_calibrator
from .limits import NMS_BOX_LIMIT, TOPK_LIMIT, check_limits, limit_problems, nms_box_limit
from .machine import cuda_index, gpu_identity, import_tensorrt, parse_device, weakly_typed
from .options import (
    DEFAULT_MAX_BATCH,
    ENGINE_PRECISIONS,
    RUNTIME,
    EngineOptions,
    precision_mode,
    profile_batches,
    profile_shapes,
    resolve_options,
)
from .runner import TENSOR_ALIGNMENT, TensorRTRunner, aligned, availability, open_runner

__all__ = [
    "BUILD_RECIPE",
    "DEFAULT_MAX_BATCH",
    "EFFICIENT_NMS",
    "ENGINE_PRECISIONS",
    "NMS_BOX_LIMIT",
    "RUNTIME",
    "SIDECAR_FORMAT",
    "TENSOR_ALIGNMENT",
    "TOPK_LIMIT",
    "EngineOptions",
    "TensorRTRunner",
    "aligned",
    "availability",
    "build_engine",
    "calibration_cache_key",
    "check_engine_matches",
    "check_limits",
    "cuda_index",
    "default_cache_dir",
    "engine_cache_key",
    "engine_cache_path",
    "engine_record",
    "entropy_calibrator",
    "file_sha256",
    "gpu_identity",
    "import_tensorrt",
    "limit_problems",
    "nms_box_limit",
    "open_runner",
    "options_record",
    "parse_device",
    "precision_mode",
    "profile_batches",
    "profile_shapes",
    "read_engine_record",
    "resolve_options",
    "sidecar_path",
    "weakly_typed",
]

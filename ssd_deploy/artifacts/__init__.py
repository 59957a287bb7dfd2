"""The export cache: the files a benchmark or the demo runs, exported once from a checkpoint.

    from ssd_deploy.artifacts import ExportSettings, FileKind, ready_files
    files, errors = ready_files(Path("model.pt"), [FileKind("onnx"), FileKind("pt2")], ExportSettings(Path("runs/bench/cache")))
    full, network = files[FileKind("onnx")]      # the ssd-export file and its network-only companion

Each kind (format × precision) gives two files in ``<cache_dir>/<checkpoint stem>-<digest>/``:

- the full file, exactly what ``ssd-export`` writes (dynamic batch, verified once when written);
  an INT8 ONNX file is quantised from the cached float32 ONNX file when there is one;
- its network-only companion: the same network, format and precision, no decoding and no NMS,
  outputs ``loc`` [N, P, 4] and ``logits`` [N, P, C] (``network_only: true`` in its metadata).
  Timing the two on one runtime gives the time decoding and NMS take inside the graph.

Files are found by name (:func:`file_names`: everything that changes a file is in it) in a folder
keyed by the checkpoint's SHA-256; missing ones are exported, on the CPU several at a time
(``ExportSettings.jobs``), each in its own process.

Modules: ``kinds`` (kinds, settings, names), ``full`` (full files), ``companion`` (network-only
files through a format's writer), ``onnx_cut`` (ONNX companions cut out of their full file),
``pool`` (worker processes), ``cache`` (what is missing, exported; the entry points).
"""

from .cache import cached_file, export_files, ready_files
from .companion import export_network_only
from .full import export_full, export_options, write_full
from .kinds import CACHE_VERSION, ExportSettings, FileKind, cache_folder, checkpoint_digest, exported_kinds, file_names, int8_quantizer
from .onnx_cut import extract_network, head_outputs
from .pool import ExportJob, can_overlap, start_order, usable_cores, waits_for

__all__ = [
    "CACHE_VERSION",
    "ExportJob",
    "ExportSettings",
    "FileKind",
    "cache_folder",
    "cached_file",
    "can_overlap",
    "checkpoint_digest",
    "export_files",
    "export_full",
    "export_network_only",
    "export_options",
    "exported_kinds",
    "extract_network",
    "file_names",
    "head_outputs",
    "int8_quantizer",
    "ready_files",
    "start_order",
    "usable_cores",
    "waits_for",
    "write_full",
]

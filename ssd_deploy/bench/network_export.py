"""The files a benchmark exports from a checkpoint: each full file and its network-only companion.

The full file is exactly what ``ssd-export`` writes (:func:`ssd_deploy.export.export_model`, dynamic
batch, verified once). The companion holds the same network in the same format and precision but
stops at the head: ``images -> (loc [N, P, 4], logits [N, P, C])``, no decoding, no NMS.

- ONNX (float and INT8): the companion is cut out of the full file itself (the nodes the head's
  outputs depend on), so its network is node for node the one timed, quantisation included.
- TorchScript and pt2: the network goes through the format's own writer.

Its metadata says ``nms: false`` (outputs named ``boxes`` and ``scores``, so runtimes load it) and
``network_only: true``: its outputs are raw head outputs, not the decoded contract, and it is only
for timing and raw-output comparisons.
"""

from __future__ import annotations

import json
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import onnx
import torch
from torch import Tensor, nn

from ..calibration import CalibrationBatches
from ..checkpoint import load_checkpoint
from ..deploy import CastNetwork
from ..errors import ExportError, SSDDeployError
from ..export import ExportOptions, describe_model, export_model, get_format
from ..export.int8 import module_scopes, quantize_onnx
from ..export.metadata import INPUT_NAME
from ..export.verify import sample_batch
from ..files import atomic_write
from ..postprocess import PostprocessConfig
from .machine import usable_cores
from .parallel_export import ExportJob, can_overlap, export_concurrently
from .variants import ExportSettings, FileKind, int8_quantizer

NETWORK_ONLY_KEY = "network_only"


class NetworkGraph(nn.Module):
    """images [N, 3, H, W] RGB in [0, 1] -> (loc [N, P, 4], logits [N, P, C]): the network alone."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.model = network

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        loc, logits = self.model(images)
        return loc, logits


@dataclass(frozen=True)
class NetworkSpec:
    """Stands in for :class:`ssd_deploy.export.graph.GraphSpec` in the format writers (they read
    ``build``, ``batch`` and ``nms``): a dynamic-batch graph of the network alone."""

    batch: int | None = None
    nms: bool = False

    def build(self, network: nn.Module, nms_backend: str = "operator") -> nn.Module:
        return NetworkGraph(network).eval()  # no NMS in it


def file_names(kind: FileKind, settings: ExportSettings) -> tuple[str, str]:
    """Cache file names of the full file and its companion, e.g. ``onnx-int8-nncf.onnx``."""
    suffix = get_format(kind.format).suffix
    tag = f"{kind.format}-{kind.precision}"
    if kind.precision == "int8":
        tag += f"-{int8_quantizer()}-{settings.calibration_images}-{_short_hash(str(Path(settings.calibration).resolve()))}"
    if kind.format == "pt2" or kind.precision == "fp16":
        tag += f"-{torch.device(settings.device).type}"
    post = settings.postprocess
    if post != PostprocessConfig():
        tag += f"-s{post.score_threshold:g}-iou{post.iou_threshold:g}-k{post.max_detections}-top{post.topk_candidates}-pre{post.pre_nms_topk}"
    return f"{tag}{suffix}", f"{tag}-network{suffix}"


def _short_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:8]


def export_files(
    checkpoint: Path, kinds: Sequence[FileKind], folder: Path, settings: ExportSettings, log: Callable[[str], None] = print
) -> tuple[dict[FileKind, tuple[Path, Path]], dict[FileKind, str]]:
    """Export (or find in ``folder``) the full file and companion of every kind.

    With ``settings.jobs`` > 1 on the CPU, the missing files are first written that many at a time
    in worker processes (:mod:`~ssd_deploy.bench.parallel_export`); what is left is written here.

    Returns:
        The paths (full, companion) of every kind exported, and for each kind that failed
        (e.g. an INT8 file that does not pass its check) the error: one failure does not stop
        the others.
    """
    files: dict[FileKind, tuple[Path, Path]] = {}
    errors: dict[FileKind, str] = {}
    workers = min(settings.jobs, usable_cores(), torch.get_num_threads())  # --threads 1: one at a time
    if workers > 1 and torch.device(settings.device).type == "cpu":  # a GPU export (a CUDA compile) wants the whole GPU
        missing = _missing_jobs(kinds, folder, settings)
        if can_overlap(missing):
            errors.update(export_concurrently(checkpoint, missing, folder, settings, workers, log))
    model = names = None
    for kind in kinds:
        if kind in errors:
            continue
        full_name, network_name = file_names(kind, settings)
        full, network = folder / full_name, folder / network_name
        try:
            if not full.is_file():
                _export_full(checkpoint, kind, full, folder, settings, log)
            if not network.is_file() and kind.format == "onnx":
                try:
                    log(f"cutting the network-only companion out of {full.name} -> {network}")
                    extract_network(full, network)
                except ValueError as error:
                    log(f"cannot cut the network out of {full.name} ({error}); exporting it instead")
            if not network.is_file():
                if model is None:
                    model, names, _ = load_checkpoint(checkpoint)
                log(f"exporting the network-only companion -> {network}")
                export_network_only(model, names, kind, network, settings)
        except SSDDeployError as error:
            log(f"{checkpoint.name}: exporting {kind.format} {kind.precision} failed: {error}")
            errors[kind] = str(error)
            continue
        files[kind] = (full, network)
    return files, errors


def _missing_jobs(kinds: Sequence[FileKind], folder: Path, settings: ExportSettings) -> list[ExportJob]:
    """The files of ``kinds`` not in ``folder`` that a worker process can write (not ONNX companions:
    they are cut out of their full file)."""
    jobs = []
    for kind in kinds:
        full, network = (folder / name for name in file_names(kind, settings))
        if not full.is_file():
            jobs.append(ExportJob(kind, "full", full))
        if kind.format != "onnx" and not network.is_file():
            jobs.append(ExportJob(kind, "network", network))
    return jobs


def _export_full(checkpoint: Path, kind: FileKind, full: Path, folder: Path, settings: ExportSettings, log: Callable[[str], None]) -> None:
    """Export the full file of ``kind``; an INT8 ONNX file quantises the cached float32 file when
    there is one (and is exported in full when that file does not match, e.g. an older version's)."""
    options = export_options(kind, settings)
    float_onnx = _float_onnx(kind, folder, settings)
    if float_onnx is not None:
        log(f"exporting {checkpoint.name} -> {full} (quantising {float_onnx.name}; once; cached)")
        try:
            _log_verification(full, export_model(checkpoint, full, options, float_onnx=float_onnx), log)
            return
        except ExportError as error:
            if error.path != str(float_onnx):
                raise
            log(f"{error}; exporting {full.name} in full instead")
    else:
        log(f"exporting {checkpoint.name} -> {full} (once; cached)")
    _log_verification(full, export_model(checkpoint, full, options), log)


def _log_verification(path: Path, result, log: Callable[[str], None]) -> None:
    if result.verification is not None:
        log(f"{path.name} verified against PyTorch: {result.verification.summary()}")


def _float_onnx(kind: FileKind, folder: Path, settings: ExportSettings) -> Path | None:
    """The cached float32 ONNX file that an INT8 ONNX ``kind`` can quantise, if there is one."""
    if kind.format != "onnx" or kind.precision != "int8":
        return None
    path = folder / file_names(FileKind("onnx", "fp32"), settings)[0]
    return path if path.is_file() else None


def export_options(kind: FileKind, settings: ExportSettings) -> ExportOptions:
    """The :class:`ExportOptions` of the cached full file of ``kind``."""
    on_device = kind.format == "pt2" or kind.precision == "fp16"
    return ExportOptions(
        format=kind.format,
        dynamic_batch=True,
        fp16=kind.precision == "fp16",
        int8=kind.precision == "int8",
        calibration=settings.calibration if kind.precision == "int8" else None,
        calibration_images=settings.calibration_images,
        int8_quantizer=int8_quantizer(),
        device=settings.device if on_device else "cpu",
        verify=settings.verify,
        postprocess=settings.postprocess,
    )


def export_network_only(model, class_names: Sequence[str], kind: FileKind, path: Path, settings: ExportSettings) -> Path:
    """Write ``model``'s network (no decoding, no NMS) as a ``kind`` file at ``path``.

    Args:
        model: the :class:`~ssd_deploy.models.SSD`. class_names: with background at 0.
        kind: format and precision (``fp16``: the network cast like ``ssd-export --fp16``;
            ``int8``: quantised like ``ssd-export --int8`` with ``settings.calibration``).
    """
    export_format = get_format(kind.format)
    device = torch.device(settings.device if kind.format == "pt2" or kind.precision == "fp16" else "cpu")
    model = model.eval()
    network: nn.Module = CastNetwork(model, torch.float16) if kind.precision == "fp16" else model
    network = network.to(device)
    metadata = describe_model(model, list(class_names), nms=False, batch=None, precision="fp32" if kind.precision == "int8" else kind.precision, format=kind.format)
    strings = {**metadata.to_strings(), NETWORK_ONLY_KEY: json.dumps(True)}
    example = sample_batch(model.config.input_size, 2).to(device)
    extra = {"opset": ExportOptions().opset} if kind.format == "onnx" else {}

    def write(tmp: Path) -> None:
        if kind.precision != "int8":
            export_format.write(network, NetworkSpec(), example, tmp, strings, **extra)
            return
        with tempfile.TemporaryDirectory(prefix="ssd-bench-") as scratch:
            float_file = Path(scratch) / "network.onnx"
            export_format.write(network, NetworkSpec(), example, float_file, strings, **extra)
            batches = CalibrationBatches.from_folder(
                settings.calibration, model.config.input_size, 8, settings.calibration_images, model.config.resize
            )
            quantize_onnx(float_file, tmp, batches, int8_quantizer(), "percentile", include_head=False)

    with torch.no_grad():
        atomic_write(path, write)
    return path


# ONNX graph surgery. Nodes the exporter made from the network carry the name scope
# ``<graph attribute>.model`` (``deploy.model`` in files with NMS, ``decode.model`` without);
# decoding and NMS nodes carry other scopes; quantisers' Q/DQ nodes carry none.
NETWORK_SCOPES = ("deploy.model", "decode.model")


def head_outputs(model: onnx.ModelProto) -> tuple[str, str]:
    """Names of the tensors ``loc`` and ``logits`` in a full ONNX file from ssd-export.

    They are the network's tensors read by decoding: produced by a network node, consumed by a
    scoped node outside the network. ``loc`` leads to the decoder's ``Exp`` (box sizes), ``logits``
    to the ``Softmax`` (or ``Sigmoid``).

    Raises:
        ValueError: the graph lacks the exporter's name scopes, or these two tensors are not found.
    """
    def network(node: onnx.NodeProto) -> bool:
        return any(scope in NETWORK_SCOPES for scope in module_scopes(node))

    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    produced = {name for node in model.graph.node if network(node) for name in node.output}
    if not produced:
        raise ValueError("no node carries the network's name scope")
    crossing = sorted({name for name in produced for user in consumers.get(name, []) if module_scopes(user) and not network(user)})
    found = {kind: [name for name in crossing if _leads_to(name, consumers) == kind] for kind in ("loc", "logits")}
    if len(found["loc"]) != 1 or len(found["logits"]) != 1:
        raise ValueError(f"expected one loc and one logits tensor between network and decoding, found {found}")
    return found["loc"][0], found["logits"][0]


def _leads_to(name: str, consumers: dict[str, list[onnx.NodeProto]], depth: int = 4) -> str | None:
    """``loc`` if an ``Exp`` is nearer downstream than a ``Softmax``/``Sigmoid``, ``logits`` if the
    reverse, None if neither is within ``depth`` nodes."""
    queue, seen = deque([(name, 0)]), {name}
    while queue:
        tensor, distance = queue.popleft()
        for node in consumers.get(tensor, []):
            if node.op_type == "Exp":
                return "loc"
            if node.op_type in ("Softmax", "Sigmoid"):
                return "logits"
            if distance + 1 < depth:
                for output in node.output:
                    if output not in seen:
                        seen.add(output)
                        queue.append((output, distance + 1))
    return None


def extract_network(full: Path, path: Path) -> Path:
    """Write the network-only part of the ONNX file ``full`` (outputs renamed ``boxes``, ``scores``) to ``path``.

    Raises:
        ValueError: the head's outputs cannot be found (see :func:`head_outputs`).
    """
    model = onnx.load(str(full))
    loc, logits = head_outputs(model)
    graph = model.graph
    producer = {name: index for index, node in enumerate(graph.node) for name in node.output}
    keep, stack = set(), [loc, logits]
    while stack:  # every node the two tensors depend on
        index = producer.get(stack.pop())
        if index is not None and index not in keep:
            keep.add(index)
            stack.extend(name for name in graph.node[index].input if name)
    nodes = [graph.node[i] for i in sorted(keep)]
    used = {name for node in nodes for name in node.input}
    nodes += [onnx.helper.make_node("Identity", [loc], ["boxes"], name="network_only_loc"),
              onnx.helper.make_node("Identity", [logits], ["scores"], name="network_only_logits")]
    outputs = [onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in ("boxes", "scores")]
    inputs = [value for value in graph.input if value.name == INPUT_NAME]
    initializers = [tensor for tensor in graph.initializer if tensor.name in used]
    cut = onnx.helper.make_model(
        onnx.helper.make_graph(nodes, f"{graph.name}_network_only", inputs, outputs, initializers),
        opset_imports=model.opset_import, ir_version=model.ir_version,
    )
    cut.functions.extend(model.functions)
    properties = {prop.key: prop.value for prop in model.metadata_props}
    properties.update(nms="false", output_names=json.dumps(["boxes", "scores"]), **{NETWORK_ONLY_KEY: "true"})
    onnx.helper.set_model_props(cut, properties)
    atomic_write(path, lambda tmp: onnx.save_model(cut, str(tmp)))
    return path

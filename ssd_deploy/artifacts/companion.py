"""The network-only companion of a cached file, written through its format's own writer.

It holds the same network in the same format and precision as the full file but stops at the
head: ``images [N, 3, H, W] -> (loc [N, P, 4], logits [N, P, C])``, no decoding, no NMS. Its
metadata says ``nms: false`` and ``network_only: true`` (outputs named ``loc`` and ``logits``): its
outputs are raw head outputs, not the decoded contract, and it is only for timing and raw-output
comparisons. ONNX companions are usually cut out of their full file instead (:mod:`.onnx_cut`).
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from ..files import atomic_write
from ..deploy import CastNetwork
from ..export import ExportOptions, describe_model, get_format
from ..export.int8 import quantize_onnx
from ..export.verify import sample_batch
from .kinds import ExportSettings, FileKind, int8_quantizer
from .onnx_cut import name_network_outputs


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
    strings = dataclasses.replace(metadata, network_only=True).to_strings()
    example = sample_batch(model.config.input_size, 2).to(device)
    extra = {"opset": ExportOptions().opset, "opencv_dnn": kind.opencv_dnn} if kind.format == "onnx" else {}

    def write(tmp: Path) -> None:
        if kind.precision == "int8":
            _write_int8(network, example, tmp, strings, model, settings)
        else:
            export_format.write(network, NetworkSpec(), example, tmp, strings, **extra)
        if kind.format == "onnx":  # the writer names them as the decoded contract
            name_network_outputs(tmp)

    with torch.no_grad():
        atomic_write(path, write)
    return path


def _write_int8(network: nn.Module, example: Tensor, path: Path, strings: dict[str, str], model, settings: ExportSettings) -> None:
    """The network as float32 ONNX, quantised into ``path`` like ``ssd-export --int8`` (backbone only)."""
    with tempfile.TemporaryDirectory(prefix="ssd-bench-") as scratch:
        float_file = Path(scratch) / "network.onnx"
        get_format("onnx").write(network, NetworkSpec(), example, float_file, strings, opset=ExportOptions().opset)
        batches = settings.calibration.batches(model.config.input_size, resize=model.config.resize)
        quantize_onnx(float_file, path, batches, int8_quantizer(), "percentile", include_head=False)

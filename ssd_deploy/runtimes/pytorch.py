"""Eager PyTorch from a training checkpoint (or an :class:`SSD` in memory), CPU or CUDA.

It runs :class:`~ssd_deploy.deploy.DeployModule`, the very module every exporter captures, so it
is the reference the other runtimes are compared with. ``compile=True`` wraps it in
``torch.compile``; ``fp16`` (CUDA) and ``bf16`` run the network in that precision behind the
float32 interface (:class:`~ssd_deploy.deploy.CastNetwork`), decoding and NMS stay float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..checkpoint import load_checkpoint
from ..deploy import CastNetwork, DeployModule
from ..export.metadata import describe_model
from ..models import SSD
from ..postprocess import PostprocessConfig
from .base import Runner, as_torch_batch, check_precision
from ..devices import inference, torch_device
from .registry import Availability

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def availability() -> Availability:
    devices = ("cpu",) + tuple(f"cuda:{i}" for i in range(torch.cuda.device_count()))
    reason = "" if len(devices) > 1 else "CUDA: no NVIDIA GPU or driver found"
    return Availability(True, torch.__version__, devices, reason)


class PyTorchRunner(Runner):
    """:class:`DeployModule` around an :class:`SSD`, eager or ``torch.compile``d."""

    name = "pytorch"

    def __init__(
        self,
        model: SSD,
        class_names: Sequence[str],
        path: Path = Path("<memory>"),
        device: str = "cpu",
        precision: str = "auto",
        postprocess: PostprocessConfig = PostprocessConfig(),
        compile: bool = False,
    ) -> None:
        target = torch_device(self.name, device)
        supported = ("fp32", "fp16", "bf16") if target.type == "cuda" else ("fp32", "bf16")
        precision = check_precision(self.name, precision, supported, "Note: fp16 needs CUDA; int8 runs on onnxruntime or openvino (ssd-export --int8)")
        metadata = describe_model(model, list(class_names), postprocess, precision=precision)
        super().__init__(path, metadata, str(target), precision)
        model = model.eval()
        network = CastNetwork(model, _DTYPES[precision]) if precision in _DTYPES else model
        if compile:
            # Only the network: decoding and NMS have data-dependent shapes, which would make the
            # compiled graph break and recompile (measured 3x slower than eager when compiled whole).
            network = torch.compile(network.to(target))
        self.module = DeployModule(network, postprocess, priors=model.priors, sigmoid=model.config.score_function == "sigmoid").to(target).eval()
        self._target = target

    def _infer(self, batch: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, ...]:
        with inference(self._target):
            return tuple(self.module(as_torch_batch(batch, self._target)))

    def infer_network(self, batch: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network alone, as this runner runs it (cast or compiled): ``(loc [N, P, 4], logits
        [N, P, C])`` float32 on the runner's device, before decoding and NMS."""
        with inference(self._target):
            return self.module.model(as_torch_batch(batch, self._target))


def open_runner(
    path: Path,
    device: str = "cpu",
    precision: str = "auto",
    postprocess: PostprocessConfig = PostprocessConfig(),
    compile: bool = False,
    expected_arch: str | None = None,
) -> PyTorchRunner:
    """Load a training checkpoint (or torchvision SSD state dict).

    Args:
        postprocess: NMS thresholds (the paper's evaluation settings by default).
        compile: run through ``torch.compile`` (the first calls compile; later ones are faster).
        expected_arch: if given, the checkpoint must be for this architecture.
    """
    model, class_names, _ = load_checkpoint(path, expected_arch)
    return PyTorchRunner(model, class_names, path, device, precision, postprocess, compile)

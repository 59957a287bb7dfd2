"""Exported ONNX, or an OpenVINO IR ``.xml`` (``ssd-export --format openvino``, or converted from the ONNX), on OpenVINO: CPU; GPU, NPU where present.

OpenVINO reads the ONNX file as exported, NMS included, and keeps its metadata (``metadata_props``)
in the model's ``rt_info["framework"]``, also in an IR converted with ``ovc model.onnx`` or
``openvino.convert_model`` (both store FP16 weights unless told ``compress_to_fp16=False``, which
moves scores by ~1e-3: keep FP32 weights for FP32 parity). ``precision`` sets OpenVINO's inference precision hint; ``fp32`` is
pinned explicitly, since OpenVINO otherwise computes in bf16 on CPUs that have it. An ``int8``
file (``ssd-export --int8``) runs its quantised layers in INT8 and the rest in fp32.
"""

from __future__ import annotations

from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..devices import openvino_device
from ..errors import ExportError, RuntimeUnavailableError, SSDDeployError
from ..export.metadata import ExportMetadata
from ..export.openvino_ir import model_metadata as ir_metadata
from .base import Runner, as_numpy_batch, check_precision
from .registry import Availability

PRECISION_HINTS = {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}
MAX_COMPILED_BATCHES = 4  # batch sizes a file with a free batch keeps compiled (OpenVINORunner._compile)
APPLIED_PRECISIONS = {hint: precision for precision, hint in PRECISION_HINTS.items()}


def availability() -> Availability:
    try:
        import openvino
    except ImportError:
        return Availability(False, reason="openvino is not installed")
    devices = tuple(openvino.Core().available_devices)
    return Availability(bool(devices), openvino.__version__, devices, "" if devices else "OpenVINO found no device")


def model_metadata(model: Any, path: Path) -> ExportMetadata:
    """The ssd-deploy metadata OpenVINO kept from the exported ONNX (``rt_info["framework"]``)."""
    return ExportMetadata.from_strings(ir_metadata(model, path), path)


class OpenVINORunner(Runner):
    """A model compiled by ``openvino.Core`` for one device."""

    name = "openvino"

    def __init__(
        self, path: Path, device: str = "cpu", precision: str = "auto", threads: int = 0, performance_hint: str = "LATENCY"
    ) -> None:
        import openvino

        core = openvino.Core()
        try:
            model = core.read_model(str(path))
        except Exception as error:  # OpenVINO raises RuntimeError subclasses with long messages
            raise ExportError(path, f"OpenVINO cannot read it: {str(error).strip().splitlines()[0][:200]}") from None
        metadata = model_metadata(model, path)
        target = openvino_device(device, core.available_devices)
        if metadata.precision == "int8":
            supported: tuple[str, ...] = ("int8",)
        elif metadata.precision == "fp16":  # fp16 weights: compute in fp16, or in fp32 where a device lacks it
            supported = ("fp16", "fp32")
        else:
            supported = tuple(PRECISION_HINTS)
        precision = check_precision(
            self.name, precision, supported, f"Note: {path.name} holds a {metadata.precision} model; INT8 files come from ssd-export --int8", metadata.precision
        )
        super().__init__(path, metadata, target, precision)
        # INT8 files: quantised layers run in INT8 whatever the hint; the hint keeps the rest fp32.
        self._config: dict[str, Any] = {"PERFORMANCE_HINT": performance_hint, "INFERENCE_PRECISION_HINT": PRECISION_HINTS.get(precision, "f32")}
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = int(threads)
        self._model, self._target = model, target  # kept to compile other batch sizes
        self._batch_free = model.inputs[0].get_partial_shape()[0].is_dynamic
        self._by_batch: OrderedDict[int, tuple[Any, Any]] = OrderedDict()
        self._static_batch = metadata.batch or 1  # the key of a file whose shapes are all static
        self._compile(self._static_batch)
        self._report_fallback(target)

    @property
    def compiled(self) -> Any:
        """The compiled model of the latest batch size run (``openvino.CompiledModel``)."""
        return next(reversed(self._by_batch.values()))[0]

    def _compile(self, batch: int) -> Any:
        """The infer request for ``batch`` images, compiled on first use.

        A file with a free batch is compiled for each batch size it is given, reshaped to it:
        OpenVINO's CPU plugin runs a model whose shapes are not static through shape inference at
        every node on every call, which cost the 91-class SSDLite320 a tenth of its time at batch
        1 and a sixth at batch 8 (README, "Benchmark"). The last ``MAX_COMPILED_BATCHES`` sizes
        stay compiled; a reshape or compile that fails raises :class:`RuntimeUnavailableError`."""
        if batch in self._by_batch:
            self._by_batch.move_to_end(batch)
            return self._by_batch[batch][1]
        import openvino

        try:
            model = self._model
            if self._batch_free:
                model = model.clone()
                height, width = self.metadata.input_size
                model.reshape({model.inputs[0].get_any_name(): [batch, 3, height, width]})
            # Compiled on a thread of its own: OpenVINO's compile_model gives the calling thread an
            # alternate signal stack, and each compiled model puts back the one before it when it
            # is destroyed. Destroyed in another order than made (an evicted batch size, two
            # runners closed in turn), the main thread was left with a freed stack, and the next
            # Ctrl-C crashed the process (tests/test_runtimes.py).
            with ThreadPoolExecutor(max_workers=1) as pool:
                compiled = pool.submit(openvino.Core().compile_model, model, self._target, self._config).result()
            self._by_batch[batch] = (compiled, compiled.create_infer_request())
        except Exception as error:  # OpenVINO raises RuntimeError subclasses
            raise RuntimeUnavailableError(self.name, f"cannot compile {self.path.name} for {self._target}: {str(error).strip().splitlines()[0][:200]}") from None
        while len(self._by_batch) > MAX_COMPILED_BATCHES:
            self._by_batch.popitem(last=False)
        return self._by_batch[batch][1]

    def _report_fallback(self, target: str) -> None:
        """Record the precision OpenVINO applied where it differs from the one asked for: a CPU
        without native bf16/fp16 (no AVX-512 BF16/FP16 or AMX) silently computes in f32."""
        applied = APPLIED_PRECISIONS.get(self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())
        if self.precision in PRECISION_HINTS and applied is not None and applied != self.precision:
            self.notes.append(f"{self.path.name}: OpenVINO runs {applied} on {target}, which has no native {self.precision}")
            self.precision = applied

    def _infer(self, batch: np.ndarray | torch.Tensor) -> list[np.ndarray]:
        request = self._compile(len(batch) if self._batch_free else self._static_batch)
        request.infer({self.metadata.input_name: as_numpy_batch(batch)})
        # copy: the request reuses its output buffers on the next call
        return [request.get_tensor(name).data.copy() for name in self.metadata.output_names]

    def _close(self) -> None:
        self._by_batch.clear()
        del self._model


def open_runner(
    path: Path, device: str = "cpu", precision: str = "auto", threads: int = 0, performance_hint: str = "LATENCY"
) -> OpenVINORunner:
    """Open an exported ONNX file or OpenVINO IR.

    Args:
        device: ``cpu``, ``gpu`` (``gpu.N``), ``npu`` or ``auto``, as OpenVINO lists them.
        precision: ``fp32``, ``fp16`` or ``bf16`` inference precision of a float file; ``int8``
            for a quantised file; ``auto``: the file's.
        threads: inference threads (0: OpenVINO's default).
        performance_hint: ``LATENCY`` or ``THROUGHPUT``.
    """
    if path.suffix.lower() not in (".onnx", ".xml"):
        raise SSDDeployError(f"{path}: OpenVINO reads .onnx files and IR .xml files")
    return OpenVINORunner(path, device, precision, threads, performance_hint)

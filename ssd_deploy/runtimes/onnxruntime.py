"""Exported ONNX on ONNX Runtime, with the CPU, CUDA or TensorRT execution provider.

``device="cpu"`` uses the CPU provider; ``cuda[:N]`` the CUDA provider, with I/O binding so the
batch and outputs stay on the GPU until the final copy; ``providers=["TensorrtExecutionProvider",
...]`` builds TensorRT engines inside ONNX Runtime (``fp16``/``int8`` switch TensorRT's precision).
The TensorRT provider gets an explicit optimisation profile (batch 1 to ``trt_max_batch``, so a new
batch size does not build a new engine), and its engine and timing caches live under the user's
cache folder (:func:`default_trt_cache_dir`), not beside the model or in the working directory,
which may be read-only. On the CPU the precision is the file's (an ``int8`` file comes from
``ssd-export --int8``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import ExportError, RuntimeUnavailableError, SSDDeployError
from ..export.formats import read_metadata
from ..export.int8 import check_symmetric_qdq
from ..export.metadata import ExportMetadata
from ..files import file_sha256
from .tensorrt.options import DEFAULT_MAX_BATCH
from .base import Runner, as_numpy_batch, as_torch_batch, check_precision
from ..devices import CPU_PROVIDER, CUDA_PROVIDER, TENSORRT_PROVIDER, Device, onnxruntime_device, onnxruntime_providers, require_cuda
from .registry import Availability

CPU, CUDA, TENSORRT = CPU_PROVIDER, CUDA_PROVIDER, TENSORRT_PROVIDER
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


def availability() -> Availability:
    try:
        import onnxruntime
    except ImportError:
        return Availability(False, reason="onnxruntime is not installed")
    providers = tuple(onnxruntime.get_available_providers())
    missing = [p for p in (CUDA, TENSORRT) if p not in providers]
    reason = f"{', '.join(missing)} not in this onnxruntime build (the onnxruntime-gpu wheel has them)" if missing else ""
    if not missing and not torch.cuda.is_available():
        reason = "GPU providers present but no CUDA device found"
    return Availability(True, onnxruntime.__version__, providers, reason)


def default_trt_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ssd-deploy/onnxruntime-tensorrt`` (``~/.cache/...``): the TensorRT
    provider's engines (one folder per model file) and its timing cache (shared by all models)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "ssd-deploy" / "onnxruntime-tensorrt"


def tensorrt_provider_options(
    path: Path, metadata: ExportMetadata, device_id: int, precision: str, cache_dir: Path, max_batch: int
) -> dict[str, Any]:
    """ONNX Runtime's TensorRT provider options for the exported file ``path``.

    The engine cache is ``<cache_dir>/<stem>-<first 16 hex of the file's sha256>``: the provider
    names engines after the graph, not the weights, so two files of one architecture must not share
    a folder. The timing cache (kernel timings per layer shape) is shared. The profile takes batches
    1 to ``max_batch`` (a fixed-batch file: its batch) of the file's input size.
    """
    height, width = metadata.input_size
    low, high = (metadata.batch, metadata.batch) if metadata.batch else (1, max_batch)

    def shape(batch: int) -> str:
        return f"{metadata.input_name}:{batch}x3x{height}x{width}"

    return {
        "device_id": device_id,
        "trt_fp16_enable": precision == "fp16",
        "trt_int8_enable": precision == "int8",
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir / f"{path.stem}-{file_sha256(path)[:16]}"),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache_dir),
        "trt_profile_min_shapes": shape(low),
        "trt_profile_opt_shapes": shape(high),
        "trt_profile_max_shapes": shape(high),
    }


@dataclass(frozen=True)
class SessionSettings:
    """How ONNX Runtime runs a file: :class:`OnnxRuntimeRunner`'s options beyond device and precision.

    Attributes:
        providers: execution providers in priority order (default from the device); e.g.
            ``["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]``.
        intra_op_threads: threads per operator (0: ONNX Runtime's default, one per core).
        graph_optimization: ``disable``, ``basic``, ``extended`` or ``all``.
        io_binding: keep inputs and outputs on the GPU (default: on for CUDA devices).
        trt_cache_dir: where the TensorRT provider caches engines and kernel timings (default
            :func:`default_trt_cache_dir`).
        trt_max_batch: most images per call with the TensorRT provider: its profile's largest batch
            (a dynamic-batch file; the Detector splits larger batches).
        spin_wait: let idle operator threads busy-wait between runs (ONNX Runtime's default; off
            here because it slows the host pre-processing that runs between batches).
    """

    providers: Sequence[str] | None = None
    intra_op_threads: int = 0
    graph_optimization: str = "all"
    io_binding: bool | None = None
    trt_cache_dir: str | Path | None = None
    trt_max_batch: int = DEFAULT_MAX_BATCH
    spin_wait: bool = False


def session_options(settings: SessionSettings) -> Any:
    """``onnxruntime.SessionOptions`` of ``settings``: threads, spinning, graph optimisation level."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = int(settings.intra_op_threads)
    # ONNX Runtime's threads busy-wait after each run by default. Between runs the host
    # pre-processes the next images, and spinning threads steal its cores: measured on 2
    # cores, SSDLite-V3 detect() took 40 ms with spinning (22 ms of it pre-processing) and
    # 19 ms without, though the network alone is 2 ms faster with it.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.spin_wait else "0")
    options.graph_optimization_level = {
        "disable": onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[settings.graph_optimization]
    return options


class OnnxRuntimeRunner(Runner):
    """An ``onnxruntime.InferenceSession`` over an exported ONNX file.

    Args:
        device: ``cpu`` or ``cuda[:N]``.
        precision: ``auto`` or the file's; with the TensorRT provider also ``fp16`` of an fp32 file.
        settings: the session's :class:`SessionSettings`; or give its fields as keyword ``options``
            (``providers=[...]``, ``intra_op_threads=1``, ...), as ``runtimes.load`` does.
    """

    name = "onnxruntime"

    def __init__(
        self, path: Path, device: str = "cpu", precision: str = "auto", settings: SessionSettings | None = None, **options: Any
    ) -> None:
        if path.suffix.lower() != ".onnx":
            raise SSDDeployError(f"{path}: ONNX Runtime reads .onnx files")
        if settings is not None and options:
            raise SSDDeployError(f"{path}: pass SessionSettings or its fields {sorted(options)}, not both")
        settings = settings or SessionSettings(**options)
        metadata = read_metadata(path)
        target = onnxruntime_device(device)
        providers = self._providers(target, settings.providers)
        precision = self._check(path, metadata, precision, providers, settings)
        super().__init__(path, metadata, str(target), precision)
        self._device_index = target.index or 0
        self.session = self._open_session(settings, providers)
        self.providers = self.session.get_providers()
        if target.type == "cuda":
            # Without this, a provider that fails to start (no cuDNN, a bad device id) silently
            # hands the session to the CPU provider.
            self.session.disable_fallback()
            if CUDA not in self.providers and TENSORRT not in self.providers:
                raise RuntimeUnavailableError(self.name, f"{path.name}: the GPU providers did not start (session has {self.providers})")
        if settings.io_binding and target.type != "cuda":
            raise SSDDeployError(f"{path}: io_binding keeps tensors in GPU memory; it needs device='cuda'")
        self.io_binding = target.type == "cuda" if settings.io_binding is None else bool(settings.io_binding)

    def _providers(self, target: Device, asked: Sequence[str] | None) -> list[str]:
        """The providers to use on ``target``: ``asked`` or the device's default, all present here."""
        import onnxruntime

        providers = list(asked) if asked else onnxruntime_providers(target)
        missing = [p for p in providers if p not in onnxruntime.get_available_providers()]
        if missing:
            raise RuntimeUnavailableError(
                self.name,
                f"{', '.join(missing)} not available in onnxruntime {onnxruntime.__version__} here "
                f"(available: {', '.join(onnxruntime.get_available_providers())}). "
                "Note: CUDA and TensorRT providers need the onnxruntime-gpu wheel and an NVIDIA GPU",
            )
        if target.type == "cpu" and providers != [CPU]:
            raise RuntimeUnavailableError(self.name, f"device cpu with providers {providers}: pass device='cuda' for GPU providers")
        if target.type == "cuda":
            require_cuda(self.name, target.type, check_index=False)
        return providers

    def _check(self, path: Path, metadata: ExportMetadata, precision: str, providers: list[str], settings: SessionSettings) -> str:
        """The precision to run (checked against the file and providers); the settings checked."""
        # TensorRT can build fp16 from an fp32 file; INT8 needs the file's Q/DQ scales (no
        # calibration table is given). Elsewhere the file's precision runs.
        supported = (metadata.precision, "fp16") if TENSORRT in providers and metadata.precision == "fp32" else (metadata.precision,)
        precision = check_precision(
            self.name, precision, supported, f"Note: {path.name} holds a {metadata.precision} model; export another with ssd-export --fp16/--int8", metadata.precision
        )
        trt_max_batch = settings.trt_max_batch
        if not isinstance(trt_max_batch, int) or trt_max_batch < 1:
            raise SSDDeployError(f"{path}: trt_max_batch {trt_max_batch!r}. Note: expected a whole number of images, 1 or more")
        if settings.graph_optimization not in OPTIMIZATION_LEVELS:
            raise SSDDeployError(f"graph_optimization {settings.graph_optimization!r}: expected one of {', '.join(OPTIMIZATION_LEVELS)}")
        return precision

    def _open_session(self, settings: SessionSettings, providers: list[str]) -> Any:
        """The ``InferenceSession`` of this file with ``settings`` and ``providers``."""
        import onnxruntime

        if TENSORRT in providers and self.metadata.precision == "int8":
            check_symmetric_qdq(self.path, "ONNX Runtime's TensorRT provider")
        provider_options = [self._provider_options(provider, settings) for provider in providers]
        try:
            return onnxruntime.InferenceSession(
                str(self.path), session_options(settings), providers=providers, provider_options=provider_options
            )
        except Exception as error:  # onnxruntime raises its own exception types per failure
            raise ExportError(self.path, f"ONNX Runtime cannot load it: {str(error).strip().splitlines()[0][:200]}") from None

    def _provider_options(self, provider: str, settings: SessionSettings) -> dict[str, Any]:
        """One provider's options; the TensorRT provider's engine cache folder is made here."""
        if provider != TENSORRT:
            # use_tf32 is on by default in the CUDA provider: float32 files compute float32, as on the CPU
            # (PyTorch's TF32 convolutions moved an SSDLite's scores by up to 5e-2; see devices.ieee_float32).
            return {"device_id": self._device_index, "use_tf32": 0} if provider == CUDA else {}
        cache = Path(settings.trt_cache_dir) if settings.trt_cache_dir else default_trt_cache_dir()
        options = tensorrt_provider_options(self.path, self.metadata, self._device_index, self.precision, cache, settings.trt_max_batch)
        Path(options["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
        self.batch_range = (1, settings.trt_max_batch)  # the profile's batches (a fixed-batch file's own is used instead)
        return options

    def _infer(self, batch: np.ndarray | torch.Tensor) -> list[np.ndarray]:
        if not self.io_binding:
            return self.session.run(None, {self.metadata.input_name: as_numpy_batch(batch)})
        # I/O binding: the input is read from (and outputs written to) GPU memory directly.
        images = as_torch_batch(batch, self.device).contiguous()
        # ONNX Runtime reads the pointer on its own stream: finish torch's copy first.
        torch.cuda.current_stream(images.device).synchronize()
        binding = self.session.io_binding()
        binding.bind_input(
            self.metadata.input_name, "cuda", self._device_index, np.float32, list(images.shape), images.data_ptr()
        )
        for name in self.metadata.output_names:
            binding.bind_output(name, "cuda", self._device_index)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def _close(self) -> None:
        del self.session


def load_function(path: Path, device: str = "cpu") -> Callable[[torch.Tensor], tuple[torch.Tensor, ...]]:
    """The file's session (as :class:`OnnxRuntimeRunner` opens it) as a function of the input batch
    Tensor[N, 3, H, W] returning CPU tensors; ONNX Runtime itself answers a batch of the wrong shape."""
    runner = OnnxRuntimeRunner(Path(path), device)

    def run(images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.from_numpy(np.asarray(output)) for output in runner._infer(images))

    return run


# The runtime module's entry point (see registry.py): the runner's constructor, whose keyword
# options are the fields of OPTIONS (runtimes.load names them when an unknown one is given).
open_runner = OnnxRuntimeRunner
OPTIONS = SessionSettings

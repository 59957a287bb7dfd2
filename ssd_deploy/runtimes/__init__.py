"""One :class:`Detector` interface over every runtime.

    from ssd_deploy.runtimes import available, load
    detector = load("model.onnx")                       # runtime picked from the file
    detector = load("model.onnx", runtime="openvino")   # or named
    detections = detector.detect(cv2.imread("street.jpg"))
    detections.boxes, detections.scores, detections.names()

Pre-processing and mapping boxes back to the image are shared by all runtimes
(:mod:`ssd_deploy.runtimes.detector`); only the network call differs (:class:`Runner`).
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from ..errors import RuntimeUnavailableError, SSDDeployError
from ..models.hub import resolve_model
from ..pipeline import DEFAULT_BATCH_SIZE
from .base import PRECISIONS, InputError, Runner
from .detector import Detector, StageTimes
from .registry import RUNTIMES, Availability, RuntimeSpec, get_runtime, require_available, runtime_for_file


def available() -> dict[str, Availability]:
    """Every runtime with whether it is usable here and, if not, why."""
    return {name: spec.availability() for name, spec in RUNTIMES.items()}


def load(
    path: str | Path,
    runtime: str = "auto",
    device: str = "cpu",
    precision: str = "auto",
    max_batch: int = DEFAULT_BATCH_SIZE,
    input_size: tuple[int, int] | None = None,
    min_score: float | None = None,
    **options: Any,
) -> Detector:
    """Load a model file on a runtime.

    Args:
        path: a training checkpoint, torchvision's COCO weights by name from the torch hub cache
            (``ssd300_vgg16``, ``ssdlite320_mobilenet_v3_large``), or a file from ``ssd-export`` (``.ts``, ``.onnx``, ``.pt2``),
            a TensorRT engine (``.engine``/``.plan``) or an OpenVINO IR (``.xml``).
        runtime: ``auto`` (from the file, see :func:`runtime_for_file`) or a name in
            :data:`RUNTIMES`: pytorch, torchscript, aotinductor, onnxruntime, openvino, tensorrt, opencv.
        device: ``cpu``, ``cuda``/``cuda:N``, and for OpenVINO also ``gpu``/``npu``/``auto``.
        precision: ``auto`` (the file's; fp32 for a checkpoint), or ``fp32``, ``fp16``, ``bf16``,
            ``int8`` where the runtime and file support it.
        max_batch: images per network call for a dynamic-batch model.
        input_size: (height, width) the caller expects; an error if the model was made for another.
        min_score: report only detections above this score (at least the model's own threshold).
        **options: runtime-specific settings (see each runtime module's ``open_runner``).

    Raises:
        SSDDeployError: missing file, unknown runtime, a runtime not usable here (saying why), a
            file of the wrong kind for the runtime, or another input size than ``input_size``.
    """
    path = resolve_model(path)
    _check_arguments(path, max_batch, precision)
    name = _runtime_for(path, runtime)
    open_runner = _open_runner(name, path, options)
    runner = open_runner(path, device=device, precision=precision, **options)
    try:
        _check_input_size(runner, input_size)
        return Detector(runner, max_batch=max_batch, min_score=min_score)
    except SSDDeployError:
        runner.close()
        raise


def _check_arguments(path: Path, max_batch: int, precision: str) -> None:
    """SSDDeployError for a missing file, a batch below 1 or an unknown precision."""
    if not path.exists():
        raise SSDDeployError(f"{path}: no such file")
    if max_batch < 1:
        raise SSDDeployError(f"max_batch {max_batch}: expected 1 or more")
    if precision != "auto" and precision not in PRECISIONS:
        raise SSDDeployError(f"precision {precision!r} is unknown. Note: expected auto or one of {', '.join(PRECISIONS)}")


def _runtime_for(path: Path, runtime: str) -> str:
    """The runtime's name: from the file for ``auto``; one that reads ``path``'s suffix and is usable here."""
    name = runtime_for_file(path) if runtime == "auto" else get_runtime(runtime).name
    spec = RUNTIMES[name]
    suffix = path.suffix.lower()
    if suffix not in spec.suffixes:
        raise SSDDeployError(f"{path}: the {name} runtime does not read {suffix or 'suffix-less'} files. Note: it reads {', '.join(spec.suffixes)}")
    try:
        require_available(name)
    except RuntimeUnavailableError as error:  # say which file could not be loaded, not only why
        raise RuntimeUnavailableError(name, error.problem, path) from None
    return name


def _open_runner(name: str, path: Path, options: dict[str, Any]) -> Callable[..., Runner]:
    """The runtime's ``open_runner``, once ``options`` are known to be ones it takes."""
    module = RUNTIMES[name].implementation()
    accepted = _option_names(module)
    unknown = sorted(set(options) - set(accepted)) if accepted is not None else []
    if unknown:
        raise SSDDeployError(
            f"runtime {name}: unknown option(s) {', '.join(unknown)}. Note: it takes {', '.join(accepted) or 'no options'}"
        )
    return module.open_runner


def _check_input_size(runner: Runner, input_size: tuple[int, int] | None) -> None:
    """SSDDeployError when the caller expects another input size than the model's."""
    if input_size is not None and tuple(input_size) != tuple(runner.metadata.input_size):
        raise SSDDeployError(
            f"{runner.path}: the model takes {tuple(runner.metadata.input_size)} (height, width) images, not {tuple(input_size)}. "
            "Note: re-export it at that size, or drop input_size (images are resized automatically)"
        )


def _option_names(module: ModuleType) -> list[str] | None:
    """The keyword options a runtime module's ``open_runner`` takes beyond path, device and
    precision: the fields of its ``OPTIONS`` dataclass where it has one, else its signature's
    keywords (None: any, checked by the runtime itself)."""
    if hasattr(module, "OPTIONS"):
        return [field.name for field in dataclasses.fields(module.OPTIONS)]
    parameters = inspect.signature(module.open_runner).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.name not in ("path", "device", "precision")]


__all__ = [
    "PRECISIONS",
    "RUNTIMES",
    "Availability",
    "Detector",
    "InputError",
    "Runner",
    "RuntimeSpec",
    "StageTimes",
    "available",
    "get_runtime",
    "load",
    "runtime_for_file",
]

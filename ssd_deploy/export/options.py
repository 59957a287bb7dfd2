"""What ``export_model`` is asked (:class:`ExportOptions`) and the checks made before any work."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ..calibration import Calibration, as_calibration
from ..devices import file_device
from ..errors import ExportError, SSDDeployError
from ..postprocess import PostprocessConfig
from .formats import FORMATS, get_format
from .int8 import CALIBRATION_METHODS, QUANTIZERS
from .onnx import DEFAULT_OPSET, MIN_OPSET, SIMPLIFIER

# What ``ExportOptions.precision`` may be (bf16 runs only from fp32 files: runtimes cast it).
EXPORT_PRECISIONS = ("fp32", "fp16", "int8")
@dataclass(frozen=True)
class ExportOptions:
    """What to export and how; the defaults are ``ssd-export``'s.

    Attributes:
        format: ``torchscript``, ``onnx``, ``pt2``, ``openvino`` or ``tensorrt`` (see :data:`ssd_deploy.export.FORMATS`).
        nms: padded detections out (True) or decoded boxes and scores (False).
        dynamic_batch: free batch dimension; otherwise the file takes exactly ``batch`` images.
        batch: the fixed batch size (and the example batch when dynamic).
        opset: ONNX opset (>= 17).
        simplify: simplify the ONNX graph with onnxslim (onnx, and the formats made from it:
            openvino, tensorrt); the metadata records it (``simplifier``).
        postprocess: NMS settings baked into the graph.
        precision: the network's arithmetic (:data:`EXPORT_PRECISIONS`): ``fp32``; ``fp16``
            (inputs, outputs, decoding and NMS stay float32); ``int8``: an ONNX quantised (see
            :mod:`ssd_deploy.export.int8`), or a TensorRT engine, calibrated on ``calibration``.
        verify: run the file on sample images and compare with PyTorch before writing it.
        verify_images: images for the check (default: generated scenes and a blank image).
        device: ``cpu`` or ``cuda``: where the export and the check run; ``pt2`` is compiled
            for it, ``tensorrt`` built on it (TorchScript and ONNX files run anywhere).
        calibration: the INT8 calibration images (folder and count).
        int8_quantizer: ``nncf`` (OpenVINO's NNCF), ``ort`` (ONNX Runtime) or ``auto`` (nncf
            when installed, else ort).
        int8_method: ONNX Runtime's calibration: ``minmax``, ``entropy`` or ``percentile``.
        int8_head: quantise the detection head too (the backbone only by default).
        opencv_dnn: an ONNX file OpenCV's DNN module runs: the products it misreads are guarded
            (:mod:`ssd_deploy.export.opencv_dnn`) and ``verify`` runs the file on OpenCV DNN too.
    """

    format: str = "onnx"
    nms: bool = True
    dynamic_batch: bool = False
    batch: int = 1
    opset: int = DEFAULT_OPSET
    simplify: bool = False
    postprocess: PostprocessConfig = PostprocessConfig()
    precision: str = "fp32"
    verify: bool = True
    verify_images: tuple[Path, ...] = ()
    device: str = "cpu"
    calibration: Calibration = Calibration()
    int8_quantizer: str = "auto"
    int8_method: str = "percentile"
    int8_head: bool = False
    opencv_dnn: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "calibration", as_calibration(self.calibration))



def check_options(options: ExportOptions, output: Path) -> None:
    """Refuse options that contradict each other or the output path, in one line each."""
    if options.batch < 1:
        raise SSDDeployError(f"--batch {options.batch}: expected 1 or more images")
    file_device(options.device, output)
    if "opset" in get_format(options.format).options and options.opset < MIN_OPSET:
        raise SSDDeployError(f"--opset {options.opset}: too old. Note: ssd-deploy exports ONNX opset {MIN_OPSET} or newer")
    suffixes = {get_format(options.format).suffix} | ({".pt"} if options.format == "torchscript" else set())
    if output.suffix.lower() not in suffixes:
        raise SSDDeployError(
            f"{output}: a {options.format} file should end in {' or '.join(sorted(suffixes))}, "
            "so that runtimes recognise it"
        )
    if options.precision not in EXPORT_PRECISIONS:
        raise SSDDeployError(f"precision {options.precision!r}: expected one of {', '.join(EXPORT_PRECISIONS)}")
    if options.precision == "int8":
        if options.format != "onnx" and not get_format(options.format).calibrates:
            raise SSDDeployError("--int8: INT8 files are ONNX (--format onnx) or TensorRT engines (--format tensorrt)")
        if options.calibration.folder is None:
            raise SSDDeployError("--int8 needs --calib FOLDER: images to calibrate the quantiser on (a dataset's images)")
        if options.int8_quantizer not in ("auto", *QUANTIZERS):
            raise SSDDeployError(f"--int8-quantizer {options.int8_quantizer!r}: expected auto, {', '.join(QUANTIZERS)}")
        if options.int8_method not in CALIBRATION_METHODS:
            raise SSDDeployError(f"--int8-method {options.int8_method!r}: expected one of {', '.join(CALIBRATION_METHODS)}")
    if options.opencv_dnn and (options.format != "onnx" or options.precision == "int8"):
        raise SSDDeployError(
            f"--opencv-dnn with --format {options.format} --precision {options.precision}: OpenCV DNN runs float ONNX files. "
            "Note: use --format onnx without --int8"
        )
    if output.exists() and output.is_dir():
        raise ExportError(output, "is a folder. Note: give a file name")


def check_usable(options: ExportOptions) -> None:
    """Refuse, in one line and before any work, a format (or ``--simplify``) this machine cannot write:
    an unknown format, a missing package, no device to build on."""
    export_format = get_format(options.format)
    package = export_format.package
    if package is not None and importlib.util.find_spec(package) is None:
        raise SSDDeployError(f"--format {options.format} needs the {package} package. Note: pip install {package}")
    problem = export_format.problem(options.device)
    if problem:
        raise SSDDeployError(f"--format {options.format}: {problem}")
    if options.simplify:
        if "simplify" not in export_format.options:
            simplified = ", ".join(name for name, other in FORMATS.items() if "simplify" in other.options)
            raise SSDDeployError(f"--simplify: {options.format} files hold no ONNX graph. Note: it applies to {simplified}")
        if importlib.util.find_spec(SIMPLIFIER) is None:
            raise SSDDeployError(f"--simplify needs the {SIMPLIFIER} package. Note: pip install 'ssd-deploy[simplify]'")

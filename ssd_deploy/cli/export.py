"""``ssd-export``: write a checkpoint as a self-contained TorchScript, ONNX or AOTInductor file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..calibration import DEFAULT_CALIBRATION_IMAGES, Calibration
from ..export import EXPORT_PRECISIONS, FORMATS, ExportOptions, export_model
from ..export.int8 import CALIBRATION_METHODS, QUANTIZERS
from ..export.onnx import DEFAULT_OPSET, MIN_OPSET
from ..export.verify import verification_images
from ..postprocess import PostprocessConfig
from ..devices import resolve_auto
from . import PRE_NMS_TOPK_HELP, add_device_flag, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssd-export",
        description="Export a detector with box decoding and NMS inside the graph. The file takes "
        "float32 images [N, 3, H, W] (RGB in [0, 1]) and returns num_detections [N], boxes [N, K, 4] "
        "(xyxy in [0, 1]), scores [N, K] and labels [N, K]; class names, input size and thresholds "
        "are stored in it. It is checked against PyTorch before it is written (atomically).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--model",
        "--checkpoint",
        dest="model",
        type=Path,
        required=True,
        help="ssd-deploy checkpoint (from ssd-train) or a torchvision ssd300_vgg16 / "
        "ssdlite320_mobilenet_v3_large state dict; those two names alone find torchvision's COCO weights in the torch hub "
        "cache (written to NAME.<suffix> here)",
    )
    parser.add_argument(
        "--format",
        default="onnx",
        choices=list(FORMATS),
        help="; ".join(f"{name}: {fmt.description}" for name, fmt in FORMATS.items()),
    )
    parser.add_argument(
        "--output", "--out", dest="output", type=Path, help="file to write; default: beside the checkpoint, <stem>[-fp16|-int8][-raw].<ts|onnx|pt2|xml|engine>"
    )
    parser.add_argument(
        "--nms",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="NMS in the graph (padded detections out); --no-nms outputs decoded boxes [N, P, 4] and "
        "softmax scores [N, P, C] for programs that run their own NMS",
    )
    _graph_flags(parser)
    _int8_flags(parser)
    _verify_flags(parser)
    return parser


def _graph_flags(parser: argparse.ArgumentParser) -> None:
    defaults = PostprocessConfig()
    parser.add_argument("--dynamic-batch", action="store_true", help="free batch dimension; without it the file takes exactly --batch images")
    parser.add_argument("--batch", type=int, default=1, help="batch size of a fixed-batch file")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (>= {MIN_OPSET}); onnx, openvino and tensorrt")
    parser.add_argument(
        "--simplify", action="store_true",
        help="simplify the ONNX graph with onnxslim before writing (onnx, openvino, tensorrt; needs the onnxslim package); "
        "the metadata says so, and --verify checks the simplified file",
    )
    parser.add_argument(
        "--opencv-dnn", action="store_true",
        help="an ONNX file OpenCV 5's DNN module (cv2.dnn, cv::dnn) runs correctly (SSDLite-MobileNetV3 needs it); also verified there",
    )
    parser.add_argument("--score", type=float, default=defaults.score_threshold, help="score threshold in the graph")
    parser.add_argument("--iou", type=float, default=defaults.iou_threshold, help="IoU threshold of the class-aware NMS")
    parser.add_argument("--max-det", type=int, default=defaults.max_detections, help="K: detections kept per image")
    parser.add_argument("--topk", type=int, default=defaults.topk_candidates, help="candidates per class entering NMS")
    parser.add_argument("--pre-nms-topk", type=int, default=defaults.pre_nms_topk, help=PRE_NMS_TOPK_HELP)
    _precision_flags(parser)


def _precision_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("precision of the network (inputs, outputs, decoding and NMS stay float32)")
    precision = group.add_mutually_exclusive_group()
    precision.add_argument("--precision", choices=EXPORT_PRECISIONS, default="fp32", help="the network's arithmetic")
    precision.add_argument(
        "--fp16", "--half", dest="precision", action="store_const", const="fp16", default=argparse.SUPPRESS, help="same as --precision fp16"
    )
    precision.add_argument(
        "--int8", dest="precision", action="store_const", const="int8", default=argparse.SUPPRESS,
        help="same as --precision int8: quantise the network (QDQ ONNX; a TensorRT engine: TensorRT's calibration), calibrated on --calib",
    )


def _int8_flags(parser: argparse.ArgumentParser) -> None:
    int8 = parser.add_argument_group("INT8 post-training quantisation (ONNX; runs on ONNX Runtime and OpenVINO CPUs)")
    int8.add_argument("--calib", type=Path, help="folder of calibration images (searched recursively: a dataset's image folder)")
    int8.add_argument("--calib-images", type=int, default=DEFAULT_CALIBRATION_IMAGES, help="at most this many calibration images, spread over the folder")
    int8.add_argument(
        "--int8-quantizer", default="auto", choices=["auto", *QUANTIZERS], help="nncf: OpenVINO's NNCF; ort: ONNX Runtime's quantize_static; auto: nncf when installed"
    )
    int8.add_argument("--int8-method", default="percentile", choices=CALIBRATION_METHODS, help="ONNX Runtime's calibration method (ort quantizer only)")
    int8.add_argument("--int8-head", action="store_true", help="quantise the detection head too (default: backbone only; the head stays float for accuracy)")


def _verify_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the exported file on sample images and compare with PyTorch before writing it "
        "(INT8: both must find at least 85%% of each other's detections scoring above 0.3)",
    )
    parser.add_argument(
        "--verify-images", type=Path, help="image file or folder for --verify; default: generated shapes scenes"
    )
    add_device_flag(
        parser, "where export and verification run (pt2 is compiled for it, a tensorrt engine built on it): cpu, cuda, cuda:N; auto: CUDA, "
        "when this machine has it, for the files made for a device (pt2 and fp16), else the CPU (TorchScript and ONNX files run "
        "anywhere); always CUDA for tensorrt",
    )
    parser.add_argument("--json", action="store_true", help="print the result (path, metadata, verification) as JSON")


def _device(args: argparse.Namespace) -> str:
    """``--device``, with ``auto`` resolved: a device only where the file depends on it (TensorRT
    builds only on CUDA, so ``auto`` is ``cuda`` there, and a machine without it is told so)."""
    if str(args.device).lower() == "auto" and args.format == "tensorrt":
        return "cuda"
    if str(args.device).lower() == "auto" and args.format != "pt2" and args.precision != "fp16":
        return "cpu"
    return resolve_auto(args.device)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = ExportOptions(
        format=args.format,
        nms=args.nms,
        dynamic_batch=args.dynamic_batch,
        batch=args.batch,
        opset=args.opset,
        simplify=args.simplify,
        postprocess=PostprocessConfig(
            score_threshold=args.score, iou_threshold=args.iou, max_detections=args.max_det, topk_candidates=args.topk,
            pre_nms_topk=args.pre_nms_topk,
        ),
        precision=args.precision,
        verify=args.verify,
        verify_images=tuple(verification_images(args.verify_images)),
        device=_device(args),
        calibration=Calibration(args.calib, args.calib_images),
        int8_quantizer=args.int8_quantizer,
        int8_method=args.int8_method,
        int8_head=args.int8_head,
        opencv_dnn=args.opencv_dnn,
    )
    print(f"exporting {args.model} to {args.format}...", file=sys.stderr)
    result = export_model(args.model, args.output, options)
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(result.path),
                    "metadata": {key: json.loads(value) for key, value in result.metadata.to_strings().items()},
                    "verification": result.verification.to_dict() if result.verification else None,
                    "export_seconds": result.export_seconds,
                    "verify_seconds": result.verify_seconds,
                },
                indent=1,
            )
        )
        return 1 if result.unreadable_images else 0
    meta = result.metadata
    size = result.path.stat().st_size / 2**20
    print(f"wrote {result.path} ({size:.1f} MiB, {result.export_seconds:.1f} s)")
    print(
        f"  {meta.arch}, {meta.num_classes - 1} classes, input {meta.input_size[0]}x{meta.input_size[1]}, "
        f"batch {meta.batch or 'dynamic'}, {meta.precision}, outputs {', '.join(meta.output_names)}"
    )
    for note in result.notes:
        print(f"  {note}")
    if result.verification is not None:
        print(f"  verified against PyTorch: {result.verification.summary()}")
    else:
        print("  not verified (--no-verify)")
    return 1 if result.unreadable_images else 0  # written, but without images the user gave


def entry_point() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    entry_point()

"""``ssd-detect``: run a detector on images on any runtime; write annotated pictures and JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..checkpoint import default_class_names
from ..data.shapes import CLASS_NAMES as SHAPE_NAMES
from ..draw import draw_detections
from ..errors import ImageReadError, SSDDeployError
from ..files import atomic_write
from ..images import read_image, write_image
from ..models import create_model, list_architectures
from ..models.hub import resolve_model
from ..pipeline import DEFAULT_BATCH_SIZE, Detections
from ..postprocess import DEFAULT_PRE_NMS_TOPK, PostprocessConfig
from ..runtimes import PRECISIONS, RUNTIMES, Detector, available, load, runtime_for_file
from ..runtimes.pytorch import PyTorchRunner
from ..sources import VIDEO_SUFFIXES, Frame, Source, VideoReader, VideoReadError, resolve_sources
from ..devices import resolve_auto
from . import DEVICE_HELP, PRE_NMS_TOPK_HELP, add_device_flag, add_progress_flag, run_cli
from .outputs import check_output_folder, output_folder, result_names

DEFAULT_SCORE = 0.3
OUTPUT_SUFFIXES = (".jpg", ".json", ".mp4", ".jsonl")  # per image: .jpg, .json; per video, camera or stream: .mp4, .jsonl


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssd-detect",
        description="Detect objects in images, videos, cameras and streams with a checkpoint or an exported model, "
        "on any runtime. Writes to --out, per image, the picture with boxes drawn (<name>.jpg) and the detections "
        "as JSON (<name>.json); per video, camera or stream, the annotated video (<name>.mp4) and one JSON line per "
        "frame (<name>.jsonl); and prints a one-line summary of each. <name> is the input's name without its suffix, "
        "or with it when two inputs share it (pic.tiff.jpg, pic.webp.jpg); a bad image or video gets one error line, "
        "the other inputs are still processed, and the exit code is 1. Ctrl-C stops with what was done so far "
        "written (exit code 130). --list-runtimes shows which runtimes work here.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="SOURCE",
        help="image or video files (" + " ".join(VIDEO_SUFFIXES) + "), folders (searched recursively, as the "
        "calibration folder is, unless --no-recursive), glob patterns in quotes ('data/**/*.jpg'), camera device "
        "indices (0), stream URLs (rtsp://, http(s)://, file://)",
    )
    parser.add_argument("--list-runtimes", action="store_true", help="print every runtime, whether it is usable here and why not, then exit")
    source = parser.add_argument_group("model (one of --model or --arch)")
    source.add_argument(
        "--model",
        "--checkpoint",
        dest="model",
        type=Path,
        help="a checkpoint (from ssd-train, or a torchvision ssd300_vgg16 / ssdlite320_mobilenet_v3_large state "
        "dict) or an exported file (.ts, .onnx, .pt2, TensorRT .engine, OpenVINO .xml); the names ssd300_vgg16 / ssdlite320_mobilenet_v3_large alone find torchvision's COCO weights in the torch hub cache",
    )
    source.add_argument(
        "--arch",
        metavar="ARCH",
        help=f"a preset ({', '.join(list_architectures())}) or any torchvision classification network (resnet34, ...); "
        "with a checkpoint: the architecture it must be for; alone: use an UNTRAINED model with "
        "random weights (to try the pipeline; its detections are meaningless)",
    )
    source.add_argument("--num-classes", type=int, default=6, help="classes incl. background for an untrained --arch model (6: the shapes dataset's names)")
    source.add_argument("--seed", type=int, default=0, help="random seed for an untrained --arch model")
    runtime = parser.add_argument_group("runtime")
    runtime.add_argument("--runtime", default="auto", choices=["auto", *RUNTIMES], help="auto: picked from the model file's kind")
    add_device_flag(runtime, DEVICE_HELP + "; OpenVINO also gpu, npu (auto: cpu)")
    runtime.add_argument(
        "--precision", default="auto", choices=["auto", *PRECISIONS], help="network arithmetic where the runtime and file support it; auto: the file's (fp32 for a checkpoint)"
    )
    thresholds = parser.add_argument_group("post-processing (exported files have NMS built in: only a higher --score applies)")
    thresholds.add_argument(
        "--score", type=float, default=None, help=f"minimum score of a reported detection (default {DEFAULT_SCORE}, or an exported model's own threshold if higher)"
    )
    thresholds.add_argument("--iou", type=float, default=0.45, help="IoU threshold of the class-aware NMS (checkpoints only)")
    thresholds.add_argument("--max-det", type=int, default=PostprocessConfig().max_detections, help="maximum detections per image (checkpoints only)")
    thresholds.add_argument("--pre-nms-topk", type=int, default=DEFAULT_PRE_NMS_TOPK, help=PRE_NMS_TOPK_HELP + " (checkpoints only)")
    parser.add_argument("--out", "--output", dest="out", type=Path, default=Path("runs/detect"), help="output folder (never an input is overwritten)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="images or video frames per network call (a fixed-batch file uses its own)")
    parser.add_argument("--classes", nargs="+", metavar="NAME_OR_LABEL", help="report only these classes: names as the model has them, or labels 1 ... C-1")
    parser.add_argument("--vid-stride", type=int, default=1, metavar="N", help="videos, cameras, streams: detect in every N-th frame only")
    parser.add_argument("--recursive", action=argparse.BooleanOptionalAction, default=True, help="search folders through their subfolders")
    add_progress_flag(parser, "progress bars (shown only when stderr is a terminal)")
    return parser


def print_runtimes() -> None:
    """The table of ``ssd_deploy.runtimes.available()``."""
    rows = [("runtime", "usable", "version", "devices / providers", "notes")]
    for name, status in available().items():
        rows.append((name, "yes" if status.usable else "no", status.version.split("-")[0] or "-", ", ".join(status.devices) or "-", status.reason or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])


def _detector(args: argparse.Namespace) -> Detector:
    postprocess = PostprocessConfig(score_threshold=DEFAULT_SCORE if args.score is None else args.score, iou_threshold=args.iou, max_detections=args.max_det, pre_nms_topk=args.pre_nms_topk)
    if args.model is None:
        if args.arch is None:
            raise SSDDeployError("ssd-detect: give --model FILE, or --arch NAME for an untrained model")
        torch.manual_seed(args.seed)
        print(f"note: --arch {args.arch} without --model: the model is untrained (random weights)", file=sys.stderr)
        names = list(SHAPE_NAMES) if args.num_classes == len(SHAPE_NAMES) else default_class_names(args.num_classes)
        model = create_model(args.arch, num_classes=args.num_classes)
        runner = PyTorchRunner(model, names, device=resolve_auto(args.device), precision=args.precision, postprocess=postprocess)
        return Detector(runner, max_batch=args.batch_size)
    args.model = resolve_model(args.model)
    name = runtime_for_file(args.model) if args.runtime == "auto" else args.runtime
    options = {"postprocess": postprocess, "expected_arch": args.arch} if name == "pytorch" else {}
    detector = load(args.model, name, resolve_auto(args.device, name), args.precision, max_batch=args.batch_size, **options)
    try:
        detector.set_min_score(max(DEFAULT_SCORE, detector.metadata.score_threshold) if args.score is None else args.score)
    except SSDDeployError:
        detector.close()
        raise
    if args.arch is not None and detector.metadata.arch != args.arch:
        detector.close()
        raise SSDDeployError(f"{args.model}: a model of architecture {detector.metadata.arch!r}, not {args.arch!r}")
    for note in detector.runner.notes:  # e.g. a precision this CPU runs in fp32
        print(f"note: {note}", file=sys.stderr)
    return detector


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_runtimes:
        print_runtimes()
        return 0
    if not args.inputs:
        raise SSDDeployError("ssd-detect: give images, videos, folders, patterns, cameras or streams to detect in (or --list-runtimes)")
    if args.vid_stride < 1:
        raise SSDDeployError(f"--vid-stride {args.vid_stride}: expected 1 or more")
    sources, problems = resolve_sources(args.inputs, recursive=args.recursive)
    if not sources:
        raise SSDDeployError(f"{', '.join(args.inputs)}: no images or videos found")
    check_output_folder(args.out)
    names = result_names([source.name_path() for source in sources], args.out, OUTPUT_SUFFIXES)
    detector = _detector(args)
    with detector:
        run = _Run(detector, args.out, class_filter(args.classes, detector.class_names), args.vid_stride, not args.progress or not sys.stderr.isatty())
        output_folder(args.out)
        for problem in problems:
            tqdm.write(f"error: {problem}", file=sys.stderr)
        images = [(Path(s.location), name) for s, name in zip(sources, names) if s.is_image]
        try:
            failures = len(problems) + _detect_images(run, images)
            failures += sum(_detect_video(run, s, name) for s, name in zip(sources, names) if not s.is_image)
        except KeyboardInterrupt:  # the results written so far are complete (see VideoResults)
            print("interrupted", file=sys.stderr)
            return 130
    if failures:
        kind = "images" if len(images) == len(sources) and not problems else "inputs"
        print(f"{failures} of {len(sources) + len(problems)} {kind} failed", file=sys.stderr)
    return 1 if failures else 0


@dataclass(frozen=True)
class _Run:
    """What every source of one call is processed with (``no_bar``: no progress bars)."""

    detector: Detector
    out: Path
    classes: frozenset[int] | None
    vid_stride: int
    no_bar: bool


def class_filter(classes: list[str] | None, class_names: list[str]) -> frozenset[int] | None:
    """The labels ``--classes`` keeps (names as in ``class_names``, or labels 1 ... C-1), None for all.

    Raises:
        SSDDeployError: a name the model does not have or a label out of range (one line listing the names).
    """
    if not classes:
        return None
    folded = {name.casefold(): label for label, name in enumerate(class_names) if label > 0}  # 0 is background
    keep = set()
    for item in classes:
        label = int(item) if item.isdigit() else folded.get(item.casefold())
        if label is None or not 0 < label < len(class_names):
            known = ", ".join(f"{label} {name}" for label, name in enumerate(class_names) if label > 0)
            raise SSDDeployError(f"--classes {item}: not a class of this model. Note: its classes are {known}")
        keep.add(label)
    return frozenset(keep)


def _kept(detections: Detections, classes: frozenset[int] | None) -> Detections:
    """``detections`` of the ``classes`` labels only (all when None)."""
    if classes is None:
        return detections
    keep = np.isin(detections.labels, list(classes))
    return Detections(detections.boxes[keep], detections.scores[keep], detections.labels[keep], detections.class_names)


def _detect_images(run: _Run, images: list[tuple[Path, str]]) -> int:
    """Detect in each image file, writing ``<out>/<name>.jpg`` and ``.json``; the number that failed."""
    failures = 0
    size = run.detector.batch_size
    with tqdm(total=len(images), unit="img", desc="images", disable=run.no_bar or not images, dynamic_ncols=True) as bar:
        for start in range(0, len(images), size):
            loaded = []
            for path, name in images[start : start + size]:
                try:
                    loaded.append((path, name, read_image(path)))
                except ImageReadError as error:
                    tqdm.write(f"error: {error}", file=sys.stderr)
                    failures += 1
            if loaded:
                for (path, name, image), detections in zip(loaded, run.detector.detect([image for _, _, image in loaded])):
                    _write_result(run.out / name, path, image, _kept(detections, run.classes))
            bar.update(len(images[start : start + size]))
    return failures


def _write_result(stem: Path, path: Path, image, detections) -> None:
    """Write ``<stem>.jpg`` (the picture with boxes drawn) and ``<stem>.json`` for the image at ``path``."""
    picture_path, record_path = (stem.with_name(stem.name + suffix) for suffix in (".jpg", ".json"))  # stem may hold a dot
    write_image(picture_path, draw_detections(image, detections))
    record = {"image": str(path), "width": image.shape[1], "height": image.shape[0], **detections.to_dict()}
    atomic_write(record_path, lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    counts = Counter(detections.names())
    summary = ", ".join(f"{n} {name}" for name, n in counts.most_common()) or "nothing"
    tqdm.write(f"{path}: {len(detections)} detections ({summary}) -> {picture_path}", file=sys.stdout)


def _detect_video(run: _Run, source: Source, name: str) -> int:
    """Detect in every ``--vid-stride``-th frame of a video file, camera or stream, writing
    ``<out>/<name>.mp4`` and ``<out>/<name>.jsonl``; 1 if it failed (printed as one line), else 0.

    Frames go through the detector in batches of its batch size. On Ctrl-C (KeyboardInterrupt,
    raised again) the frames processed so far are kept: both files are closed and renamed."""
    try:
        reader = VideoReader(source, run.vid_stride)
    except VideoReadError as error:
        tqdm.write(f"error: {error}", file=sys.stderr)
        return 1
    total = -(-reader.frame_count // run.vid_stride) if reader.frame_count else None  # frames decoded
    results = VideoResults(run.out / name, reader.fps / run.vid_stride)  # played at the source's speed
    try:
        with reader, results, tqdm(total=total, unit="frame", desc=name, disable=run.no_bar, dynamic_ncols=True) as bar:
            for batch in reader.batches(run.detector.batch_size):
                for frame, detections in zip(batch, run.detector.detect([frame.image for frame in batch])):
                    results.add(frame, _kept(detections, run.classes))
                bar.update(len(batch))
    finally:  # also after Ctrl-C: say what was written
        if reader.failure is not None:
            tqdm.write(f"error: {reader.failure}", file=sys.stderr)
        if results.frames:
            tqdm.write(f"{source.location}: {results.frames} frames, {results.detections} detections -> {results.video_path}", file=sys.stdout)
    return 0 if reader.failure is None else 1


class VideoResults:
    """The results of one video source: ``<stem>.mp4`` (the frames with boxes drawn, mp4v) and
    ``<stem>.jsonl`` (one JSON object per processed frame: ``frame`` index in the source, ``time_s``
    in seconds, ``width``, ``height`` and ``detections`` as in the per-image JSON).

    Both are written under temporary names in the same folder and renamed when the context exits
    normally or by KeyboardInterrupt (the frames so far, the video playable); on any other error
    they are deleted. Nothing is written for a source that gave no frame.
    """

    def __init__(self, stem: Path, fps: float) -> None:
        self.video_path, self.lines_path = (stem.with_name(stem.name + suffix) for suffix in (".mp4", ".jsonl"))
        # VideoWriter picks the container by the suffix: keep .mp4 last.
        self._tmp_video, self._tmp_lines = (stem.with_name(f".{stem.name}.tmp-{os.getpid()}{suffix}") for suffix in (".mp4", ".jsonl"))
        self.fps = fps
        self.frames = self.detections = 0
        self._writer: cv2.VideoWriter | None = None
        self._lines: TextIO | None = None
        self._size = (0, 0)

    def add(self, frame: Frame, detections: Detections) -> None:
        """Append ``frame`` with ``detections`` drawn to the video, and its JSON line."""
        image = draw_detections(frame.image, detections)
        height, width = frame.image.shape[:2]
        if self._writer is None:
            self._size = (width, height)
            self._writer = cv2.VideoWriter(str(self._tmp_video), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
            if not self._writer.isOpened():
                raise SSDDeployError(f"{self.video_path}: OpenCV cannot write an mp4v video (no FFmpeg video writer in this OpenCV build?)")
            self._lines = self._tmp_lines.open("w", encoding="utf-8")
        if (width, height) != self._size:  # a stream changed resolution: the writer would drop the frame silently
            image = cv2.resize(image, self._size)
        self._writer.write(image)
        record = {"frame": frame.index, "time_s": frame.time_s, "width": width, "height": height, **detections.to_dict()}
        self._lines.write(json.dumps(record) + "\n")
        self._lines.flush()  # whole lines only, whenever the run stops
        self.frames += 1
        self.detections += len(detections)

    def close(self, keep: bool) -> None:
        """Close both files; give them their names if ``keep`` and a frame was written, else delete them."""
        if self._writer is not None:
            self._writer.release()  # writes the mp4 index: the file plays
        if self._lines is not None:
            self._lines.close()
        for tmp, final in ((self._tmp_video, self.video_path), (self._tmp_lines, self.lines_path)):
            if keep and self.frames:
                os.replace(tmp, final)
            else:
                tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoResults:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self.close(keep=kind is None or issubclass(kind, KeyboardInterrupt))


def entry_point() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    entry_point()

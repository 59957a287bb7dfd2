"""The load-time check of a dataset: every image file and every box, without decoding images.

Each image file is opened once: its first and last bytes show whether it is empty or truncated
(the checks ``ssd_deploy.images.read_image`` makes), and its header gives its size and EXIF
orientation (only the header is read; decoding every image would take minutes on a large
dataset). Boxes are then checked in pixels of that size, as ``read_image`` will return it. Problems are recorded, never raised, so that one pass lists all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ImageReadError
from ..image_header import TIFF_SIGNATURES, declared_size, exif_orientation, oriented, size_problem
from ..images import missing_file_problem, read_image, truncation_problem
from .labels import label_index
from .records import DataReport, ImageRecord, Problem, RawAnnotation

_HEAD, _TAIL = 16, 1024  # more than truncation_problem inspects: the file signature and the end marker


class _BadImage(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail


def probe_image(path: Path) -> tuple[int, int]:
    """The (height, width) of an image file as ``read_image`` returns it (EXIF orientation
    applied), checking that it exists, is readable, non-empty, not truncated and not too large.

    Only the header is read, unless neither it nor Pillow tells the size: then OpenCV decodes it.

    Raises:
        _BadImage: with kind "missing", "empty", "truncated", "too large" or "unreadable".
    """
    if not path.is_file():
        raise _BadImage("missing", missing_file_problem(path))
    try:
        size = _probe_header(path)
    except OSError as error:  # e.g. no read permission
        raise _BadImage("unreadable", f"cannot read it ({error.strerror or error})") from None
    if size is not None:
        return size
    try:
        return read_image(path).shape[:2]
    except ImageReadError as error:
        raise _BadImage("unreadable", error.problem) from None


def _probe_header(path: Path) -> tuple[int, int] | None:
    """(height, width) from the file's header, None if the header does not tell; see probe_image."""
    with open(path, "rb") as file:
        size = file.seek(0, 2)
        if size == 0:
            raise _BadImage("empty", "empty file")
        file.seek(0)
        if size <= _HEAD + _TAIL:
            data = file.read()
        else:  # the start and the end, which is all that truncation_problem looks at
            data = file.read(_HEAD)
            file.seek(size - _TAIL)
            data += file.read()
        truncated = truncation_problem(data)
        if truncated:
            raise _BadImage("truncated", truncated)
        file.seek(0)
        stored = declared_size(file)
        if stored is None:
            return None
        problem = size_problem(*stored)
        if problem:
            raise _BadImage("too large", problem)
        if data[:4] in TIFF_SIGNATURES:  # decoded for its size: which way round Pillow gives it varies
            return None
        file.seek(0)
        width, height = oriented(*stored, exif_orientation(file))
        return height, width


def scan(
    raw: Sequence[RawAnnotation], class_names: Sequence[str], report: DataReport, keep_difficult: bool = True
) -> list[ImageRecord]:
    """Check raw annotations against their image files and the label map.

    A bad image file drops the image; a bad box (unknown label, non-finite, inverted, zero-area,
    entirely outside) drops the box; both are appended to ``report.problems``. Boxes partly
    outside are clipped. Images left without boxes are kept.

    Args:
        class_names: the label map, background at 0.
        keep_difficult: False leaves difficult boxes out (counted in the report).

    Returns:
        The records of the usable images, ``image_id`` defaulting to the record's index.
    """
    labels_of = label_index(class_names)
    records: list[ImageRecord] = []
    for annotation in raw:
        try:
            height, width = probe_image(annotation.image_path)
        except _BadImage as bad:
            report.problems.append(Problem(str(annotation.image_path), bad.kind, bad.detail))
            continue
        stated = (annotation.height, annotation.width)
        if None not in stated and stated != (height, width):
            detail = f"the annotation says {stated[1]}x{stated[0]} (width x height), the image is {width}x{height}"
            report.problems.append(Problem(str(annotation.image_path), "size mismatch", detail))
            continue
        image_id = annotation.image_id if annotation.image_id is not None else len(records)
        record = _check_boxes(annotation, image_id, height, width, labels_of, report)
        if not keep_difficult:
            report.difficult_dropped += int(record.difficult.sum())
            keep = ~record.difficult
            record.boxes, record.labels, record.difficult = record.boxes[keep], record.labels[keep], record.difficult[keep]
        report.images += 1
        report.boxes += len(record.boxes)
        report.images_without_objects += len(record.boxes) == 0
        records.append(record)
    return records


def _check_boxes(
    annotation: RawAnnotation, image_id: int, height: int, width: int, labels_of: dict[str, int], report: DataReport
) -> ImageRecord:
    """The record of one image with a good file: its good boxes, clipped; bad ones go to the report."""
    boxes = np.asarray(annotation.boxes, dtype=np.float64).reshape(-1, 4)
    if annotation.fractional:
        boxes = boxes * np.array([width, height, width, height], dtype=np.float64)
    kept = []
    for i, (box, name) in enumerate(zip(boxes, annotation.names)):
        kind = _box_problem(box, name, height, width, labels_of)
        if kind:
            where = f"{annotation.box_ids[i]} ({name}) box {_format_box(box)}"
            detail = f"{where}: {_DESCRIPTIONS[kind]}" + (f" ({width}x{height})" if kind == "outside" else "")
            report.problems.append(Problem(annotation.source, kind, detail))
        else:
            kept.append(i)
    boxes = boxes[kept]
    clipped = np.clip(boxes, 0, [width, height, width, height])
    report.clipped_boxes += int((clipped != boxes).any(axis=1).sum())
    return ImageRecord(
        path=annotation.image_path,
        boxes=clipped.astype(np.float32).reshape(-1, 4),
        labels=np.array([labels_of[annotation.names[i]] for i in kept], dtype=np.int64),
        difficult=np.asarray(annotation.difficult, dtype=bool)[kept].reshape(-1),
        image_id=image_id,
        width=width,
        height=height,
    )


_DESCRIPTIONS = {
    "unknown label": "class not in the label map",
    "not finite": "a coordinate is not a finite number",
    "inverted": "inverted coordinates (x2 < x1 or y2 < y1)",
    "zero-area": "zero area",
    "outside": "entirely outside the image",
}


def _box_problem(box: np.ndarray, name: str, height: int, width: int, labels_of: dict[str, int]) -> str | None:
    """The first problem of one box (xyxy pixels), in the order of BOX_PROBLEMS, or None."""
    x1, y1, x2, y2 = box
    if name not in labels_of:
        return "unknown label"
    if not np.isfinite(box).all():
        return "not finite"
    if x2 < x1 or y2 < y1:
        return "inverted"
    if x2 == x1 or y2 == y1:
        return "zero-area"
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        return "outside"
    return None


def _format_box(box: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"

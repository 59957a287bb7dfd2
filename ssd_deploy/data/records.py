"""What a dataset holds after loading: one ``ImageRecord`` per usable image, and a ``DataReport``
of what was clipped, skipped or found empty on the way.

Format readers (VOC, COCO, CSV) produce ``RawAnnotation``s: boxes as the file gives them, with
class *names*. ``scan.py`` checks them against the image files and the label map and turns them
into ``ImageRecord``s, recording every ``Problem`` in the report.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BOX_PROBLEMS = ("unknown label", "not finite", "inverted", "zero-area", "outside")
"""Kinds of bad box, in the order they are checked (a box gets the first that applies)."""
IMAGE_PROBLEMS = ("missing", "empty", "truncated", "too large", "unreadable", "size mismatch", "malformed annotation")
"""Kinds of bad image file or annotation file. Each drops the whole image with its boxes."""


@dataclass
class ImageRecord:
    """One usable image and its objects, checked at load time.

    Attributes:
        path: the image file.
        boxes: float32 [G, 4] xyxy in pixels of the image (continuous coordinates: a box covering
            pixel columns 0..9 is x1=0, x2=10), clipped to the image, positive area. G may be 0.
        labels: int64 [G], 1 .. C-1 (C, the number of class names, includes the background).
        difficult: bool [G] (False where the format has no such flag).
        image_id: COCO's image id, else the record's index in the dataset.
        width, height: the image size in pixels (from the annotation or the file's header).
    """

    path: Path
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    image_id: int
    width: int | None = None
    height: int | None = None

    def target(self, orig_size: tuple[int, int]) -> dict:
        """The sample's target dict: boxes, labels, difficult (copies), image_id, path, and
        ``orig_size`` = (height, width) of the image as read."""
        return {
            "boxes": self.boxes.copy(),
            "labels": self.labels.copy(),
            "difficult": self.difficult.copy(),
            "image_id": self.image_id,
            "path": str(self.path),
            "orig_size": (int(orig_size[0]), int(orig_size[1])),
        }


@dataclass
class RawAnnotation:
    """One image's objects as a format reader found them, before any check.

    Attributes:
        image_path: where the image should be.
        source: the file to name in messages about these boxes (a VOC XML file, or the image).
        boxes: float64 [G, 4] xyxy, in pixels, or in fractions of the image size if ``fractional``.
        names: G class names (VOC names, COCO category names, Open Images display names or MIDs).
        difficult: bool [G].
        box_ids: G short labels for messages ("object 2", "annotation 17", "row 40").
        image_id: COCO's image id, or None (the record's index is used).
        width, height: the size the annotation states, or None if it gives none.
        fractional: boxes are fractions of the image's width and height (Open Images CSV).
    """

    image_path: Path
    source: str
    boxes: np.ndarray
    names: list[str]
    difficult: np.ndarray
    box_ids: list[str]
    image_id: int | None = None
    width: int | None = None
    height: int | None = None
    fractional: bool = False


@dataclass(frozen=True)
class Problem:
    """One bad box or image: ``kind`` is one of BOX_PROBLEMS or IMAGE_PROBLEMS."""

    source: str
    kind: str
    detail: str

    @property
    def is_image(self) -> bool:
        return self.kind in IMAGE_PROBLEMS

    def __str__(self) -> str:
        return f"{self.source}: {self.detail}"


@dataclass
class DataReport:
    """Counts of what loading (and reading) a dataset found.

    Attributes:
        images, boxes: kept images and boxes.
        clipped_boxes: boxes partly outside their image, clipped to it (kept).
        images_without_objects: kept images with no boxes (valid samples: all background).
        difficult_dropped: difficult boxes left out because ``keep_difficult=False``.
        problems: every bad box or image found at load time (dropped when ``skip_bad``).
        read_failures: images that passed the load-time scan but failed to decode when read by
            ``DetectionDataset.__getitem__`` (in this process: DataLoader workers keep their own).
    """

    images: int = 0
    boxes: int = 0
    clipped_boxes: int = 0
    images_without_objects: int = 0
    difficult_dropped: int = 0
    problems: list[Problem] = field(default_factory=list)
    read_failures: list[str] = field(default_factory=list)

    def skipped_boxes(self) -> Counter:
        """Bad boxes by kind."""
        return Counter(p.kind for p in self.problems if not p.is_image)

    def skipped_images(self) -> Counter:
        """Bad image files by kind."""
        return Counter(p.kind for p in self.problems if p.is_image)

    def summary(self) -> str:
        """What was unusual, in one line, e.g. ``"skipped 2 boxes (1 zero-area, 1 inverted), 1 image
        (truncated); 3 boxes clipped; 4 images without objects"``; parts that are zero are left
        out, so a clean dataset gives ``""``."""
        parts = []
        skipped = [_breakdown(self.skipped_boxes(), "box"), _breakdown(self.skipped_images(), "image")]
        if any(skipped):
            parts.append("skipped " + ", ".join(s for s in skipped if s))
        if self.clipped_boxes:
            parts.append(f"{plural(self.clipped_boxes, 'box')} clipped")
        if self.difficult_dropped:
            parts.append(f"{plural(self.difficult_dropped, 'difficult box', 'difficult boxes')} left out")
        if self.images_without_objects:
            parts.append(f"{plural(self.images_without_objects, 'image')} without objects")
        if self.read_failures:
            parts.append(f"{plural(len(self.read_failures), 'image')} failed to decode when read (skipped)")
        return "; ".join(parts)


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    """``"1 box"``, ``"2 boxes"``."""
    return f"{n} {singular if n == 1 else plural_form or singular + ('es' if singular.endswith('x') else 's')}"


def _breakdown(counts: Counter, noun: str) -> str:
    total = sum(counts.values())
    if not total:
        return ""
    return f"{plural(total, noun)} ({', '.join(f'{n} {kind}' for kind, n in counts.most_common())})"

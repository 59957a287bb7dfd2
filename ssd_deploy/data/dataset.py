"""``load_dataset``: a VOC, COCO or Open Images CSV dataset, checked, as a torch ``Dataset``.

    annotation files ─ read_voc / read_coco / read_open_images   (boxes as written, class names)
        └─ scan: each image file's header (exists, not truncated, size) and each box, no decoding
             └─ problems? raise DatasetError listing them, or (skip_bad) drop them with a warning
                  └─ DetectionDataset[i] ─ read_image ─ (BGR image, target) ─ transform
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Sequence

from torch.utils.data import Dataset

from ..errors import DatasetError, ImageReadError
from ..images import read_image
from ..lookup import lookup
from .coco import read_coco
from .labels import with_background
from .openimages import read_open_images
from .records import DataReport, ImageRecord, Problem, RawAnnotation, plural
from .scan import scan
from .voc import read_voc

logger = logging.getLogger("ssd_deploy.data")


class DetectionDataset(Dataset):
    """Checked image records; item i is ``(image, target)``, or ``transform(image, target)``.

    image: BGR uint8 H x W x 3. target: {"boxes": float32 [G, 4] xyxy pixels, "labels": int64 [G]
    (1 .. C-1), "difficult": bool [G], "image_id": int, "path": str, "orig_size": (height, width)}.

    An image that passed the load-time scan but fails to decode (corrupt inside, or changed
    since) does not stop an epoch: the first time, a warning names it and ``report.read_failures``
    counts it; from then on item i is the next readable record. DataLoader workers each hold a
    copy of the dataset, so there each worker warns and counts in its own copy.

    Attributes:
        records: the images and their boxes. class_names: label map, "__background__" at 0.
        report: what loading found. transform: None or ``f(image, target) -> sample``.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        class_names: Sequence[str],
        report: DataReport | None = None,
        transform: Callable[[Any, dict], Any] | None = None,
        root: str | Path = "dataset",
    ) -> None:
        self.records = list(records)
        self.class_names = list(class_names)
        self.report = report if report is not None else DataReport(images=len(self.records))
        self.transform = transform
        self.root = str(root)
        self._unreadable: set[int] = set()

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Any:
        count = len(self.records)
        if not -count <= index < count:
            raise IndexError(f"{self.root}: index {index} out of range for {count} images")
        for step in range(count):
            i = (index + step) % count
            if i in self._unreadable:
                continue
            record = self.records[i]
            try:
                image = read_image(record.path)
                if record.height is not None and image.shape[:2] != (record.height, record.width):
                    scanned, decoded = f"{record.width}x{record.height}", f"{image.shape[1]}x{image.shape[0]}"
                    raise ImageReadError(record.path, f"decoded as {decoded}, scanned as {scanned} (width x height)")
            except ImageReadError as error:
                self._unreadable.add(i)
                self.report.read_failures.append(str(record.path))
                logger.warning("%s. Skipped: reading the next image instead", error)
                continue
            target = record.target(image.shape[:2])
            return (image, target) if self.transform is None else self.transform(image, target)
        raise DatasetError(self.root, f"none of the {count} images can be read (see the warnings above)")


# Nine parameters: the public loader, called by keyword (ssd-train, ssd-eval, the benchmarks,
# users' scripts); each is one independent choice about what is read, so they stay flat.
def load_dataset(
    path: str | Path,
    format: str = "auto",
    *,
    split: str | None = None,
    class_names: Sequence[str] | None = None,
    images_dir: str | Path | None = None,
    skip_bad: bool = False,
    keep_difficult: bool = True,
    descriptions: str | Path | None = None,
    transform: Callable[[Any, dict], Any] | None = None,
) -> DetectionDataset:
    """Read a detection dataset's annotations and check them against its image files.

    Every image file is checked (exists, non-empty, not truncated; its header gives its size) and
    every box: one partly outside its image is clipped to it; an unknown label, an inverted,
    zero-area, non-finite or entirely-outside box is a problem, as is a bad image file or one whose
    size differs from the annotation's. Images without objects are valid samples.

    Args:
        path: a VOC folder (with ``Annotations/``), a COCO JSON file (or a folder holding
            ``annotations.json``), or an Open Images style CSV.
        format: "voc", "coco", "csv" or "auto" (decided from ``path`` as above).
        split: VOC image set (``ImageSets/Main/<split>.txt``); None: every annotation file.
        class_names: the label map to use (e.g. the training set's, for a validation set), with or
            without "__background__" first; a class not in it is an unknown label. Default: VOC
            and CSV, the names found, sorted; COCO, the categories in id order.
        images_dir: the image folder; default VOC ``JPEGImages/``, else the annotation file's folder.
        skip_bad: False raises on any problem, listing them all; True drops bad boxes, images and
            malformed annotations (a VOC XML file, a COCO entry), warning once per file (logger
            "ssd_deploy.data") and counting them in ``dataset.report``.
        keep_difficult: False leaves out difficult (VOC), crowd (COCO) and group (CSV) boxes.
        descriptions: CSV only: a ``LabelName,DisplayName`` file mapping Open Images MIDs to names.
        transform: set as the dataset's ``transform``.

    Raises:
        DatasetError: the dataset is missing or malformed, or has problems and ``skip_bad`` is False,
            or no usable image is left.
    """
    path = Path(path)
    reader = _reader(path, format, split, images_dir, descriptions)
    report = DataReport()
    raw, found = reader(path, split=split, images_dir=images_dir, descriptions=descriptions, problems=report.problems)
    if class_names is None and not found:
        _stop_on_problems(path, report.problems, skip_bad)
        raise DatasetError(path, "no objects, so no class names. Note: pass class_names")
    names = with_background(class_names if class_names is not None else found)
    records = scan(raw, names, report, keep_difficult=keep_difficult)
    if report.problems:
        _handle_problems(path, report.problems, skip_bad)
    if not records:
        raise DatasetError(path, "no usable images" + (" (all skipped)" if raw else ""))
    logger.info("%s: %d images, %d boxes. %s", path, report.images, report.boxes, report.summary())
    return DetectionDataset(records, names, report, transform, root=path)


def _reader(
    path: Path, format: str, split: str | None, images_dir: str | Path | None, descriptions: str | Path | None
) -> Callable[..., tuple[list[RawAnnotation], list[str]]]:
    """The reader of ``path``'s format, after checking that the files exist and that the
    format-specific arguments fit it (DatasetError otherwise)."""
    if not path.exists():
        raise DatasetError(path, "no such file or folder")
    if images_dir is not None and not Path(images_dir).is_dir():
        raise DatasetError(images_dir, "images folder not found")
    kind = detect_format(path) if format == "auto" else format
    reader = lookup(_READERS, kind, "dataset format")
    if split is not None and kind != "voc":
        raise DatasetError(path, f"split {split!r} given for a {kind} dataset. Note: splits are VOC image sets")
    if descriptions is not None and kind != "csv":
        raise DatasetError(path, f"descriptions given for a {kind} dataset. Note: they map Open Images MIDs to names (csv)")
    return reader


def detect_format(path: Path) -> str:
    """"voc" for a folder with ``Annotations/``, "coco" for a .json file or a folder with
    ``annotations.json``, "csv" for a .csv file.

    Raises:
        DatasetError: none of these.
    """
    if path.is_dir() and (path / "Annotations").is_dir():
        return "voc"
    if path.suffix.lower() == ".json" or (path.is_dir() and (path / "annotations.json").is_file()):
        return "coco"
    if path.suffix.lower() == ".csv":
        return "csv"
    raise DatasetError(
        path,
        "unknown dataset layout. Note: expected a VOC folder (with Annotations/), a COCO .json file (or a folder "
        "with annotations.json) or an Open Images .csv, or pass the format",
    )


def _stop_on_problems(path: Path, problems: list[Problem], skip_bad: bool) -> None:
    """Raise DatasetError listing every problem, one per line, unless they are to be skipped.

    All are listed, not the first few: a user fixing a dataset needs the whole list in one run."""
    if problems and not skip_bad:
        listed = "".join(f"\n  {problem}" for problem in problems)
        note = "Note: fix them, or pass skip_bad=True (ssd-train/ssd-eval --skip-bad-data) to skip them"
        raise DatasetError(path, f"{plural(len(problems), 'problem')}:{listed}\n{note}")


def _handle_problems(path: Path, problems: list[Problem], skip_bad: bool) -> None:
    _stop_on_problems(path, problems, skip_bad)
    by_file: dict[str, list[str]] = defaultdict(list)
    for problem in problems:
        by_file[problem.source].append(problem.detail)
    for source, details in by_file.items():
        logger.warning("%s: skipped %s", source, "; ".join(details))


def _voc(
    path: Path, split: str | None, images_dir: str | Path | None, problems: list[Problem], **_: Any
) -> tuple[list[RawAnnotation], list[str]]:
    return read_voc(path, split, images_dir, problems)


def _coco(path: Path, images_dir: str | Path | None, problems: list[Problem], **_: Any) -> tuple[list[RawAnnotation], list[str]]:
    return read_coco(path / "annotations.json" if path.is_dir() else path, images_dir, problems)


def _csv(
    path: Path, images_dir: str | Path | None, descriptions: str | Path | None, **_: Any
) -> tuple[list[RawAnnotation], list[str]]:
    return read_open_images(path, images_dir, descriptions)


_READERS = {"voc": _voc, "coco": _coco, "csv": _csv}
"""Format name -> reader(path, split=, images_dir=, descriptions=, problems=) -> (raw annotations, class
names found); a reader appends the malformed annotations it can read past to ``problems``."""

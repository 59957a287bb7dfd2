"""Pascal VOC: ``root/Annotations/*.xml``, ``root/JPEGImages/``, ``root/ImageSets/Main/<split>.txt``.

VOC coordinates are 1-based pixel indices, both ends included: ``xmin=1, xmax=10`` covers the
first ten columns. Our boxes are continuous (that object is x1=0, x2=10), so ``xmin`` and
``ymin`` lose 1 and ``xmax``/``ymax`` stay (as Detectron2 reads VOC; the devkit's own
evaluation instead adds 1 to widths).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..images import IMAGE_SUFFIXES
from .records import Problem, RawAnnotation

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
"""The 20 Pascal VOC classes (without the background), in the devkit's (alphabetical) order."""


LABEL_MAP_FILE = "labels.txt"


def read_voc(
    root: str | Path, split: str | None = None, images_dir: str | Path | None = None, problems: list[Problem] | None = None
) -> tuple[list[RawAnnotation], list[str]]:
    """Read a VOC-style dataset's annotations.

    Args:
        root: the folder holding ``Annotations/`` (e.g. ``VOCdevkit/VOC2007``).
        split: an image set in ``ImageSets/Main`` (``train``, ``val``, ``trainval``, ``test``);
            None reads every XML file in ``Annotations/``.
        images_dir: where the ``<filename>`` images are; default ``root/JPEGImages``.
        problems: None raises on the first missing or malformed XML file; a list collects one
            ``Problem`` per such file instead (kinds "missing" and "malformed annotation"), and
            the other files are read, so that every bad file can be reported at once.

    Returns:
        One raw annotation per readable XML file (boxes in pixels) and the class names (without the
        background): those listed in ``root/labels.txt`` (one per line, in label order) if the
        dataset has that file, else the names found, sorted.

    Raises:
        DatasetError: a folder or the split file is missing; without ``problems``, also a listed
            XML file missing or an XML file malformed.
    """
    root = Path(root)
    annotations = root / "Annotations"
    if not annotations.is_dir():
        raise DatasetError(root, "no Annotations folder. Note: a VOC dataset folder holds Annotations/ and JPEGImages/")
    images_dir = Path(images_dir) if images_dir is not None else root / "JPEGImages"
    if not images_dir.is_dir():
        raise DatasetError(images_dir, "images folder not found. Note: VOC images are in JPEGImages/, or pass images_dir")
    if split is None:
        xml_files = sorted(annotations.glob("*.xml"))
    else:
        xml_files = [annotations / f"{stem}.xml" for stem in _split_ids(root, split)]
        missing = [path for path in xml_files if not path.is_file()]
        if missing and problems is None:
            raise DatasetError(missing[0], f"no such file ({len(missing)} of split {split!r} missing). Note: the split lists it")
        for path in missing:
            problems.append(Problem(str(path), "missing", f"no such file. Note: split {split!r} lists it"))
        xml_files = [path for path in xml_files if path not in missing]
    raw = []
    for path in xml_files:
        try:
            raw.append(_read_xml(path, images_dir))
        except DatasetError as error:
            if problems is None:
                raise
            problems.append(Problem(str(path), "malformed annotation", error.problem))
    label_map = root / LABEL_MAP_FILE
    if label_map.is_file():  # the dataset's own class order travels with it
        return raw, [line.strip() for line in label_map.read_text().splitlines() if line.strip()]
    return raw, sorted({name for annotation in raw for name in annotation.names})


def _split_ids(root: Path, split: str) -> list[str]:
    path = root / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.txt") if "_" not in p.stem)
        raise DatasetError(path, f"split {split!r} not found. Note: known splits: {', '.join(known) or 'none'}")
    # Lines are "<id>" (or "<id> <flag>" in per-class lists): the id is the first word.
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def _read_xml(path: Path, images_dir: Path) -> RawAnnotation:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise DatasetError(path, f"not valid XML ({error})") from None
    filename = (root.findtext("filename") or "").strip()
    image_path = images_dir / filename if filename else _find_image(images_dir, path.stem)
    width, height = (_optional_int(path, root, f"size/{key}") for key in ("width", "height"))
    boxes, names, difficult = [], [], []
    for index, obj in enumerate(root.findall("object"), start=1):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise DatasetError(path, f"object {index} has no <name>. Note: every <object> needs a class name")
        box = obj.find("bndbox")
        if box is None:
            raise DatasetError(path, f"object {index} ({name}) has no <bndbox>")
        xmin, ymin, xmax, ymax = (_float(path, box, key, index) for key in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append([xmin - 1, ymin - 1, xmax, ymax])
        names.append(name)
        difficult.append(_optional_int(path, obj, "difficult") == 1)
    return RawAnnotation(
        image_path=image_path,
        source=str(path),
        boxes=np.array(boxes, dtype=np.float64).reshape(-1, 4),
        names=names,
        difficult=np.array(difficult, dtype=bool),
        box_ids=[f"object {i}" for i in range(1, len(names) + 1)],
        width=width or None,  # some tools write 0 when they do not know
        height=height or None,
    )


def _find_image(images_dir: Path, stem: str) -> Path:
    """``images_dir/<stem>.<suffix>`` for the first suffix that exists (``.jpg`` if none does)."""
    for suffix in IMAGE_SUFFIXES:
        if (images_dir / f"{stem}{suffix}").is_file():
            return images_dir / f"{stem}{suffix}"
    return images_dir / f"{stem}.jpg"


def _float(path: Path, box: ET.Element, key: str, index: int) -> float:
    text = box.findtext(key)
    try:
        return float(text)
    except (TypeError, ValueError):
        found = "missing" if text is None else repr(text)
        raise DatasetError(path, f"object {index} <bndbox><{key}> is {found}. Note: expected a number") from None


def _optional_int(path: Path, element: ET.Element, key: str) -> int | None:
    text = element.findtext(key)
    if text is None or not text.strip():
        return None
    try:
        return int(float(text))
    except ValueError:
        raise DatasetError(path, f"<{key}> is {text!r}. Note: expected a number") from None

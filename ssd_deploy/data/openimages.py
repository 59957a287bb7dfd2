"""Open Images box CSVs (``*-annotations-bbox.csv``): one row per box, coordinates in fractions.

Columns are found by their header names, in any order; extra columns are ignored::

    ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,...
    000002b66c9c498e,xclick,/m/01g317,1,0.0125,0.195312,0.148438,0.5875,0,1,0,0,0

Labels are machine ids (MIDs); a class-descriptions CSV (``LabelName,DisplayName`` rows, as in
``class-descriptions-boxable.csv``) maps them to names. Group boxes (``IsGroupOf=1``, one box around
several objects) become ``difficult``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..images import IMAGE_SUFFIXES
from .records import RawAnnotation

REQUIRED_COLUMNS = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax")


def read_open_images(
    path: str | Path, images_dir: str | Path | None = None, descriptions: str | Path | None = None
) -> tuple[list[RawAnnotation], list[str]]:
    """Read an Open Images style box CSV.

    Args:
        path: the CSV file.
        images_dir: the folder holding ``<ImageID>.jpg`` (or any of IMAGE_SUFFIXES); default the
            CSV's folder.
        descriptions: optional ``LabelName,DisplayName`` CSV: names replace MIDs, and a MID it
            does not list is an unknown label.

    Returns:
        One raw annotation per image (in order of first appearance; boxes in fractions of the
        image, turned into pixels when the image's size is known) and the class names found,
        sorted (without the background).

    Raises:
        DatasetError: a required column is missing or a coordinate is not a number.
    """
    path = Path(path)
    images_dir = Path(images_dir) if images_dir is not None else path.parent
    display = read_descriptions(descriptions) if descriptions is not None else None
    images = _index_images(images_dir)
    try:
        rows = _read_rows(path, display)
    except (UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(path, f"not a readable CSV file ({error})") from None
    raw = []
    for image_id, objects in rows.items():
        image_path = images.get(image_id, images_dir / f"{image_id}.jpg")
        raw.append(
            RawAnnotation(
                image_path=image_path,
                source=str(image_path),
                boxes=np.array([box for box, _, _, _ in objects], dtype=np.float64).reshape(-1, 4),
                names=[name for _, name, _, _ in objects],
                difficult=np.array([group for _, _, group, _ in objects], dtype=bool),
                box_ids=[where for _, _, _, where in objects],
                fractional=True,
            )
        )
    found = {name for annotation in raw for name in annotation.names}
    known = found if display is None else found & set(display.values())
    return raw, sorted(known)


def _read_rows(path: Path, display: dict[str, str] | None) -> dict[str, list[tuple[list[float], str, bool, str]]]:
    """``{ImageID: [(box xyxy fractions, name, is group, "row N"), ...]}`` in order of appearance."""
    rows: dict[str, list[tuple[list[float], str, bool, str]]] = {}
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        missing = [column for column in REQUIRED_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            expected = ",".join(REQUIRED_COLUMNS)
            raise DatasetError(path, f"missing column(s) {', '.join(missing)}. Note: expected a header with {expected}")
        for row in reader:
            where = f"row {reader.line_num}"
            if any(row[column] is None for column in REQUIRED_COLUMNS):
                raise DatasetError(path, f"{where}: fewer fields than the header. Note: one box per row, every column filled")
            box = [_fraction(path, row, key, where) for key in ("XMin", "YMin", "XMax", "YMax")]
            mid = row["LabelName"].strip()
            name = display.get(mid, mid) if display is not None else mid
            group = (row.get("IsGroupOf") or "0").strip() == "1"
            rows.setdefault(row["ImageID"].strip(), []).append((box, name, group, where))
    return rows


def read_descriptions(path: str | Path) -> dict[str, str]:
    """``{MID: display name}`` from a ``LabelName,DisplayName`` CSV (a header row is allowed)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "class descriptions file not found. Note: expected a LabelName,DisplayName CSV")
    names = {}
    with open(path, newline="", encoding="utf-8") as file:
        for line, row in enumerate(csv.reader(file), start=1):
            if not row or row == ["LabelName", "DisplayName"]:
                continue
            if len(row) < 2 or not row[0].strip() or not row[1].strip():
                raise DatasetError(path, f"line {line}: {row!r}. Note: expected LabelName,DisplayName (e.g. /m/01g317,Person)")
            names[row[0].strip()] = row[1].strip()
    return names


def _index_images(images_dir: Path) -> dict[str, Path]:
    """``{stem: path}`` of the images in a folder, listed once (stats per image are slow on big sets)."""
    if not images_dir.is_dir():
        return {}
    rank = {suffix: i for i, suffix in enumerate(IMAGE_SUFFIXES)}
    found = sorted(
        (p for p in images_dir.iterdir() if p.suffix.lower() in rank), key=lambda p: (p.stem, rank[p.suffix.lower()])
    )
    images: dict[str, Path] = {}
    for image in found:
        images.setdefault(image.stem, image)  # .jpg before .png if both exist
    return images


def _fraction(path: Path, row: dict, key: str, where: str) -> float:
    try:
        return float(row[key])
    except (TypeError, ValueError):
        raise DatasetError(path, f"{where}: {key} is {row[key]!r}. Note: expected a fraction of the image size") from None

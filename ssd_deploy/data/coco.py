"""COCO instances JSON: ``images``, ``annotations`` (``bbox`` = [x, y, width, height] in pixels)
and ``categories``.

Category ids need not be contiguous (COCO's own run 1..90 with gaps): labels 1..C-1 follow the
categories in id order. Crowd annotations (``iscrowd=1``) become ``difficult`` boxes, which the
evaluation ignores as COCOeval ignores crowds.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError
from .records import Problem, RawAnnotation


def read_coco(
    path: str | Path, images_dir: str | Path | None = None, problems: list[Problem] | None = None
) -> tuple[list[RawAnnotation], list[str]]:
    """Read a COCO instances file.

    Args:
        path: the JSON file.
        images_dir: the folder ``file_name`` is relative to; default the JSON file's folder.
        problems: None raises on the first malformed annotation; a list collects one ``Problem``
            (kind "malformed annotation") per image with one instead, and leaves that image out,
            so that every bad entry can be reported at once.

    Returns:
        One raw annotation per image (in the file's order, images without objects included) and
        the category names in id order (without the background). An annotation whose category id
        is not in ``categories`` gets the name ``"category id <n>"``, an unknown label.

    Raises:
        DatasetError: the file is not JSON, lacks a key, or an entry lacks a field (with
            ``problems``, only for entries other than an image's annotations).
    """
    path = Path(path)
    images_dir = Path(images_dir) if images_dir is not None else path.parent
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(path, f"not a readable JSON file ({error})") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise DatasetError(path, f"no {key!r} list. Note: expected a COCO instances file (images, annotations, categories)")
    categories = sorted(
        (_field(path, c, "id", "category", int), _field(path, c, "name", "category", str)) for c in data["categories"]
    )
    names = [name for _, name in categories]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DatasetError(path, f"category names repeated: {', '.join(repeated)}. Note: each category needs its own name")
    name_of = dict(categories)

    by_image: dict[Any, list[dict]] = defaultdict(list)
    for index, ann in enumerate(data["annotations"]):
        by_image[_field(path, ann, "image_id", f"annotation {ann.get('id', index)}", int)].append(ann)
    images = data["images"]
    ids = {_field(path, image, "id", "image", int) for image in images}
    orphans = [image_id for image_id in by_image if image_id not in ids]
    if orphans:
        raise DatasetError(path, f"annotations for image id {orphans[0]}, which is not in 'images' ({len(orphans)} such ids)")
    raw = []
    for image in images:
        try:
            raw.append(_image(path, image, by_image.get(image["id"], []), images_dir, name_of))
        except DatasetError as error:
            if problems is None:
                raise
            where = "" if error.problem.startswith("image ") else f"image {image['id']}: "
            problems.append(Problem(str(path), "malformed annotation", where + error.problem))
    return raw, names


def _image(path: Path, image: dict, anns: list[dict], images_dir: Path, name_of: dict[int, str]) -> RawAnnotation:
    image_path = images_dir / _field(path, image, "file_name", f"image {image['id']}", str)
    boxes, names, crowd, box_ids = [], [], [], []
    for ann in anns:
        where = f"annotation {ann.get('id', '?')}"
        bbox = _field(path, ann, "bbox", where, list)
        if len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox):
            raise DatasetError(path, f"{where}: bbox {bbox!r}. Note: expected [x, y, width, height] in pixels")
        x, y, w, h = bbox
        boxes.append([x, y, x + w, y + h])
        category = _field(path, ann, "category_id", where, int)
        names.append(name_of.get(category, f"category id {category}"))
        crowd.append(bool(ann.get("iscrowd", 0)))
        box_ids.append(where)
    width, height = image.get("width"), image.get("height")
    return RawAnnotation(
        image_path=image_path,
        source=str(image_path),
        boxes=np.array(boxes, dtype=np.float64).reshape(-1, 4),
        names=names,
        difficult=np.array(crowd, dtype=bool),
        box_ids=box_ids,
        image_id=image["id"],
        width=int(width) if width else None,
        height=int(height) if height else None,
    )


def _field(path: Path, entry: Any, key: str, where: str, kind: type | None = None) -> Any:
    """``entry[key]``, or a DatasetError naming the entry if it is missing (or not of ``kind``)."""
    if not isinstance(entry, dict) or key not in entry:
        raise DatasetError(path, f"{where} has no {key!r}. Note: see the COCO data format (cocodataset.org/#format-data)")
    value = entry[key]
    if kind is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise DatasetError(path, f"{where}: {key} is {value!r}. Note: expected {'a number' if kind is int else kind.__name__}")
    return value

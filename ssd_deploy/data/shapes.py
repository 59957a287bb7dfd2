"""A synthetic dataset of coloured shapes on textured backgrounds, generated with a fixed seed.

Nothing can be downloaded in tests, demos or CI, so this is the data they train and measure on.
Each scene has 1-6 shapes (circle, square, triangle, star, ring) of varied size and colour, some
overlapping and some cut by the image border, on a noisy gradient background. With ``hues`` the
class is the shape and one of ``hues`` bands of hue (``circle_h00`` ...): 90 classes with 18,
neighbouring bands easily confused, a many-class set (as COCO's) for measuring post-processing.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from tqdm import tqdm

SHAPE_CLASSES = ("circle", "square", "triangle", "star", "ring")
CLASS_NAMES = ("__background__",) + SHAPE_CLASSES  # label i <-> CLASS_NAMES[i]


def foreground_names(hues: int = 0) -> tuple[str, ...]:
    """Foreground class names in label order (label i <-> name i - 1): the shapes, or with ``hues``
    each shape in each hue band, shape-major (``circle_h00``, ``circle_h01``, ...)."""
    if not hues:
        return SHAPE_CLASSES
    return tuple(f"{shape}_h{band:02d}" for shape in SHAPE_CLASSES for band in range(hues))


@dataclass
class Scene:
    """One generated image and its objects.

    Attributes:
        image: BGR uint8 H x W x 3.
        boxes: float32 [G, 4] xyxy in pixels (tight around the visible part of each shape).
        labels: int64 [G], 1 ... len(SHAPE_CLASSES).
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    base = rng.integers(0, 256, size=(2, 3)).astype(np.float32)
    ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    image = base[0] * (1 - ramp) + base[1] * ramp
    image = np.broadcast_to(image, (height, width, 3)).copy()
    image += rng.normal(0.0, rng.uniform(5, 25), size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _star(center: tuple[float, float], radius: float, angle: float) -> np.ndarray:
    points = []
    for i in range(10):
        r = radius if i % 2 == 0 else radius * 0.45
        a = angle + i * math.pi / 5
        points.append((center[0] + r * math.cos(a), center[1] + r * math.sin(a)))
    return np.array(points, dtype=np.float32)


def _draw_shape(mask: np.ndarray, kind: str, cx: float, cy: float, radius: float, angle: float) -> None:
    """Draw shape ``kind`` filled with 255 into ``mask`` (uint8 H x W)."""
    if kind == "circle":
        cv2.circle(mask, (round(cx), round(cy)), round(radius), 255, -1, cv2.LINE_AA)
    elif kind == "ring":
        cv2.circle(mask, (round(cx), round(cy)), round(radius * 0.8), 255, max(2, round(radius * 0.4)), cv2.LINE_AA)
    else:
        if kind == "square":
            corners = [angle + math.pi / 4 + i * math.pi / 2 for i in range(4)]
            points = np.array([(cx + radius * math.cos(a), cy + radius * math.sin(a)) for a in corners])
        elif kind == "triangle":
            corners = [angle - math.pi / 2 + i * 2 * math.pi / 3 for i in range(3)]
            points = np.array([(cx + radius * math.cos(a), cy + radius * math.sin(a)) for a in corners])
        else:  # star
            points = _star((cx, cy), radius, angle - math.pi / 2)
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 255, cv2.LINE_AA)


def _hue_color(rng: np.random.Generator, band: int, hues: int) -> np.ndarray:
    """A saturated, bright BGR colour whose hue lies in band ``band`` of ``hues`` equal bands."""
    width = 180 / hues  # OpenCV's 8-bit hue runs over 0-179
    hsv = np.array([[[int(band * width + rng.uniform(0, width)), int(rng.integers(150, 256)), int(rng.integers(120, 256))]]], dtype=np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def render_scene(rng: np.random.Generator, size: tuple[int, int] = (320, 320), max_objects: int = 6, hues: int = 0) -> Scene:
    """Render one random scene of ``size`` = (height, width); with ``hues`` the labels are
    :func:`foreground_names` ``(hues)``'s (the shape and its hue band), else the shapes'.

    Later shapes are drawn over earlier ones. Each box is tight around the *visible* pixels of
    its shape; a shape left with fewer than 16 visible pixels is not annotated.
    """
    height, width = size
    image = _background(rng, height, width)
    masks, labels = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        kind = int(rng.integers(len(SHAPE_CLASSES)))
        radius = rng.uniform(0.06, 0.25) * min(height, width)
        # Centres may fall slightly outside so that some shapes are cut by the border.
        cx = rng.uniform(-0.1 * width, 1.1 * width)
        cy = rng.uniform(-0.1 * height, 1.1 * height)
        mask = np.zeros((height, width), dtype=np.uint8)
        _draw_shape(mask, SHAPE_CLASSES[kind], cx, cy, radius, rng.uniform(0, 2 * math.pi))
        if mask.max() == 0:
            continue
        if hues:
            band = int(rng.integers(hues))
            color, label = _hue_color(rng, band, hues), kind * hues + band + 1
        else:  # the default set: these draws, in this order, keep every seed's scenes as they were
            color, label = rng.integers(0, 256, size=3).astype(np.float32), kind + 1
        # Blend inside the shape's bounding rectangle only (outside it alpha is 0: the same pixels, 4x faster).
        x, y, w, h = cv2.boundingRect(mask)
        inside = (slice(y, y + h), slice(x, x + w))
        alpha = (mask[inside].astype(np.float32) / 255.0)[:, :, None]
        image[inside] = (image[inside] * (1 - alpha) + color * alpha).astype(np.uint8)
        covered = mask[inside] > 127
        for earlier in masks:  # what this shape covers is no longer visible below it
            earlier[inside][covered] = 0
        masks.append(mask)
        labels.append(label)
    boxes, kept = [], []
    for mask, label in zip(masks, labels):
        ys, xs = np.nonzero(mask > 127)
        if len(xs) < 16:
            continue
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        kept.append(label)
    return Scene(image, np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(kept, dtype=np.int64))


def generate_shapes_dataset(
    out_dir: str | Path, num_images: int, seed: int = 0, size: tuple[int, int] = (320, 320), progress: bool = True, hues: int = 0
) -> Path:
    """Write ``num_images`` scenes of ``size`` = (height, width) as one dataset in two formats (``hues``: :func:`render_scene`).

    Layout (the images are shared)::

        out_dir/JPEGImages/shapes_00000.png       the images (PNG, despite VOC's folder name)
        out_dir/Annotations/shapes_00000.xml      VOC annotations
        out_dir/ImageSets/Main/trainval.txt       VOC image set: every image
        out_dir/labels.txt                         class names in label order (VOC has no such list)
        out_dir/annotations.json                  COCO annotations (file_name "JPEGImages/...")

    Both describe the same boxes and label map: ``load_dataset(out_dir, "voc")`` and
    ``load_dataset(out_dir, "coco")`` give equal records, labels in CLASS_NAMES' order (VOC reads
    it from ``labels.txt``). ``annotations.json`` is written last, so a complete dataset has it.
    The same seed always gives the same files.

    Returns:
        The dataset root, ``out_dir``.
    """
    out_dir = Path(out_dir)
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = ("__background__",) + foreground_names(hues)
    images, annotations, stems = [], [], []
    # PNG encoding (a third of the time per image) runs in a thread beside the next scene's
    # rendering: cv2.imwrite releases the GIL.
    with ThreadPoolExecutor(max_workers=1) as writer:
        writes = []
        for index in tqdm(range(num_images), desc="shapes", unit="img", disable=not progress):
            scene = render_scene(rng, size, hues=hues)
            stem = f"shapes_{index:05d}"
            writes.append(writer.submit(_write_png, out_dir / "JPEGImages" / f"{stem}.png", scene.image))
            if len(writes) > 8:  # at most 8 images wait in memory
                writes.pop(0).result()  # raises what a failed write raised
            _write_voc_xml(out_dir / "Annotations" / f"{stem}.xml", f"{stem}.png", scene, size, names)
            stems.append(stem)
            images.append({"id": index, "file_name": f"JPEGImages/{stem}.png", "height": size[0], "width": size[1]})
            for box, label in zip(scene.boxes.tolist(), scene.labels.tolist()):
                x1, y1, x2, y2 = box
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": index,
                        "category_id": int(label),
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": (x2 - x1) * (y2 - y1),
                        "iscrowd": 0,
                    }
                )
        for write in writes:
            write.result()
    (out_dir / "ImageSets" / "Main" / "trainval.txt").write_text("".join(f"{stem}\n" for stem in stems))
    (out_dir / "labels.txt").write_text("".join(f"{name}\n" for name in names[1:]))  # VOC label order
    categories = [{"id": i, "name": name} for i, name in enumerate(names) if i > 0]
    path = out_dir / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return out_dir


# Eight parameters: generate_shapes_dataset's six, and how to say which happened.
def ensure_shapes_dataset(
    out_dir: str | Path, num_images: int, seed: int = 0, size: tuple[int, int] = (320, 320), progress: bool = True,
    log: Callable[[str], None] = print, note: str = "", hues: int = 0,
) -> Path:
    """:func:`generate_shapes_dataset` once: a folder with ``annotations.json`` (written last, so
    the set is complete) is reused, and ``log`` says which happened (``note`` is added when generating)."""
    out_dir = Path(out_dir)
    if (out_dir / "annotations.json").is_file():
        log(f"data: reusing {num_images} generated images in {out_dir}")
        return out_dir
    log(f"data: generating {num_images} images in {out_dir} (seed {seed}){note}")
    return generate_shapes_dataset(out_dir, num_images, seed=seed, size=size, progress=progress, hues=hues)


def _write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise OSError(f"{path}: could not write the image")


def _write_voc_xml(path: Path, filename: str, scene: Scene, size: tuple[int, int], names: tuple[str, ...] = CLASS_NAMES) -> None:
    """One VOC annotation. Our boxes are continuous xyxy with integer corners; VOC's are 1-based
    pixel indices, both ends included, so xmin = x1 + 1 and xmax = x2 (and the same for y)."""
    height, width = size
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = filename
    image_size = ET.SubElement(root, "size")
    for key, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(image_size, key).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for (x1, y1, x2, y2), label in zip(scene.boxes.astype(int).tolist(), scene.labels.tolist()):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = names[label]
        ET.SubElement(obj, "pose").text = "Unspecified"
        cut = x1 == 0 or y1 == 0 or x2 == width or y2 == height  # touches the border: likely cut by it
        ET.SubElement(obj, "truncated").text = str(int(cut))
        ET.SubElement(obj, "difficult").text = "0"
        box = ET.SubElement(obj, "bndbox")
        for key, value in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
            ET.SubElement(box, key).text = str(value)
    ET.indent(root)
    path.write_bytes(ET.tostring(root, encoding="utf-8") + b"\n")

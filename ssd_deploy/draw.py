"""Drawing detections on images with OpenCV: boxes first, then labels placed where they stay
inside the image and clear of the labels already drawn."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from .pipeline import Detections

FONT = cv2.FONT_HERSHEY_SIMPLEX
Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels, exclusive end


def class_color(label: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((label * 0.618034) % 1.0, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_label(box: Rect, size: tuple[int, int], image_shape: tuple[int, int], placed: list[Rect]) -> Rect:
    """Where a label of ``size`` (width, height) goes for ``box``: above the box, else inside its
    top, else below it, else further down in steps of its height: the first spot that lies in
    the image and overlaps no label in ``placed``; the spot above (clamped into the image) when
    none is free. Shifted left where it would leave the image on the right."""
    height, width = image_shape
    w, h = min(size[0], width), min(size[1], height)
    x = min(max(box[0], 0), width - w)
    tops = [box[1] - h, box[1], box[3]] + [box[1] + h * step for step in range(1, 8)]
    spots = [(x, top, x + w, top + h) for top in tops if 0 <= top and top + h <= height]
    for spot in spots:
        if not any(_overlaps(spot, other) for other in placed):
            return spot
    top = min(max(box[1] - h, 0), height - h)
    return x, top, x + w, top + h


def draw_detections(image: np.ndarray, detections: Detections) -> np.ndarray:
    """A copy of ``image`` (BGR uint8) with each box, class name and score drawn.

    Labels are drawn after every box, best detection first, so none is crossed by a box and the
    best ones get the spot just above their box."""
    canvas = image.copy()
    thickness = max(1, round(min(canvas.shape[:2]) / 300))
    scale = 0.4 * thickness
    items = list(zip(detections.boxes, detections.scores, detections.labels, detections.names()))
    rects = [tuple(int(round(float(v))) for v in box) for box, *_ in items]
    for rect, (_, _, label, _) in zip(rects, items):
        cv2.rectangle(canvas, rect[:2], rect[2:], class_color(int(label)), thickness, cv2.LINE_AA)
    placed: list[Rect] = []
    for index in np.argsort([-float(score) for _, score, _, _ in items], kind="stable"):
        _, score, label, name = items[index]
        text = f"{name} {float(score):.2f}"
        (tw, th), baseline = cv2.getTextSize(text, FONT, scale, 1)
        spot = place_label(rects[index], (tw + 2, th + baseline + 2), canvas.shape[:2], placed)
        placed.append(spot)
        cv2.rectangle(canvas, spot[:2], (spot[2] - 1, spot[3] - 1), class_color(int(label)), -1)
        cv2.putText(canvas, text, (spot[0] + 1, spot[3] - baseline - 1), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas

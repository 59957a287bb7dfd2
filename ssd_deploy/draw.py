"""Drawing detections on images with OpenCV."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from .pipeline import Detections


def class_color(label: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((label * 0.618034) % 1.0, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def draw_detections(image: np.ndarray, detections: Detections) -> np.ndarray:
    """A copy of ``image`` (BGR uint8) with each box, class name and score drawn."""
    canvas = image.copy()
    thickness = max(1, round(min(canvas.shape[:2]) / 300))
    for box, score, label, name in zip(detections.boxes, detections.scores, detections.labels, detections.names()):
        color = class_color(int(label))
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
        text = f"{name} {score:.2f}"
        (tw, th), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, 1)
        top = max(y1, th + baseline)
        cv2.rectangle(canvas, (x1, top - th - baseline), (x1 + tw, top), color, -1)
        cv2.putText(canvas, text, (x1, top - baseline), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas

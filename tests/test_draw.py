"""Drawn detections: labels inside the image and clear of each other."""

from __future__ import annotations

import numpy as np

from ssd_deploy.draw import _overlaps, class_color, draw_detections, place_label
from ssd_deploy.pipeline import Detections


def test_label_of_a_box_at_the_top_edge_stays_inside_the_image():
    spot = place_label((5, 0, 60, 40), (50, 12), (100, 200), [])
    assert spot == (5, 0, 55, 12)  # no room above: inside the box's top
    spot = place_label((180, 50, 199, 90), (50, 12), (100, 200), [])
    assert spot == (150, 38, 200, 50)  # shifted left, above the box


def test_labels_of_overlapping_boxes_do_not_overlap():
    placed = []
    for box in [(20, 30, 80, 90), (22, 31, 82, 92), (24, 33, 84, 94)]:
        placed.append(place_label(box, (50, 12), (120, 160), placed))
    assert not any(_overlaps(a, b) for i, a in enumerate(placed) for b in placed[i + 1 :])
    assert all(0 <= x1 < x2 <= 160 and 0 <= y1 < y2 <= 120 for x1, y1, x2, y2 in placed)


def test_draw_detections_paints_labels_inside_and_leaves_the_input_alone():
    image = np.full((120, 160, 3), 255, np.uint8)
    detections = Detections(
        boxes=np.array([[0, 0, 70, 60], [2, 1, 72, 61]], np.float32),
        scores=np.array([0.9, 0.8], np.float32),
        labels=np.array([1, 2]),
        class_names=["background", "circle", "square"],
    )
    drawn = draw_detections(image, detections)
    assert (image == 255).all()
    # Both labels are filled rectangles in their class colour; the best one's at the top edge.
    for label in (1, 2):
        assert (drawn == class_color(label)).all(axis=2).sum() > 100
    assert (drawn[:12] == class_color(1)).all(axis=2).sum() > 100

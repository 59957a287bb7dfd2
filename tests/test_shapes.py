"""The synthetic shapes dataset: deterministic, and its boxes describe what is drawn."""

from __future__ import annotations

import hashlib

import numpy as np
from pycocotools.coco import COCO

from ssd_deploy.data.shapes import SHAPE_CLASSES, generate_shapes_dataset, render_scene


def test_scenes_are_deterministic_and_boxes_valid():
    for seed in range(20):
        a = render_scene(np.random.default_rng(seed), (120, 160))
        b = render_scene(np.random.default_rng(seed), (120, 160))
        assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
        assert a.image.shape == (120, 160, 3) and a.image.dtype == np.uint8
        assert len(a.boxes) == len(a.labels)
        if len(a.boxes):
            assert (a.boxes[:, 0] >= 0).all() and (a.boxes[:, 2] <= 160).all()
            assert (a.boxes[:, 1] >= 0).all() and (a.boxes[:, 3] <= 120).all()
            assert (a.boxes[:, 2] > a.boxes[:, 0]).all() and (a.boxes[:, 3] > a.boxes[:, 1]).all()
            assert set(a.labels.tolist()) <= set(range(1, len(SHAPE_CLASSES) + 1))


def test_dataset_files_are_identical_for_a_seed_and_load_in_pycocotools(tmp_path):
    first = generate_shapes_dataset(tmp_path / "a", 5, seed=7, size=(64, 64), progress=False)
    second = generate_shapes_dataset(tmp_path / "b", 5, seed=7, size=(64, 64), progress=False)
    digest = lambda root: [hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((root / "images").iterdir())]
    assert first.read_text() == second.read_text() and digest(tmp_path / "a") == digest(tmp_path / "b")
    coco = COCO(str(first))
    assert len(coco.getImgIds()) == 5
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(SHAPE_CLASSES)
    assert len(coco.getAnnIds()) > 0

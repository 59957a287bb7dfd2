"""Calibration batches: the runtimes' own pre-processing of dataset images, batched for quantisers."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from ssd_deploy.calibration import Calibration, CalibrationBatches, as_calibration, find_calibration_images
from ssd_deploy.data.shapes import render_scene
from ssd_deploy.errors import SSDDeployError
from ssd_deploy.images import read_image
from ssd_deploy.pipeline import preprocess


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "dataset"
    (root / "images" / "nested").mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i, size in enumerate([(100, 140), (64, 64), (200, 120), (96, 128)]):
        cv2.imwrite(str(root / "images" / f"scene_{i}.png"), render_scene(rng, size).image)
    cv2.imwrite(str(root / "images" / "nested" / "scene_4.jpg"), render_scene(rng, (150, 150)).image)
    (root / "annotations.json").write_text("{}")
    return root


def _expected(paths, input_size=(128, 96)) -> np.ndarray:
    return preprocess([read_image(path) for path in paths], input_size)[0].numpy()


def test_images_are_found_recursively_and_sampled_evenly(folder):
    found = find_calibration_images(folder)
    assert [p.name for p in found] == ["scene_4.jpg", "scene_0.png", "scene_1.png", "scene_2.png", "scene_3.png"]
    assert [p.name for p in find_calibration_images(folder, limit=2)] == ["scene_4.jpg", "scene_1.png"]  # every 2.5th


def test_batches_equal_the_runtime_preprocessing_with_a_padded_last_batch(folder):
    batches = CalibrationBatches.from_folder(folder, (128, 96), batch_size=2)
    produced = list(batches)
    assert len(batches) == len(produced) == 3
    assert all(batch.shape == (2, 3, 128, 96) and batch.dtype == np.float32 and batch.flags.c_contiguous for batch in produced)
    paths = batches.paths + [batches.paths[-1]]  # the last batch repeats its own image
    np.testing.assert_array_equal(np.concatenate(produced), _expected(paths))
    np.testing.assert_array_equal(np.concatenate(list(batches)), np.concatenate(produced))  # re-iterable


def test_empty_or_missing_folder_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("no images")
    with pytest.raises(SSDDeployError, match=re.escape(f"{tmp_path / 'empty'}: no images for calibration")):
        CalibrationBatches.from_folder(tmp_path / "empty", (128, 96))
    with pytest.raises(SSDDeployError, match=re.escape(f"{tmp_path / 'missing'}: calibration folder not found")):
        CalibrationBatches.from_folder(tmp_path / "missing", (128, 96))
    with pytest.raises(SSDDeployError, match="batch size 0"):
        CalibrationBatches([tmp_path / "x.png"], (128, 96), batch_size=0)


def test_one_calibration_object_names_folder_and_count(folder):
    calibration = as_calibration(str(folder))
    assert calibration == Calibration(folder) and calibration.count == 200
    assert as_calibration(None).or_folder(folder) == calibration
    assert Calibration(folder, 3).or_folder("elsewhere") == Calibration(folder, 3)  # a given folder wins
    assert Calibration(folder, 3).settings() == {"calibration": str(folder), "calibration_images": 3}
    batches = Calibration(folder, 2).batches((128, 96), batch_size=2)
    assert [p.name for p in batches.paths] == ["scene_4.jpg", "scene_1.png"]  # the same spread as limit=2
    with pytest.raises(SSDDeployError, match=r"--calib-images 0: expected a whole number of images"):
        Calibration(folder, 0)
    with pytest.raises(SSDDeployError, match=r"INT8 needs calibration images. Note: pass --calib FOLDER"):
        Calibration().batches((128, 96))

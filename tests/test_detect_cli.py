"""ssd-detect end to end: pictures and JSON for good images, one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from helpers import informative_init
from ssd_deploy.checkpoint import save_checkpoint
from ssd_deploy.cli import run_cli
from ssd_deploy.cli.detect import main
from ssd_deploy.data.shapes import CLASS_NAMES, render_scene
from ssd_deploy.models import create_model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("ssdlite_mobilenet_v2", num_classes=len(CLASS_NAMES), input_size=(128, 128))
    informative_init(model)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", model, list(CLASS_NAMES))


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    scene = render_scene(np.random.default_rng(0), (96, 128))
    cv2.imwrite(str(folder / "color.png"), scene.image)
    cv2.imwrite(str(folder / "gray.png"), cv2.cvtColor(scene.image, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "rgba.png"), cv2.cvtColor(scene.image, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(folder / "deep.png"), scene.image.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "cut.jpg"), scene.image)
    (folder / "cut.jpg").write_bytes((folder / "cut.jpg").read_bytes()[:500])
    (folder / "text.png").write_bytes(b"not an image")
    return folder


def test_good_images_are_processed_and_bad_ones_reported(tmp_path, checkpoint, images, capsys):
    out = tmp_path / "out"
    code = run_cli(main, [str(images), "--checkpoint", str(checkpoint), "--out", str(out), "--score", "0.05", "--batch-size", "3"])
    captured = capsys.readouterr()
    assert code == 1  # something failed
    for stem in ["color", "gray", "rgba", "deep"]:
        record = json.loads((out / f"{stem}.json").read_text())
        assert record["width"] == 128 and record["height"] == 96
        for det in record["detections"]:
            x1, y1, x2, y2 = det["box_xyxy"]
            assert 0 <= x1 <= x2 <= 128 and 0 <= y1 <= y2 <= 96 and det["score"] >= 0.05
            assert det["class_name"] == CLASS_NAMES[det["label"]]
        assert cv2.imread(str(out / f"{stem}.jpg")).shape == (96, 128, 3)
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert any("cut.jpg" in line and "truncated" in line for line in errors)
    assert any("text.png" in line and "not a readable image" in line for line in errors)
    assert "Traceback" not in captured.err
    assert not (out / "cut.json").exists() and not (out / "text.json").exists()
    assert len([line for line in captured.out.splitlines() if "detections" in line]) == 4


def test_same_pixels_give_same_detections_whatever_the_file_kind(tmp_path, checkpoint, images):
    out = tmp_path / "out"
    run_cli(main, [str(images / "color.png"), str(images / "rgba.png"), str(images / "deep.png"), "--checkpoint", str(checkpoint), "--out", str(out), "--score", "0.01"])
    # Sorted: an untrained model ties many scores, and NMS order among ties is arbitrary.
    records = [sorted(json.loads((out / f"{s}.json").read_text())["detections"], key=json.dumps) for s in ["color", "rgba", "deep"]]
    assert records[0] == records[1] == records[2] and len(records[0]) > 0


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b"garbage"), "not a readable PyTorch checkpoint"),
    ],
)
def test_bad_checkpoint_is_one_line_error(tmp_path, images, capsys, make, problem):
    path = tmp_path / "model.pt"
    make(path)
    code = run_cli(main, [str(images / "color.png"), "--checkpoint", str(path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(path) in err[0] and problem in err[0]


def test_checkpoint_for_another_architecture(tmp_path, checkpoint, images, capsys):
    code = run_cli(main, [str(images / "color.png"), "--checkpoint", str(checkpoint), "--arch", "ssd300_vgg16", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "for architecture 'ssdlite_mobilenet_v2', not 'ssd300_vgg16'" in err


def test_console_script_help_lists_every_flag():
    result = subprocess.run([sys.executable, "-m", "ssd_deploy.cli.detect", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for flag in ["--checkpoint", "--arch", "--score", "--iou", "--max-det", "--out", "--batch-size", "--device"]:
        assert flag in result.stdout

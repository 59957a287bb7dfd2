"""ssd-detect on videos, streams, cameras, glob patterns and nested folders (an untrained model)."""

from __future__ import annotations

import json
import os
import shutil
import threading

import cv2
import numpy as np
import pytest
import torch

import ssd_deploy.cli.detect as detect_cli
from ssd_deploy.checkpoint import save_checkpoint
from ssd_deploy.cli import run_cli
from ssd_deploy.cli.detect import main
from ssd_deploy.data.shapes import CLASS_NAMES, render_scene
from ssd_deploy.models import create_model

REAL_CAPTURE = cv2.VideoCapture  # the tests below replace cv2.VideoCapture; results are read back with this
FRAMES, FPS, W, H = 12, 10.0, 160, 120


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained model (as --arch gives) at 128 x 128, a sixth of the pixels of --arch's 320 x 320."""
    torch.manual_seed(0)
    model = create_model("ssdlite_mobilenet_v2", num_classes=len(CLASS_NAMES), input_size=(128, 128))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", model, list(CLASS_NAMES))


@pytest.fixture
def model_args(checkpoint):
    return ["--checkpoint", str(checkpoint), "--score", "0.05"]  # untrained: many detections of every class


def write_clip(path, fourcc="mp4v", frames=FRAMES):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (W, H))
    assert writer.isOpened()
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(render_scene(rng, (H, W)).image)
    writer.release()
    return path


def write_image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), render_scene(np.random.default_rng(1), (H, W)).image)
    return path


@pytest.fixture
def clip(tmp_path):
    return write_clip(tmp_path / "clip.mp4")


def count_frames(path):
    capture = REAL_CAPTURE(str(path))
    assert capture.isOpened(), path
    frames = 0
    while capture.read()[0]:
        frames += 1
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    capture.release()
    assert size == (W, H)
    return frames


def read_lines(path):
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert path.read_text().endswith("\n")  # whole lines only
    return records


def assert_video_results(out, name, frames, stride=1):
    """<name>.mp4 holds ``frames`` frames, <name>.jsonl one line each, in order; no temporary file is left."""
    assert count_frames(out / f"{name}.mp4") == frames
    records = read_lines(out / f"{name}.jsonl")
    assert [r["frame"] for r in records] == list(range(0, frames * stride, stride))
    times = [r["time_s"] for r in records]
    assert times[0] == 0 and all(b > a for a, b in zip(times, times[1:]))
    assert times == pytest.approx([r["frame"] / FPS for r in records], abs=1e-3)
    for record in records:
        assert (record["width"], record["height"]) == (W, H)
        for det in record["detections"]:
            assert set(det) == {"box_xyxy", "score", "label", "class_name"} and det["score"] >= 0.05
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left
    return records


def fake_capture(monkeypatch, reads, then, source=None):
    """Replace cv2.VideoCapture by one that reads ``reads`` frames of the real source (or of ``source``),
    then raises KeyboardInterrupt (``then`` is KeyboardInterrupt) or fails to read (``then`` is None)."""
    opened = []

    class Capture:
        def __init__(self, location):
            opened.append(location)
            self.inner, self.left = REAL_CAPTURE(str(source or location)), reads

        def read(self):
            self.left -= 1
            if self.left < 0:
                if then is KeyboardInterrupt:
                    raise KeyboardInterrupt
                return False, None
            return self.inner.read()

        def __getattr__(self, name):
            return getattr(self.inner, name)

    monkeypatch.setattr(cv2, "VideoCapture", Capture)
    return opened


def test_video_gives_an_annotated_video_and_a_json_line_per_frame(model_args, tmp_path, clip, capsys, monkeypatch):
    bars = []

    class RecordingBar(detect_cli.tqdm):
        def __init__(self, *args, **kwargs):
            bars.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(detect_cli, "tqdm", RecordingBar)
    out = tmp_path / "out"
    assert main([str(clip), *model_args, "--out", str(out), "--batch-size", "5"]) == 0
    records = assert_video_results(out, "clip", FRAMES)
    assert sum(len(r["detections"]) for r in records) > 0
    assert sorted(p.name for p in out.iterdir()) == ["clip.jsonl", "clip.mp4"]
    assert f"{clip}: {FRAMES} frames" in capsys.readouterr().out
    assert any(bar.get("total") == FRAMES and bar.get("unit") == "frame" for bar in bars)


def test_vid_stride_keeps_every_nth_frame(model_args, tmp_path, clip):
    out = tmp_path / "out"
    assert main([str(clip), *model_args, "--out", str(out), "--vid-stride", "3"]) == 0
    assert_video_results(out, "clip", 4, stride=3)


def test_file_url_is_read_as_a_stream(model_args, tmp_path, clip):
    # OpenCV's FFmpeg backend in the wheel reads file:// URLs, so no stand-in is needed.
    original = clip.read_bytes()
    assert main([clip.as_uri(), *model_args, "--out", str(clip.parent)]) == 0
    assert_video_results(clip.parent, "clip-2", FRAMES)  # never over the input, even given as a URL
    assert clip.read_bytes() == original


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_video_from_a_pipe(model_args, tmp_path):
    # An .mp4 cannot come through a pipe (its index is at the end); an AVI can.
    clip = write_clip(tmp_path / "clip.avi", fourcc="MJPG")
    pipe = tmp_path / "pipe.avi"
    os.mkfifo(pipe)

    def feed():
        try:
            with open(pipe, "wb") as sink, open(clip, "rb") as data:
                shutil.copyfileobj(data, sink)
        except BrokenPipeError:
            pass

    threading.Thread(target=feed, daemon=True).start()
    out = tmp_path / "out"
    assert main([str(pipe), *model_args, "--out", str(out)]) == 0
    assert_video_results(out, "pipe", FRAMES)


def test_bad_videos_are_one_line_each_and_the_image_is_still_processed(model_args, tmp_path, capsys):
    image = write_image(tmp_path / "pic.png")
    (tmp_path / "garbage.mp4").write_bytes(b"not a video" * 100)
    out = tmp_path / "out"
    code = run_cli(main, [str(tmp_path / "missing.mp4"), str(tmp_path / "garbage.mp4"), str(image), *model_args, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2
    assert any("missing.mp4: no such file" in line for line in errors)
    assert any("garbage.mp4: OpenCV cannot open it as a video file" in line for line in errors)
    assert "2 of 3 inputs failed" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["pic.jpg", "pic.json"]


def test_read_failure_mid_stream_keeps_the_frames_before_it(model_args, tmp_path, clip, capsys, monkeypatch):
    fake_capture(monkeypatch, reads=5, then=None)
    out = tmp_path / "out"
    assert run_cli(main, [str(clip), *model_args, "--out", str(out), "--batch-size", "2"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {clip}: frame 5 of {FRAMES} could not be read (file truncated or damaged)"]
    assert_video_results(out, "clip", 5)


def test_classes_keeps_only_the_named_classes(model_args, tmp_path, clip):
    everything, filtered = tmp_path / "all", tmp_path / "some"
    assert main([str(clip), *model_args, "--out", str(everything)]) == 0
    assert main([str(clip), *model_args, "--out", str(filtered), "--classes", CLASS_NAMES[2], "4"]) == 0
    all_labels = {d["label"] for r in read_lines(everything / "clip.jsonl") for d in r["detections"]}
    kept = [r["detections"] for r in read_lines(filtered / "clip.jsonl")]
    assert len(all_labels) > 2  # an untrained model finds every class: the filter has work to do
    expected = [[d for d in r["detections"] if d["label"] in (2, 4)] for r in read_lines(everything / "clip.jsonl")]
    assert kept == expected and any(kept)


def test_unknown_class_is_one_line_listing_the_names(model_args, tmp_path, clip, capsys):
    code = run_cli(main, [str(clip), *model_args, "--out", str(tmp_path / "out"), "--classes", "zebra"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: --classes zebra: not a class of this model") and all(name in err[0] for name in CLASS_NAMES[1:])


def test_ctrl_c_keeps_complete_results_up_to_there(model_args, tmp_path, clip, capsys, monkeypatch):
    fake_capture(monkeypatch, reads=7, then=KeyboardInterrupt)
    out = tmp_path / "out"
    assert main([str(clip), *model_args, "--out", str(out), "--batch-size", "3"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert_video_results(out, "clip", 6)  # two whole batches; the third was being read


def test_camera_by_device_index(model_args, tmp_path, clip, monkeypatch):
    opened = fake_capture(monkeypatch, reads=5, then=KeyboardInterrupt, source=clip)
    out = tmp_path / "out"
    assert main(["0", *model_args, "--out", str(out), "--batch-size", "1"]) == 130
    assert opened == [0]
    assert_video_results(out, "camera0", 5)


def test_glob_pattern_and_nested_folders(model_args, tmp_path):
    data = tmp_path / "data"
    for name in ["a.png", "sub/b.png", "sub/deeper/c.jpg", "sub/deeper/d.png"]:
        write_image(data / name)
    write_clip(data / "sub" / "movie.mp4", frames=3)
    out = tmp_path / "glob"
    assert main([str(data / "**" / "*.png"), *model_args, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{s}.{e}" for s in "abd" for e in ("jpg", "json"))
    out = tmp_path / "folder"
    assert main([str(data), *model_args, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{s}.{e}" for s in "abcd" for e in ("jpg", "json")] + ["movie.jsonl", "movie.mp4"])
    out = tmp_path / "flat"
    assert main([str(data), *model_args, "--out", str(out), "--no-recursive"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "a.json"]


def test_pattern_matching_nothing_is_one_line(model_args, tmp_path, capsys):
    image = write_image(tmp_path / "pic.png")
    code = run_cli(main, [str(tmp_path / "*.webp"), str(image), *model_args, "--out", str(tmp_path / "out")])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert code == 1 and errors == [f"error: {tmp_path / '*.webp'}: no image or video file matches this pattern"]
    assert (tmp_path / "out" / "pic.json").exists()

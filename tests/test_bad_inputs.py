"""Bad inputs never cost the good ones, and nothing is overwritten.

Every console script and the Python API is given good inputs together with one bad one (generated
here: truncated, empty, mislabelled or oversized files, folders named like images, malformed
annotations, corrupt or unsafe checkpoints, ...). Each case checks the exit status, that no
traceback is printed, that the message names the bad file, and that every good input of the same
call was processed.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from helpers import informative_init
from ssd_deploy.checkpoint import save_checkpoint
from ssd_deploy.cli import run_cli
from ssd_deploy.cli.bench import main as bench_main
from ssd_deploy.cli.detect import main as detect_main
from ssd_deploy.cli.evaluate import main as eval_main
from ssd_deploy.cli.export import main as export_main
from ssd_deploy.cli.train import main as train_main
from ssd_deploy.data.shapes import CLASS_NAMES, render_scene
from ssd_deploy.errors import SSDDeployError
from ssd_deploy.images import read_image
from ssd_deploy.models import create_model
from ssd_deploy.runtimes import load

SIZE = 128  # network input (pixels): small, so that every call here is quick
H, W = 60, 80  # generated images
GOOD = ("good_a.png", "good_b.jpg", "good_c.png")  # the good images of every call


# ----------------------------------------------------------------------------------- bad files


def scene(seed: int = 0, size: tuple[int, int] = (H, W)) -> np.ndarray:
    return render_scene(np.random.default_rng(seed), size).image


def write(path: Path, image: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), scene() if image is None else image)
    return path


def huge_png(path: Path) -> None:
    """A PNG whose header claims 60000 x 60000 pixels (its CRC fixed, so only the size is wrong)."""
    data = bytearray(cv2.imencode(".png", scene())[1].tobytes())
    data[16:24] = struct.pack(">II", 60000, 60000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def huge_jpeg(path: Path) -> None:
    """A JPEG whose frame header claims 60000 x 60000 pixels."""
    data = bytearray(cv2.imencode(".jpg", scene())[1].tobytes())
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = struct.pack(">HH", 60000, 60000)
    path.write_bytes(bytes(data))


def truncated(suffix: str):
    def make(path: Path) -> None:
        write(path.with_suffix(suffix))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return make


def scrambled_png(path: Path) -> None:
    """Header and end marker intact, compressed pixels scrambled: only decoding finds it."""
    write(path)
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") + 8
    data[start : start + 200] = bytes(b ^ 0x5A for b in data[start : start + 200])
    path.write_bytes(bytes(data))


def unreadable(path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root, which reads files whatever their permissions")
    write(path)
    path.chmod(0)


# name of the bad file -> (how to make it, words of the expected message)
BAD_IMAGES = {
    "cut.jpg": (truncated(".jpg"), "truncated JPEG"),
    "cut.png": (truncated(".png"), "truncated PNG"),
    "empty.jpg": (lambda p: p.write_bytes(b""), "empty file"),
    "text.jpg": (lambda p: p.write_text("this is text, not pixels"), "not a readable image"),
    "huge.png": (huge_png, "60000x60000 pixels"),
    "huge.jpg": (huge_jpeg, "60000x60000 pixels"),
    "folder.jpg": (lambda p: p.mkdir(), "a folder, not an image file"),
    "dangling.png": (lambda p: p.symlink_to(p.parent / "gone.png"), "no such file"),
    "scrambled.png": (scrambled_png, "not a readable image"),
    "float.tiff": (lambda p: write(p, scene().astype(np.float32)), "unsupported pixel type float32"),
    "locked.png": (unreadable, "Permission denied"),
}


def good_folder(folder: Path) -> Path:
    for seed, name in enumerate(GOOD):
        write(folder / name, scene(seed))
    return folder


def assert_one_clean_line(captured, name: str, words: str) -> None:
    """No traceback; exactly one error line names the bad file, with the problem."""
    output = captured.out + captured.err
    assert "Traceback" not in output
    lines = [line for line in captured.err.splitlines() if name in line and line.startswith("error: ")]
    assert len(lines) == 1 and words in lines[0], captured.err


# ------------------------------------------------------------------------------------- models


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread for this module: its networks are tiny, and on a busy machine a second
    thread mostly waits for the first. Restored afterwards for the other modules."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = informative_init(create_model("ssdlite_mobilenet_v2", num_classes=len(CLASS_NAMES), input_size=(SIZE, SIZE)))
    return save_checkpoint(tmp_path_factory.mktemp("model") / "model.pt", model, list(CLASS_NAMES))


def wrong_class_count(path: Path, checkpoint: Path) -> None:
    """A checkpoint saying 6 classes whose head holds weights for 4."""
    model = create_model("ssdlite_mobilenet_v2", num_classes=4, input_size=(SIZE, SIZE))
    data = torch.load(save_checkpoint(path, model), weights_only=True)
    data["model_config"] = torch.load(checkpoint, weights_only=True)["model_config"]
    data["class_names"] = list(CLASS_NAMES)
    torch.save(data, path)


class Payload:
    """Unpickling this would run ``os.system``: a checkpoint must never do so."""

    def __reduce__(self):
        return os.system, ("echo pickled code ran",)


BAD_MODELS = {
    "missing.pt": (lambda p, c: None, "no such file"),
    "garbage.pt": (lambda p, c: p.write_bytes(b"garbage"), "not a readable PyTorch checkpoint"),
    "half.pt": (lambda p, c: p.write_bytes(c.read_bytes()[: c.stat().st_size // 2]), "not a readable PyTorch checkpoint"),
    "pickled.pt": (lambda p, c: torch.save({"model": Payload()}, p), "refused to load: it holds objects that are not plain data"),
    "pickled_raw.pt": (lambda p, c: p.write_bytes(pickle.dumps({"model": Payload()}, protocol=2)), "not plain data"),
    "classes.pt": (wrong_class_count, "weights do not fit"),
    "model.engine": (lambda p, c: p.write_bytes(b"not an engine"), "tensorrt"),
    "model.onnx": (lambda p, c: p.write_bytes(b"not onnx"), "model.onnx"),
    "model.xyz": (lambda p, c: p.write_bytes(b"?"), "cannot tell which runtime"),
}


def make_model(tmp_path: Path, name: str, checkpoint: Path) -> tuple[Path, str]:
    make, words = BAD_MODELS[name]
    if name == "model.engine" and tensorrt_installed():
        pytest.skip("TensorRT is installed here: an .engine file is then read by it")
    path = tmp_path / name
    make(path, checkpoint)
    return path, words


def tensorrt_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None


# ----------------------------------------------------------------------------------- ssd-detect


def detect(folder_or_files: list[Path], checkpoint: Path, out: Path, *extra: str) -> int:
    return run_cli(detect_main, [*map(str, folder_or_files), "--checkpoint", str(checkpoint), "--out", str(out), "--score", "0.05", *extra])


def assert_good_results(out: Path, stems=tuple(Path(name).stem for name in GOOD)) -> None:
    for stem in stems:
        record = json.loads((out / f"{stem}.json").read_text())
        assert (record["width"], record["height"]) == (W, H)
        assert cv2.imread(str(out / f"{stem}.jpg")).shape == (H, W, 3)


@pytest.mark.parametrize("name", BAD_IMAGES)
def test_detect_reports_a_bad_image_and_processes_the_good_ones(tmp_path, checkpoint, capsys, name):
    folder = good_folder(tmp_path / "images")
    make, words = BAD_IMAGES[name]
    make(folder / name)
    out = tmp_path / "out"
    assert detect([folder], checkpoint, out, "--batch-size", "2") == 1
    captured = capsys.readouterr()
    assert_one_clean_line(captured, name, words)
    assert "1 of 4 images failed" in captured.err
    assert_good_results(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{Path(g).stem}{s}" for g in GOOD for s in (".jpg", ".json"))


def test_detect_reports_a_missing_file_given_by_name(tmp_path, checkpoint, capsys):
    folder = good_folder(tmp_path / "images")
    assert detect([folder, tmp_path / "nowhere.jpg"], checkpoint, tmp_path / "out") == 1
    assert_one_clean_line(capsys.readouterr(), "nowhere.jpg", "no such file")
    assert_good_results(tmp_path / "out")


def test_detect_out_naming_an_existing_file_is_one_error(tmp_path, checkpoint, capsys):
    folder = good_folder(tmp_path / "images")
    taken = tmp_path / "results.txt"
    taken.write_text("mine")
    assert detect([folder], checkpoint, taken) == 2
    assert_one_clean_line(capsys.readouterr(), "results.txt", "--out names an existing file")
    assert taken.read_text() == "mine"


def test_detect_outputs_of_inputs_sharing_a_stem_never_collide(tmp_path, checkpoint, capsys):
    folder = good_folder(tmp_path / "images")
    write(folder / "pic.tiff", scene(5))
    write(folder / "pic.webp", scene(6))
    out = tmp_path / "out"
    assert detect([folder], checkpoint, out) == 0
    assert "Traceback" not in capsys.readouterr().err
    for name in ("pic.tiff", "pic.webp"):
        assert json.loads((out / f"{name}.json").read_text())["image"] == str(folder / name)
        assert (out / f"{name}.jpg").is_file()
    assert not (out / "pic.json").exists()
    assert_good_results(out)


def test_detect_same_name_in_two_folders_gets_two_results(tmp_path, checkpoint):
    first, second = good_folder(tmp_path / "one"), good_folder(tmp_path / "two")
    out = tmp_path / "out"
    assert detect([first, second], checkpoint, out) == 0
    assert json.loads((out / "good_a.json").read_text())["image"] == str(first / "good_a.png")
    assert json.loads((out / "good_a-2.json").read_text())["image"] == str(second / "good_a.png")
    assert len(list(out.glob("*.json"))) == 6


def test_detect_never_overwrites_an_input_when_out_is_the_image_folder(tmp_path, checkpoint):
    folder = good_folder(tmp_path / "images")
    before = {name: (folder / name).read_bytes() for name in GOOD}
    assert detect([folder], checkpoint, folder) == 0
    assert {name: (folder / name).read_bytes() for name in GOOD} == before  # good_b.jpg is an input
    assert json.loads((folder / "good_b-2.json").read_text())["image"] == str(folder / "good_b.jpg")
    assert (folder / "good_a.json").is_file() and (folder / "good_a.jpg").is_file()


@pytest.mark.parametrize("name", BAD_MODELS)
def test_detect_bad_model_is_one_line_naming_it(tmp_path, checkpoint, capsys, name):
    model, words = make_model(tmp_path, name, checkpoint)
    folder = good_folder(tmp_path / "images")
    assert detect([folder], model, tmp_path / "out") == 2
    captured = capsys.readouterr()
    assert_one_clean_line(captured, name, words)
    assert "pickled code ran" not in captured.out + captured.err
    assert not (tmp_path / "out").exists()  # nothing written, not even the folder


# ------------------------------------------------------------------------- datasets: eval, train

GOOD_RECORDS = ("good_1", "good_2", "good_3", "good_4")
CIRCLE = ("circle", 11, 11, 30, 30)  # VOC: 1-based, both ends included


def voc_xml(filename: str, objects: list[tuple]) -> str:
    body = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for name, x1, y1, x2, y2 in objects
    )
    return f"<annotation><filename>{filename}</filename><size><width>{W}</width><height>{H}</height></size>{body}</annotation>"


# stem of the bad record -> (XML text, what to do with its image, the file the message names, words)
BAD_RECORDS = {
    "malformed": ("<annotation><object>", None, "Annotations/malformed.xml", "not valid XML"),
    "outside": (voc_xml("outside.png", [("star", 101, 11, 120, 30)]), "write", "Annotations/outside.xml", "entirely outside the image"),
    "zero_width": (voc_xml("zero_width.png", [("square", 21, 11, 20, 30)]), "write", "Annotations/zero_width.xml", "zero area"),
    "inverted": (voc_xml("inverted.png", [("square", 41, 11, 30, 30)]), "write", "Annotations/inverted.xml", "inverted coordinates"),
    "unknown": (voc_xml("unknown.png", [("dragon", 11, 11, 30, 30)]), "write", "Annotations/unknown.xml", "class not in the label map"),
    "missing_image": (voc_xml("missing_image.png", [CIRCLE]), None, "JPEGImages/missing_image.png", "no such file"),
    "unreadable_image": (voc_xml("unreadable_image.png", [CIRCLE]), "text", "JPEGImages/unreadable_image.png", "not a readable image"),
    "huge_image": (voc_xml("huge_image.png", [CIRCLE]), "huge", "JPEGImages/huge_image.png", "60000x60000 pixels"),
    "no_number": (voc_xml("no_number.png", [("circle", "left", 11, 30, 30)]), "write", "Annotations/no_number.xml", "expected a number"),
}
BOX_RECORDS = ("outside", "zero_width", "inverted", "unknown")
SEVEN = ("malformed", "outside", "zero_width", "inverted", "unknown", "missing_image", "unreadable_image")  # the issue's


def voc_dataset(root: Path, bad: tuple[str, ...]) -> Path:
    """A VOC folder with the four good records and the given bad ones; labels.txt fixes the classes."""
    (root / "Annotations").mkdir(parents=True)
    for seed, stem in enumerate(GOOD_RECORDS):
        write(root / "JPEGImages" / f"{stem}.png", scene(seed))
        (root / "Annotations" / f"{stem}.xml").write_text(voc_xml(f"{stem}.png", [CIRCLE]))
    for stem in bad:
        xml, image, _, _ = BAD_RECORDS[stem]
        (root / "Annotations" / f"{stem}.xml").write_text(xml)
        path = root / "JPEGImages" / f"{stem}.png"
        if image == "write":
            write(path)
        elif image == "text":
            path.write_text("not pixels")
        elif image == "huge":
            huge_png(path)
    (root / "labels.txt").write_text("\n".join(CLASS_NAMES[1:]))
    return root


def named_lines(text: str, root: Path, stem: str) -> list[str]:
    return [line for line in text.splitlines() if str(root / BAD_RECORDS[stem][2]) in line]


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["--data", str(data), "--arch", "ssdlite_mobilenet_v2", "--input-size", "96", "96", "--batch-size", "2", "--epochs", "1",
            "--workers", "0", "--precise-bn-images", "0", "--augment", "false", "--progress", "false", "--tensorboard", "false",
            "--device", "cpu", "--output", str(out), *extra]


@pytest.fixture(scope="module")
def train_runs(tmp_path_factory):
    """ssd-train on a VOC folder with the seven bad records of the issue: stopping, then skipping."""
    import contextlib
    import io

    data = voc_dataset(tmp_path_factory.mktemp("voc") / "train", SEVEN)
    runs = {}
    for policy, extra in (("stop", ()), ("skip", ("--skip-bad-data",))):
        out = data.parent / f"run-{policy}"
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = run_cli(train_main, train_args(data, out, *extra))
        runs[policy] = (code, stdout.getvalue(), stderr.getvalue(), out)
    return data, runs


@pytest.mark.parametrize("stem", SEVEN)
def test_train_stop_policy_lists_every_bad_record_at_once(train_runs, stem):
    data, runs = train_runs
    code, out, err, run = runs["stop"]
    assert code == 2 and "Traceback" not in out + err
    assert err.startswith(f"error: {data}: 7 problems:")
    lines = named_lines(err, data, stem)
    assert len(lines) == 1 and BAD_RECORDS[stem][3] in lines[0]
    assert not (run / "last.pt").exists()


@pytest.mark.parametrize("stem", SEVEN)
def test_train_skip_policy_skips_and_counts_every_kind(train_runs, stem):
    data, runs = train_runs
    code, out, err, run = runs["skip"]
    assert code == 0 and "Traceback" not in out + err
    lines = named_lines(err, data, stem)
    assert len(lines) == 1 and lines[0].startswith("warning: ") and BAD_RECORDS[stem][3] in lines[0]
    # The good records, and those whose only box was dropped (an image without objects is a valid sample).
    assert f"data: {len(GOOD_RECORDS) + len(BOX_RECORDS)} training images" in out
    counts = "skipped 4 boxes (1 inverted, 1 outside, 1 unknown label, 1 zero-area), 3 images (1 malformed annotation, 1 missing, 1 unreadable)"
    assert f"data (train): {counts}" in out
    assert (run / "last.pt").is_file()


def test_train_output_naming_an_existing_file_is_one_error(tmp_path, capsys):
    data = voc_dataset(tmp_path / "train", ())
    taken = tmp_path / "run.txt"
    taken.write_text("mine")
    assert run_cli(train_main, train_args(data, taken)) == 2
    assert_one_clean_line(capsys.readouterr(), "run.txt", "--output names an existing file")
    assert taken.read_text() == "mine"


def evaluate(checkpoint: Path, data: Path, out: Path, *extra: str) -> int:
    return run_cli(eval_main, ["--model", str(checkpoint), "--data", str(data), "--out", str(out), "--no-progress", "--metrics", "voc", "--batch-size", "2", *extra])


@pytest.mark.parametrize("stem", BAD_RECORDS)
def test_eval_skips_a_bad_record_and_evaluates_the_good_ones(tmp_path, checkpoint, capsys, stem):
    data = voc_dataset(tmp_path / "voc", (stem,))
    out = tmp_path / "out"
    assert evaluate(checkpoint, data, out, "--skip-bad-data") == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    lines = named_lines(captured.err, data, stem)
    assert len(lines) == 1 and lines[0].startswith("warning: ") and BAD_RECORDS[stem][3] in lines[0]
    kept = stem in BOX_RECORDS  # a bad box drops the box, not its image
    assert json.loads((out / "metrics.json").read_text())["images"] == len(GOOD_RECORDS) + kept
    assert "data: skipped 1 " in captured.out


def test_eval_stop_policy_names_every_bad_record(tmp_path, checkpoint, capsys):
    data = voc_dataset(tmp_path / "voc", tuple(BAD_RECORDS))
    assert evaluate(checkpoint, data, tmp_path / "out") == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert captured.err.startswith(f"error: {data}: {len(BAD_RECORDS)} problems:")
    assert all(len(named_lines(captured.err, data, stem)) == 1 for stem in BAD_RECORDS)


def test_eval_image_failing_to_decode_is_left_out_with_exit_1(tmp_path, checkpoint, capsys):
    data = voc_dataset(tmp_path / "voc", ())
    (data / "Annotations" / "scrambled.xml").write_text(voc_xml("scrambled.png", [CIRCLE]))
    scrambled_png(data / "JPEGImages" / "scrambled.png")  # passes the header scan, fails to decode
    out = tmp_path / "out"
    assert evaluate(checkpoint, data, out) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    lines = [line for line in captured.err.splitlines() if "scrambled.png" in line]
    assert len(lines) == 1 and "not a readable image" in lines[0]
    assert json.loads((out / "metrics.json").read_text())["images"] == 4  # evaluated: the good ones
    assert len(list(out.glob("*.jpg"))) == 4  # the four good ones drawn


def test_eval_out_naming_an_existing_file_is_one_error(tmp_path, checkpoint, capsys):
    data = voc_dataset(tmp_path / "voc", ())
    taken = tmp_path / "metrics.txt"
    taken.write_text("mine")
    assert evaluate(checkpoint, data, taken) == 2
    assert_one_clean_line(capsys.readouterr(), "metrics.txt", "--out names an existing file")
    assert taken.read_text() == "mine"


@pytest.mark.parametrize("name", ["garbage.pt", "classes.pt", "model.engine"])
def test_eval_bad_model_is_one_line_naming_it(tmp_path, checkpoint, capsys, name):
    model, words = make_model(tmp_path, name, checkpoint)
    assert evaluate(model, voc_dataset(tmp_path / "voc", ()), tmp_path / "out") == 2
    assert_one_clean_line(capsys.readouterr(), name, words)


# ------------------------------------------------------------------------ ssd-bench, ssd-export


def bench(checkpoint: Path, images: Path, out: Path) -> int:
    return run_cli(bench_main, [
        "latency", str(checkpoint), "--runtimes", "pytorch", "--precisions", "fp32", "--batch-sizes", "4", "--warmup", "1",
        "--iterations", "1", "--max-seconds", "1", "--images", str(images), "--no-baseline", "--no-split", "--no-plot",
        "--no-verify", "--no-progress", "--threads", "1", "--out", str(out),
    ])  # fmt: skip


@pytest.mark.parametrize("name", ["cut.jpg", "huge.png", "text.jpg"])
def test_bench_leaves_out_a_bad_image_and_measures_on_the_good_ones(tmp_path, checkpoint, capsys, name):
    folder = good_folder(tmp_path / "images")
    make, words = BAD_IMAGES[name]
    make(folder / name)
    out = tmp_path / "out"
    seen = []
    import ssd_deploy.bench.images as bench_images

    real = bench_images.read_image
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench_images, "read_image", lambda path: seen.append(Path(path).name) or real(path))
        assert bench(checkpoint, folder, out) == 1
    assert_one_clean_line(capsys.readouterr(), name, words)
    assert set(GOOD) <= set(seen)  # every good image was read for the benchmark
    report = json.loads((out / "latency.json").read_text())
    assert [row["batch"] for row in report["results"]] == [4] and len(report["unreadable_images"]) == 1
    assert name in report["unreadable_images"][0]


def test_bench_out_naming_an_existing_file_is_one_error(tmp_path, checkpoint, capsys):
    taken = tmp_path / "bench.txt"
    taken.write_text("mine")
    assert bench(checkpoint, good_folder(tmp_path / "images"), taken) == 2
    assert_one_clean_line(capsys.readouterr(), "bench.txt", "--out names an existing file")
    assert taken.read_text() == "mine"


@pytest.mark.parametrize("name", ["missing.pt", "garbage.pt", "half.pt", "pickled.pt", "classes.pt"])
def test_export_bad_checkpoint_is_one_line_naming_it(tmp_path, checkpoint, capsys, name):
    model, words = make_model(tmp_path, name, checkpoint)
    assert run_cli(export_main, ["--checkpoint", str(model), "--format", "onnx", "--no-verify"]) == 2
    captured = capsys.readouterr()
    assert_one_clean_line(captured, name, words)
    assert "pickled code ran" not in captured.out + captured.err
    assert not list(tmp_path.glob("*.onnx"))


def test_export_never_overwrites_the_checkpoint(tmp_path, checkpoint, capsys):
    own = tmp_path / "model.pt"
    own.write_bytes(checkpoint.read_bytes())
    assert run_cli(export_main, ["--checkpoint", str(own), "--format", "torchscript", "--output", str(own), "--no-verify"]) == 2
    assert_one_clean_line(capsys.readouterr(), "model.pt", "is the checkpoint being exported")
    assert own.read_bytes() == checkpoint.read_bytes()


# ---------------------------------------------------------------------------------- Python API


@pytest.mark.parametrize("name", BAD_MODELS)
def test_api_load_bad_model_names_it(tmp_path, checkpoint, name):
    model, words = make_model(tmp_path, name, checkpoint)
    with pytest.raises(SSDDeployError) as error:
        load(model)
    assert str(model) in str(error.value) and words in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", BAD_IMAGES)
def test_api_read_image_names_the_bad_file(tmp_path, name):
    make, words = BAD_IMAGES[name]
    make(tmp_path / name)
    with pytest.raises(SSDDeployError) as error:
        read_image(tmp_path / name)
    assert str(error.value).startswith(f"{tmp_path / name}: ") and words in str(error.value)


@pytest.mark.parametrize("bad, words", [(None, "image 1: not an image array"), (np.zeros((0, 5, 3), np.uint8), "image 1: not an image array"),
                                        (np.zeros((8, 8, 2), np.uint8), "image 1: 2 channels"),
                                        (np.zeros((8, 8, 3), np.float64), "image 1: unsupported pixel type float64")])
def test_api_detect_names_a_bad_array_and_keeps_working(checkpoint, bad, words):
    good = [scene(seed) for seed in range(2)]
    with load(checkpoint, min_score=0.05) as detector:
        with pytest.raises(SSDDeployError, match=words):
            detector.detect([good[0], bad, good[1]])
        results = detector.detect(good)  # the same detector goes on with the good ones
    assert len(results) == 2 and all(len(result) > 0 for result in results)


def test_api_calibration_leaves_out_bad_images_with_one_line_each(tmp_path, capsys):
    from ssd_deploy.calibration import CalibrationBatches

    folder = good_folder(tmp_path / "images")
    for name in ("cut.png", "huge.jpg", "text.jpg"):
        BAD_IMAGES[name][0](folder / name)
    batches = CalibrationBatches.from_folder(folder, (SIZE, SIZE), batch_size=2)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    for name in ("cut.png", "huge.jpg", "text.jpg"):
        assert_one_clean_line(captured, name, BAD_IMAGES[name][1])
    assert sorted(path.name for path in batches.paths) == sorted(GOOD) and len(batches.unreadable) == 3
    assert [batch.shape for batch in batches] == [(2, 3, SIZE, SIZE), (2, 3, SIZE, SIZE)]  # all three good ones, padded


def coco_dataset(root: Path, bad_annotation: dict) -> Path:
    """A COCO file over the four good images, one of them with a malformed annotation entry."""
    images = [{"id": i, "file_name": f"JPEGImages/{stem}.png", "width": W, "height": H} for i, stem in enumerate(GOOD_RECORDS)]
    for seed, stem in enumerate(GOOD_RECORDS):
        write(root / "JPEGImages" / f"{stem}.png", scene(seed))
    annotations = [{"id": i, "image_id": i, "category_id": 1, "bbox": [10, 10, 20, 20]} for i in range(len(GOOD_RECORDS))]
    annotations.append({"id": 99, "image_id": 3, **bad_annotation})
    categories = [{"id": i, "name": name} for i, name in enumerate(CLASS_NAMES[1:], start=1)]
    (root / "annotations.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return root / "annotations.json"


@pytest.mark.parametrize("bad, words", [({"category_id": 1, "bbox": [1, 2, 3]}, "bbox [1, 2, 3]"), ({"bbox": [1, 1, 5, 5]}, "no 'category_id'")])
@pytest.mark.parametrize("skip", [True, False])
def test_eval_coco_malformed_annotation_is_named_and_skipped_on_request(tmp_path, checkpoint, capsys, bad, words, skip):
    data = coco_dataset(tmp_path / "coco", bad)
    out = tmp_path / "out"
    assert evaluate(checkpoint, data, out, *(["--skip-bad-data"] if skip else [])) == (0 if skip else 2)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    lines = [line for line in captured.err.splitlines() if str(data) in line and "image 3: annotation 99" in line]
    assert len(lines) == 1 and words in lines[0]
    if skip:  # the image with the malformed entry is left out, the three others evaluated
        assert json.loads((out / "metrics.json").read_text())["images"] == 3
        assert "data: skipped 1 image (1 malformed annotation)" in captured.out

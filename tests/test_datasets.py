"""Datasets: VOC, COCO and Open Images CSV files written here, with every kind of bad data."""

from __future__ import annotations

import json
import logging
import pickle
import re
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from torch.utils.data import DataLoader

from ssd_deploy.data import DetectionDataset, detect_format, load_dataset, with_background
from ssd_deploy.data.shapes import CLASS_NAMES, SHAPE_CLASSES, generate_shapes_dataset, render_scene
from ssd_deploy.errors import ConfigError, DatasetError, SSDDeployError

H, W = 60, 80  # size of the images written here


def write_image(path: Path, size: tuple[int, int] = (H, W), seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), render_scene(np.random.default_rng(seed), size).image)
    return path


def cut_in_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def corrupt_png_data(path: Path) -> None:
    """Scramble compressed pixels: the header (size) and the IEND end marker stay intact."""
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") + 8
    data[start : start + 200] = bytes(b ^ 0x5A for b in data[start : start + 200])
    path.write_bytes(bytes(data))


def write_voc_xml(root: Path, stem: str, filename: str, objects: list[tuple], size: tuple[int, int] | None = (H, W)) -> None:
    """objects: (name, xmin, ymin, xmax, ymax[, difficult]) in VOC's 1-based inclusive pixels."""
    size_xml = f"<size><width>{size[1]}</width><height>{size[0]}</height><depth>3</depth></size>" if size else ""
    body = "".join(
        f"<object><name>{name}</name><difficult>{rest[0] if rest else 0}</difficult>"
        f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for name, x1, y1, x2, y2, *rest in objects
    )
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "Annotations" / f"{stem}.xml").write_text(f"<annotation><filename>{filename}</filename>{size_xml}{body}</annotation>")


# ---------------------------------------------------------------------------------------- VOC


def test_voc_boxes_difficult_split_and_size_from_the_image_header(tmp_path):
    root = tmp_path / "voc"
    write_image(root / "JPEGImages" / "one.jpg")
    write_image(root / "JPEGImages" / "two.png", size=(30, 50))
    write_voc_xml(root, "one", "one.jpg", [("square", 1, 1, 10, 20), ("circle", 11, 21, 30, 40, 1)])
    write_voc_xml(root, "two", "two.png", [("circle", 5, 5, 25, 25)], size=None)  # no <size>: read from the file
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("two\n")

    dataset = load_dataset(root)
    assert detect_format(root) == "voc" and dataset.class_names == ["__background__", "circle", "square"]  # sorted
    one, two = dataset.records
    # VOC's 1-based inclusive xmin=1, xmax=10 covers columns 0..9: continuous x1=0, x2=10.
    np.testing.assert_array_equal(one.boxes, np.array([[0, 0, 10, 20], [10, 20, 30, 40]], np.float32))
    assert one.labels.tolist() == [2, 1] and one.difficult.tolist() == [False, True]
    assert (one.height, one.width, one.image_id) == (H, W, 0)
    assert (two.height, two.width, two.image_id) == (30, 50, 1)

    image, target = dataset[1]
    assert image.shape == (30, 50, 3) and image.dtype == np.uint8
    assert target["orig_size"] == (30, 50) and target["path"] == str(root / "JPEGImages" / "two.png")
    assert target["boxes"].dtype == np.float32 and target["labels"].dtype == np.int64 and target["difficult"].dtype == bool

    train = load_dataset(root, split="train")
    assert [r.path.name for r in train.records] == ["two.png"] and train.class_names == ["__background__", "circle"]
    assert len(load_dataset(root, keep_difficult=False).records[0].boxes) == 1
    with pytest.raises(DatasetError, match=r"split 'val' not found. Note: known splits: train"):
        load_dataset(root, split="val")


@pytest.mark.parametrize(
    "xml, problem",
    [
        ("<annotation><filename>a.png</filename><object>", "not valid XML"),
        (
            "<annotation><filename>a.png</filename><object><name>circle</name></object></annotation>",
            "object 1 (circle) has no <bndbox>",
        ),
        (
            "<annotation><filename>a.png</filename><object><name>circle</name><bndbox><xmin>1</xmin><ymin>x</ymin>"
            "<xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>",
            "object 1 <bndbox><ymin> is 'x'",
        ),
        ("<annotation><filename>a.png</filename><object><bndbox/></object></annotation>", "object 1 has no <name>"),
    ],
)
def test_malformed_voc_xml_names_the_file(tmp_path, xml, problem):
    write_image(tmp_path / "JPEGImages" / "a.png")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text(xml)
    with pytest.raises(DatasetError, match=re.escape(f"{tmp_path / 'Annotations' / 'a.xml'}: {problem}")):
        load_dataset(tmp_path)


# ---------------------------------------------------------------------------------------- COCO


def coco_file(tmp_path: Path, annotations: list[dict], **changes) -> Path:
    data = {
        "images": [
            {"id": 42, "file_name": "a.png", "width": W, "height": H},
            {"id": 43, "file_name": "b.png", "width": W, "height": H},  # no objects
        ],
        "annotations": annotations,
        "categories": [{"id": 7, "name": "square"}, {"id": 3, "name": "circle"}],  # not in id order, with gaps
        **changes,
    }
    path = tmp_path / "ann" / "instances.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_coco_category_ids_crowd_and_images_dir(tmp_path):
    images = tmp_path / "pictures"
    write_image(images / "a.png")
    write_image(images / "b.png")
    annotations = [
        {"id": 1, "image_id": 42, "category_id": 7, "bbox": [10, 5, 20, 30], "iscrowd": 0},
        {"id": 2, "image_id": 42, "category_id": 3, "bbox": [0.5, 1.5, 10, 10], "iscrowd": 1},
    ]
    dataset = load_dataset(coco_file(tmp_path, annotations), images_dir=images)
    assert dataset.class_names == ["__background__", "circle", "square"]  # category-id order: 3, 7
    a, b = dataset.records
    np.testing.assert_array_equal(a.boxes, np.array([[10, 5, 30, 35], [0.5, 1.5, 10.5, 11.5]], np.float32))
    assert a.labels.tolist() == [2, 1] and a.difficult.tolist() == [False, True]  # crowd -> difficult
    assert (a.image_id, b.image_id) == (42, 43) and len(b.boxes) == 0
    assert dataset.report.images_without_objects == 1 and dataset[1][1]["image_id"] == 43
    # The training set's label map: names decide the labels.
    mapped = load_dataset(coco_file(tmp_path, annotations), images_dir=images, class_names=["square", "circle"])
    assert mapped.records[0].labels.tolist() == [1, 2]


def test_coco_unknown_category_is_an_unknown_label(tmp_path):
    write_image(tmp_path / "ann" / "a.png")
    write_image(tmp_path / "ann" / "b.png")
    path = coco_file(tmp_path, [{"id": 5, "image_id": 42, "category_id": 9, "bbox": [1, 1, 5, 5]}])
    image = tmp_path / "ann" / "a.png"
    with pytest.raises(DatasetError, match=re.escape(f"1 problem:\n  {image}: annotation 5 (category id 9) box [1, 1, 6, 6]: class not")):
        load_dataset(path)
    dataset = load_dataset(path, skip_bad=True)
    assert dataset.report.skipped_boxes() == Counter({"unknown label": 1}) and dataset.report.images_without_objects == 2


ONE_IMAGE = {"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1, "name": "a"}]}


@pytest.mark.parametrize(
    "text, problem",
    [
        ("{not json", "not a readable JSON file"),
        (json.dumps({"images": [], "annotations": []}), "no 'categories' list"),
        (json.dumps({"images": [{"id": 1}], "annotations": [], "categories": []}), "image 1 has no 'file_name'"),
        (json.dumps({**ONE_IMAGE, "annotations": [{"id": 3, "image_id": 1, "category_id": 1}]}), "image 1: annotation 3 has no 'bbox'"),
        (
            json.dumps({**ONE_IMAGE, "annotations": [{"id": 3, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3]}]}),
            "image 1: annotation 3: bbox [1, 2, 3]. Note: expected [x, y, width, height]",
        ),
        (
            json.dumps({**ONE_IMAGE, "annotations": [{"id": 3, "image_id": 8, "category_id": 1, "bbox": [1, 2, 3, 4]}]}),
            "annotations for image id 8, which is not in 'images'",
        ),
        (
            json.dumps({**ONE_IMAGE, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "a"}], "annotations": []}),
            "category names repeated: a",
        ),
    ],
)
def test_malformed_coco_json_names_the_file(tmp_path, text, problem):
    path = tmp_path / "instances.json"
    path.write_text(text)
    with pytest.raises(DatasetError, match=re.escape(f"{path}: {problem}")):
        load_dataset(path)


# ---------------------------------------------------------------------------------------- CSV


def test_open_images_csv_fractions_become_pixels_with_any_column_order(tmp_path):
    write_image(tmp_path / "images" / "wide.jpg", size=(100, 200))
    write_image(tmp_path / "images" / "small.png", size=(50, 50))
    (tmp_path / "classes.csv").write_text("/m/cat,Cat\n/m/dog,Dog\n")
    (tmp_path / "boxes.csv").write_text(
        "LabelName,XMax,ImageID,Source,YMin,XMin,YMax,IsGroupOf\n"
        "/m/cat,0.5,wide,xclick,0.2,0.1,0.6,0\n"
        "/m/dog,1.1,wide,xclick,0.0,0.75,0.5,1\n"  # XMax past the edge: clipped
        "/m/dog,0.5,small,xclick,0.5,0.25,1.0,0\n"
        "/m/emu,0.5,small,xclick,0.5,0.25,1.0,0\n"  # not in the descriptions: an unknown label
    )
    images, boxes = tmp_path / "images", tmp_path / "boxes.csv"
    load = lambda **kw: load_dataset(boxes, images_dir=images, descriptions=tmp_path / "classes.csv", **kw)
    with pytest.raises(DatasetError, match=re.escape(f"1 problem:\n  {images / 'small.png'}: row 5 (/m/emu) box [12.5, 25, 25, 50]")):
        load()
    dataset = load(skip_bad=True)
    assert detect_format(tmp_path / "boxes.csv") == "csv" and dataset.class_names == ["__background__", "Cat", "Dog"]
    wide, small = dataset.records
    np.testing.assert_allclose(wide.boxes, [[20, 20, 100, 60], [150, 0, 200, 50]])  # fractions x (200, 100)
    assert wide.labels.tolist() == [1, 2] and wide.difficult.tolist() == [False, True]  # IsGroupOf -> difficult
    np.testing.assert_allclose(small.boxes, [[12.5, 25, 25, 50]])
    assert (small.height, small.width, small.image_id) == (50, 50, 1)
    assert dataset.report.clipped_boxes == 1 and dataset.report.skipped_boxes() == Counter({"unknown label": 1})
    assert load_dataset(boxes, images_dir=images).class_names == ["__background__", "/m/cat", "/m/dog", "/m/emu"]  # MIDs


@pytest.mark.parametrize(
    "text, problem",
    [
        ("ImageID,LabelName,XMin,YMin,YMax\nwide,/m/cat,0.1,0.2,0.6\n", "missing column(s) XMax. Note: expected a header with ImageID,"),
        ("ImageID,LabelName,XMin,XMax,YMin,YMax\nwide,/m/cat,0.1,half,0.2,0.6\n", "row 2: XMax is 'half'"),
        ("ImageID,LabelName,XMin,XMax,YMin,YMax\nwide,/m/cat,0.1\n", "row 2: fewer fields than the header"),
        ("", "missing column(s) ImageID, LabelName"),
    ],
)
def test_malformed_csv_names_the_file(tmp_path, text, problem):
    (tmp_path / "boxes.csv").write_text(text)
    with pytest.raises(DatasetError, match=re.escape(f"{tmp_path / 'boxes.csv'}: {problem}")):
        load_dataset(tmp_path / "boxes.csv")


# ---------------------------------------------------------------------------------------- bad data


@pytest.fixture
def bad_voc(tmp_path) -> Path:
    """Six usable images (one empty, one left empty) and one of each bad kind of box and image file."""
    root = tmp_path / "bad"
    images = root / "JPEGImages"
    good = ("circle", 11, 11, 30, 30)
    objects = {
        "a_good": [good, ("square", -9, 41, 20, 70, 1)],  # the square is partly outside: clipped
        "b_empty": [],
        "c_zero": [("circle", 21, 11, 20, 30), good],  # x1 = x2 = 20
        "d_inverted": [("square", 41, 11, 30, 30), good],
        "e_outside": [("star", 101, 11, 120, 30)],  # x1 = 100 >= width 80; the image is then empty
        "f_unknown": [("dragon", 11, 11, 30, 30), good],
        "g_missing": [good],
        "h_text": [good],
        "i_cut_png": [good],
        "j_cut_jpg": [good],
        "k_empty_file": [good],
        "l_size": [good],  # the annotation says 80 x 60, the file is 40 x 30
    }
    for stem, boxes in objects.items():
        name = f"{stem}.jpg" if stem == "j_cut_jpg" else f"{stem}.png"
        write_voc_xml(root, stem, name, boxes)
        if stem != "g_missing":
            write_image(images / name, size=(30, 40) if stem == "l_size" else (H, W))
    (images / "h_text.png").write_bytes(b"not an image at all")
    cut_in_half(images / "i_cut_png.png")
    cut_in_half(images / "j_cut_jpg.jpg")
    (images / "k_empty_file.png").write_bytes(b"")
    return root


def test_bad_data_raises_one_error_listing_every_problem_with_file_names(bad_voc):
    with pytest.raises(DatasetError) as error:
        load_dataset(bad_voc, class_names=SHAPE_CLASSES)
    lines = str(error.value).splitlines()
    annotations, images = bad_voc / "Annotations", bad_voc / "JPEGImages"
    assert lines[0] == f"{bad_voc}: 10 problems:"
    assert lines[1:6] == [
        f"  {annotations / 'c_zero.xml'}: object 1 (circle) box [20, 10, 20, 30]: zero area",
        f"  {annotations / 'd_inverted.xml'}: object 1 (square) box [40, 10, 30, 30]: inverted coordinates (x2 < x1 or y2 < y1)",
        f"  {annotations / 'e_outside.xml'}: object 1 (star) box [100, 10, 120, 30]: entirely outside the image (80x60)",
        f"  {annotations / 'f_unknown.xml'}: object 1 (dragon) box [10, 10, 30, 30]: class not in the label map",
        f"  {images / 'g_missing.png'}: no such file",
    ]
    # All ten are listed, not the first few, one line each.
    named = ["h_text.png", "i_cut_png.png", "j_cut_jpg.jpg", "k_empty_file.png", "l_size.png"]
    assert [line.split(": ")[0] for line in lines[6:11]] == [f"  {images / name}" for name in named]
    assert lines[11] == "Note: fix them, or pass skip_bad=True (ssd-train/ssd-eval --skip-bad-data) to skip them"
    # Without a label map, "dragon" is a class of its own.
    with pytest.raises(DatasetError, match=f"{re.escape(str(bad_voc))}: 9 problems"):
        load_dataset(bad_voc)


def test_skip_bad_drops_exactly_the_bad_boxes_and_images_and_warns_once_per_file(bad_voc, caplog):
    with caplog.at_level(logging.WARNING, logger="ssd_deploy.data"):
        dataset = load_dataset(bad_voc, class_names=SHAPE_CLASSES, skip_bad=True)
    report = dataset.report
    assert [r.path.stem for r in dataset.records] == ["a_good", "b_empty", "c_zero", "d_inverted", "e_outside", "f_unknown"]
    assert report.skipped_boxes() == Counter({"zero-area": 1, "inverted": 1, "outside": 1, "unknown label": 1})
    assert report.skipped_images() == Counter({"truncated": 2, "missing": 1, "unreadable": 1, "empty": 1, "size mismatch": 1})
    assert (report.images, report.boxes, report.clipped_boxes, report.images_without_objects) == (6, 5, 1, 2)
    assert report.summary() == (
        "skipped 4 boxes (1 zero-area, 1 inverted, 1 outside, 1 unknown label), "
        "6 images (2 truncated, 1 missing, 1 unreadable, 1 empty, 1 size mismatch); 1 box clipped; 2 images without objects"
    )
    a_good = dataset.records[0]
    np.testing.assert_array_equal(a_good.boxes, np.array([[10, 10, 30, 30], [0, 40, 20, 60]], np.float32))
    assert a_good.labels.tolist() == [1, 2] and a_good.difficult.tolist() == [False, True]  # CLASS_NAMES' labels
    assert [r.labels.tolist() for r in dataset.records[2:]] == [[1], [1], [], [1]]

    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    bad_files = ["c_zero.xml", "d_inverted.xml", "e_outside.xml", "f_unknown.xml", "g_missing.png", "h_text.png", "i_cut_png.png",
                 "j_cut_jpg.jpg", "k_empty_file.png", "l_size.png"]
    assert len(warnings) == len(bad_files) and all(name in warning for name, warning in zip(bad_files, warnings))
    kinds = {
        "h_text.png": "not a readable image",
        "i_cut_png.png": "truncated PNG (no IEND chunk)",
        "j_cut_jpg.jpg": "truncated JPEG (no end-of-image marker)",
        "k_empty_file.png": "empty file",
        "l_size.png": "the annotation says 80x60 (width x height), the image is 40x30",
    }
    assert all(kinds[name] in warning for name, warning in zip(bad_files, warnings) if name in kinds)

    dropped = load_dataset(bad_voc, class_names=SHAPE_CLASSES, skip_bad=True, keep_difficult=False).report
    assert (dropped.boxes, dropped.difficult_dropped) == (4, 1)


def test_load_time_scan_reads_headers_only(bad_voc, monkeypatch):
    from PIL import Image

    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was decoded at load time")

    monkeypatch.setattr("ssd_deploy.data.scan.read_image", no_decoding)
    monkeypatch.setattr(Image.Image, "load", no_decoding)
    # h_text.png is not an image Pillow knows, so only it falls back to OpenCV (and is reported).
    with pytest.raises(AssertionError, match="decoded at load time"):
        load_dataset(bad_voc, class_names=SHAPE_CLASSES, skip_bad=True)
    (bad_voc / "JPEGImages" / "h_text.png").unlink()
    assert len(load_dataset(bad_voc, class_names=SHAPE_CLASSES, skip_bad=True)) == 6


# ---------------------------------------------------------------------------------------- reading


@pytest.fixture
def shapes(tmp_path) -> Path:
    return generate_shapes_dataset(tmp_path / "shapes", 4, seed=1, size=(48, 64), progress=False)


def test_an_image_that_fails_to_decode_is_reported_once_and_the_next_returned(shapes, caplog):
    broken = shapes / "JPEGImages" / "shapes_00001.png"
    corrupt_png_data(broken)  # passes the load-time scan: its header and end marker are intact
    dataset = load_dataset(shapes, "coco")
    assert len(dataset) == 4
    with caplog.at_level(logging.WARNING, logger="ssd_deploy.data"):
        assert dataset[1][1]["image_id"] == 2 and dataset[1][1]["image_id"] == 2 and dataset[2][1]["image_id"] == 2
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"{broken}: not a readable image (OpenCV could not decode it). Skipped: reading the next image instead"
    ]
    assert dataset.report.read_failures == [str(broken)]
    assert dataset.report.summary() == "1 image failed to decode when read (skipped)"

    (shapes / "JPEGImages" / "shapes_00003.png").unlink()  # gone since loading: the last wraps to the first
    assert dataset[3][1]["image_id"] == 0 and len(dataset.report.read_failures) == 2
    for name in ("shapes_00000.png", "shapes_00002.png"):
        (shapes / "JPEGImages" / name).unlink()
    with pytest.raises(DatasetError, match="none of the 4 images can be read"):
        dataset[0]
    with pytest.raises(IndexError):
        dataset[4]


def test_dataloader_transform_and_pickling(shapes):
    seen = []
    transform = lambda image, target: (image.shape, target["image_id"], len(target["boxes"]))
    dataset = load_dataset(shapes, class_names=CLASS_NAMES, transform=transform)
    for batch in DataLoader(dataset, batch_size=3, shuffle=True, num_workers=0, collate_fn=list):
        seen += batch
    assert sorted(image_id for _, image_id, _ in seen) == [0, 1, 2, 3]
    assert all(shape == (48, 64, 3) for shape, _, _ in seen)
    assert sum(n for _, _, n in seen) == dataset.report.boxes > 0
    copy = pickle.loads(pickle.dumps(load_dataset(shapes)))  # what DataLoader workers receive
    assert isinstance(copy, DetectionDataset) and copy[0][1]["image_id"] == 0


# ---------------------------------------------------------------------------------------- label maps and layouts


def test_label_maps():
    assert with_background(["cat", "dog"]) == ["__background__", "cat", "dog"]
    assert with_background(["__background__", "cat"]) == ["__background__", "cat"]
    with pytest.raises(ConfigError, match="'cat' repeated"):
        with_background(["cat", "dog", "cat"])
    with pytest.raises(ConfigError, match="'__background__' repeated"):
        with_background(["cat", "__background__"])


def test_format_detection_and_errors(tmp_path, shapes):
    assert detect_format(shapes) == "voc"  # Annotations/ wins over annotations.json
    (tmp_path / "coco").mkdir()
    (tmp_path / "coco" / "annotations.json").write_text("{}")
    assert detect_format(tmp_path / "coco") == "coco" and detect_format(tmp_path / "x.json") == "coco"
    with pytest.raises(DatasetError, match="unknown dataset layout"):
        detect_format(tmp_path)
    with pytest.raises(SSDDeployError, match="unknown dataset format 'cocoo'.*Did you mean coco"):
        load_dataset(shapes, "cocoo")
    with pytest.raises(DatasetError, match="no such file or folder"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="split 'train' given for a coco dataset"):
        load_dataset(shapes, "coco", split="train")

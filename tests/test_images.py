"""Reading odd and broken image files: every case converts or fails with the file's name."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ssd_deploy.errors import ImageReadError
from ssd_deploy.images import list_images, read_image, to_bgr_uint8


@pytest.fixture
def color_image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)


def test_color_png_round_trips_exactly(tmp_path, color_image):
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), color_image)
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == (40, 60, 3)
    np.testing.assert_array_equal(image, color_image)


def test_grayscale_becomes_three_equal_channels(tmp_path, color_image):
    gray = color_image[:, :, 0]
    path = tmp_path / "gray.png"
    cv2.imwrite(str(path), gray)
    image = read_image(path)
    assert image.shape == (40, 60, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[:, :, channel], gray)


def test_rgba_drops_alpha(tmp_path, color_image):
    bgra = np.dstack([color_image, np.full((40, 60), 7, np.uint8)])
    path = tmp_path / "alpha.png"
    cv2.imwrite(str(path), bgra)
    np.testing.assert_array_equal(read_image(path), color_image)


def test_16bit_is_scaled_to_8bit(tmp_path, color_image):
    deep = color_image.astype(np.uint16) * 257  # 255 -> 65535
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), deep)
    np.testing.assert_array_equal(read_image(path), color_image)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_file_is_reported(tmp_path, color_image, suffix):
    path = tmp_path / f"cut{suffix}"
    cv2.imwrite(str(path), color_image)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_complete_jpeg_is_not_reported_as_truncated(tmp_path, color_image):
    path = tmp_path / "ok.jpg"
    cv2.imwrite(str(path), color_image)
    assert read_image(path).shape == (40, 60, 3)


@pytest.mark.parametrize(
    "content, problem",
    [(None, "no such file"), (b"", "empty file"), (b"this is text, not pixels", "not a readable image")],
)
def test_bad_files_name_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "bad.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(path) in str(info.value) and problem in str(info.value)


def test_unsupported_arrays_are_rejected():
    with pytest.raises(ImageReadError, match="pixel type"):
        to_bgr_uint8(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ImageReadError, match="channels"):
        to_bgr_uint8(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageReadError, match="not an image"):
        to_bgr_uint8(np.zeros((4,), np.uint8))


def test_list_images_filters_and_sorts(tmp_path, color_image):
    for name in ["b.png", "a.jpg", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.png"]
    assert list_images(tmp_path / "a.jpg") == [tmp_path / "a.jpg"]


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_cv2_imread_does(tmp_path, color_image, suffix, orientation):
    from PIL import Image

    from ssd_deploy.data.scan import probe_image

    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"phone{suffix}"
    Image.fromarray(color_image[:, :, ::-1]).save(path, exif=exif.tobytes(), **({"lossless": True} if suffix == ".webp" else {}))
    expected = cv2.imread(str(path))  # its default applies the orientation
    assert expected.shape == ((60, 40, 3) if orientation >= 5 else (40, 60, 3))
    np.testing.assert_array_equal(read_image(path), expected)
    assert probe_image(path) == expected.shape[:2]  # the load-time scan agrees without decoding


def test_exif_orientation_keeps_16_bit_and_gray(tmp_path, color_image):
    deep = color_image.astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    cv2.imwrite(str(tmp_path / "gray.png"), color_image[:, :, 0])
    np.testing.assert_array_equal(read_image(tmp_path / "deep.png"), color_image)
    assert read_image(tmp_path / "gray.png").shape == (40, 60, 3)


def test_header_claiming_too_many_pixels_is_refused_before_decoding(tmp_path, color_image):
    import struct
    import zlib

    ok, encoded = cv2.imencode(".png", color_image)
    data = bytearray(encoded.tobytes())
    data[16:24] = struct.pack(">II", 60000, 60000)  # IHDR width, height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path = tmp_path / "huge.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match=r"60000x60000 pixels \(3600 megapixels\), too large") as info:
        read_image(path)
    assert str(path) in str(info.value)

"""Reading images from disk into BGR uint8 arrays, with one clear error per bad file."""

from __future__ import annotations

import io
import struct
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageReadError, SSDDeployError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

MAX_PIXELS = 1 << 30
"""The most pixels (width x height) an image may have: OpenCV's default CV_IO_MAX_IMAGE_PIXELS,
beyond which its decoders refuse with an assertion (a 60000 x 60000 header would ask for 10 GB)."""

# Depth and channels as the file has them (16-bit, gray kept; alpha is dropped either way, as
# to_bgr_uint8 does) with the EXIF orientation applied, as cv2.imread's default does.
# IMREAD_UNCHANGED would also set IMREAD_IGNORE_ORIENTATION: phone photos would come out 90 degrees off.
_DECODE_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR
_ROTATED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_EXIF_ORIENTATION = 0x0112
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")
"""TIFF files: Pillow gives their size with the orientation tag already applied (libtiff rotates
them), unlike every other format's, so only their pixel count is taken from the header."""
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # start-of-frame markers


def truncation_problem(data: bytes) -> str | None:
    """Why a JPEG/PNG byte string is cut short, or None. OpenCV decodes a truncated JPEG into a
    half-grey picture with only a warning on stderr, so the end markers are checked here."""
    if data[:3] == b"\xff\xd8\xff" and b"\xff\xd9" not in data[-64:].rstrip(b"\x00"):
        return "truncated JPEG (no end-of-image marker)"
    if data[:8] == _PNG_SIGNATURE and b"IEND" not in data[-32:]:
        return "truncated PNG (no IEND chunk)"
    return None


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) in pixels that an image file's header states, read without decoding pixels.

    PNG and JPEG headers are parsed here: Pillow refuses to open files over its own, lower limit
    (about 179 megapixels) without saying their size. Other formats come from Pillow.

    Args:
        data: the file's bytes (the header is enough for PNG and JPEG).

    Returns:
        The stored size, or None when the header cannot be read. Before any EXIF rotation,
        except for TIFF (see :data:`TIFF_SIGNATURES`).
    """
    if data[:8] == _PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    with _pillow(data) as image:
        return None if image is None else image.size


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame segment, walking the segments from the start."""
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


@contextmanager
def _pillow(data: bytes | BinaryIO) -> Iterator[Image.Image | None]:
    """The file opened lazily by Pillow (the header only), or None when Pillow cannot read it or
    refuses it as too large."""
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS applies, not Pillow's
            image = Image.open(source)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError, struct.error):
        yield None
        return
    with image:
        yield image


def exif_orientation(file: BinaryIO) -> int:
    """The EXIF orientation (1-8) stored in an open image file, 1 when it has none.

    Only metadata is read: PNG chunks are walked by their lengths (Pillow would decode the whole
    picture to find an eXIf chunk after the pixels); other formats keep EXIF in their header.
    """
    if file.read(8) == _PNG_SIGNATURE:
        exif = _png_exif(file)
    else:
        file.seek(0)
        with _pillow(file) as image:
            exif = _safe_exif(image.getexif) if image is not None else None
    orientation = exif.get(_EXIF_ORIENTATION, 1) if exif is not None else 1
    return orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1


def _png_exif(file: BinaryIO) -> Image.Exif | None:
    """The eXIf chunk of a PNG file positioned after its signature, or None."""
    while True:
        header = file.read(8)
        if len(header) < 8 or header[4:] == b"IEND":
            return None
        length = struct.unpack(">I", header[:4])[0]
        if header[4:] == b"eXIf":
            exif = Image.Exif()
            data = file.read(length)
            return _safe_exif(lambda: exif.load(data) or exif)
        file.seek(length + 4, io.SEEK_CUR)  # the chunk's data and CRC


def _safe_exif(read) -> Image.Exif | None:
    """``read()``, or None for a malformed EXIF block (OpenCV ignores those too)."""
    try:
        return read()
    except (OSError, ValueError, SyntaxError, KeyError, struct.error):
        return None


def oriented(width: int, height: int, orientation: int) -> tuple[int, int]:
    """(width, height) of a picture stored at ``width`` x ``height`` once its EXIF orientation is applied."""
    return (height, width) if orientation in _ROTATED_ORIENTATIONS else (width, height)


def size_problem(width: int, height: int) -> str | None:
    """Why an image of ``width`` x ``height`` pixels (as its header states) is not decoded, or None."""
    if width <= 0 or height <= 0:
        return f"the header states {width}x{height} pixels. Note: an image needs a positive width and height"
    if width * height > MAX_PIXELS:
        return (
            f"the header states {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), too large to decode. "
            f"Note: at most {MAX_PIXELS / 1e6:.0f} megapixels (OpenCV's limit); scale the image down first"
        )
    return None


def missing_file_problem(path: Path) -> str:
    """What is at ``path`` instead of a readable file: nothing, a folder, or something else."""
    if not path.exists():
        return "no such file"
    return "a folder, not an image file" if path.is_dir() else "not a regular file"


def to_bgr_uint8(image: np.ndarray, source: object = "<array>") -> np.ndarray:
    """Convert an OpenCV-style image to BGR uint8 H x W x 3.

    Accepts grayscale (H x W or H x W x 1), BGR, BGRA (alpha dropped), and 8- or 16-bit depth
    (16-bit is scaled to 8-bit, 65535 -> 255).
    """
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        shape = getattr(image, "shape", None)
        raise ImageReadError(source, f"not an image array (shape {shape}). Note: expected H x W or H x W x C")
    if image.dtype == np.uint16:
        image = (image / 257.0).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageReadError(source, f"unsupported pixel type {image.dtype}. Note: expected 8- or 16-bit integers")
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 3:
        return image
    raise ImageReadError(source, f"{image.shape[2]} channels. Note: expected 1, 3 or 4")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as BGR uint8 H x W x 3 (what ``cv2.imread`` gives for a colour JPEG).

    The EXIF orientation is applied, as ``cv2.imread`` does by default; gray, alpha and 16-bit
    files are converted by :func:`to_bgr_uint8`. The size the header states is checked before
    decoding, so a file claiming billions of pixels is refused without allocating them.

    Raises:
        ImageReadError: naming the file and the problem (missing, empty, not an image, truncated,
            too large, unsupported depth or channel count).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, missing_file_problem(path))
    try:
        data = path.read_bytes()
    except OSError as error:  # e.g. no read permission
        raise ImageReadError(path, f"cannot read it ({error.strerror or error})") from None
    if not data:
        raise ImageReadError(path, "empty file")
    problem = truncation_problem(data)
    if problem:
        raise ImageReadError(path, problem)
    size = declared_size(data)
    problem = size_problem(*size) if size is not None else None
    if problem:
        raise ImageReadError(path, problem)
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _DECODE_FLAGS)
    except cv2.error as error:  # a decoder's own assertion, e.g. a size Pillow could not read
        reason = str(error).strip().splitlines()[-1]
        raise ImageReadError(path, f"OpenCV refused to decode it ({reason})") from None
    if image is None:
        raise ImageReadError(path, "not a readable image (OpenCV could not decode it)")
    return to_bgr_uint8(image, path)


def report_unreadable(error: ImageReadError, what: str = "skipped") -> None:
    """Print one line naming a bad image file and its problem, on stderr."""
    print(f"error: {error}. {what[:1].upper()}{what[1:]}", file=sys.stderr)


def readable_images(paths: Sequence[Path], what: str = "skipped") -> tuple[list[Path], list[ImageReadError]]:
    """The files of ``paths`` that :func:`read_image` reads, and the error of each other one
    (printed as one line each, ending in ``what`` happens to it)."""
    good, bad = [], []
    for path in paths:
        try:
            read_image(path)
            good.append(path)
        except ImageReadError as error:
            report_unreadable(error, what)
            bad.append(error)
    return good, bad


def list_images(path: str | Path) -> list[Path]:
    """``path`` itself if it is not a folder, else the entries directly inside the folder whose
    names end in an image suffix, sorted. A folder or broken link named like an image is listed
    too, so that reading it reports it rather than leaving it out silently."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return [path]


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write ``image`` (BGR uint8) atomically, encoded by ``path``'s suffix (e.g. ``.jpg``)."""
    from .checkpoint import atomic_write

    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix or ".jpg", image)
    if not ok:
        raise SSDDeployError(f"{path}: OpenCV could not encode the image")
    return atomic_write(path, lambda tmp: tmp.write_bytes(encoded.tobytes()))

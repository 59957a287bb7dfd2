"""What an image file's header says, read without decoding its pixels: the stored size and the
EXIF orientation. Used to refuse oversized files before decoding them and, in the load-time scan of
a dataset, to learn every image's size without decoding it."""

from __future__ import annotations

import io
import struct
import warnings
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from PIL import Image, UnidentifiedImageError

MAX_PIXELS = 1 << 30
"""The most pixels (width x height) an image may have: OpenCV's default CV_IO_MAX_IMAGE_PIXELS,
beyond which its decoders refuse with an assertion (a 60000 x 60000 header would ask for 10 GB)."""

_ROTATED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_EXIF_ORIENTATION = 0x0112
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")
"""TIFF files: Pillow gives their size with the orientation tag already applied (libtiff rotates
them), unlike every other format's, so only their pixel count is taken from the header."""
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # start-of-frame markers


def declared_size(source: bytes | BinaryIO) -> tuple[int, int] | None:
    """(width, height) in pixels that an image file's header states, read without decoding pixels.

    PNG and JPEG headers are parsed here (a JPEG's segments are skipped by their lengths, so only
    a few bytes of each are read): Pillow refuses to open files over its own, lower limit (about
    179 megapixels) without saying their size. Other formats come from Pillow.

    Args:
        source: the file's bytes, or the file open for reading at its start.

    Returns:
        The stored size, or None when the header cannot be read. Before any EXIF rotation,
        except for TIFF (see :data:`TIFF_SIGNATURES`).
    """
    file = io.BytesIO(source) if isinstance(source, bytes) else source
    start = file.tell()
    head = file.read(24)
    if head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR" and len(head) == 24:
        return struct.unpack(">II", head[16:24])
    if head[:2] == b"\xff\xd8":
        file.seek(start + 2)
        return _jpeg_size(file)
    file.seek(start)
    with _pillow(file) as image:
        return None if image is None else image.size


def _jpeg_size(file: BinaryIO) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame segment; ``file`` is just after the SOI marker."""
    while file.read(1) == b"\xff":
        marker = file.read(1)
        while marker == b"\xff":  # fill bytes before a marker
            marker = file.read(1)
        if not marker:
            return None
        if marker[0] in _JPEG_SOF:  # length (2 bytes), precision (1), height (2), width (2)
            segment = file.read(7)
            if len(segment) < 7:
                return None
            height, width = struct.unpack(">HH", segment[3:7])
            return width, height
        length = file.read(2)
        if len(length) < 2:
            return None
        file.seek(struct.unpack(">H", length)[0] - 2, io.SEEK_CUR)
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
    if file.read(8) == PNG_SIGNATURE:
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

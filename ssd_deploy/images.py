"""Reading images from disk into BGR uint8 arrays, with one clear error per bad file."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .errors import ImageReadError, SSDDeployError
from .files import atomic_write
from .image_header import PNG_SIGNATURE, declared_size, size_problem

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# Depth and channels as the file has them (16-bit, gray kept; alpha is dropped either way, as
# to_bgr_uint8 does) with the EXIF orientation applied, as cv2.imread's default does.
# IMREAD_UNCHANGED would also set IMREAD_IGNORE_ORIENTATION: phone photos would come out 90 degrees off.
_DECODE_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR


def truncation_problem(data: bytes) -> str | None:
    """Why a JPEG/PNG byte string is cut short, or None. OpenCV decodes a truncated JPEG into a
    half-grey picture with only a warning on stderr, so the end markers are checked here."""
    if data[:3] == b"\xff\xd8\xff" and b"\xff\xd9" not in data[-64:].rstrip(b"\x00"):
        return "truncated JPEG (no end-of-image marker)"
    if data[:8] == PNG_SIGNATURE and b"IEND" not in data[-32:]:
        return "truncated PNG (no IEND chunk)"
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


def is_single_image(value: object) -> bool:
    """Whether ``value`` is one image as :func:`as_image` takes it (not a list of them)."""
    pil = sys.modules.get("PIL.Image")  # a PIL image can only exist once PIL is imported
    return isinstance(value, (np.ndarray, str, os.PathLike)) or (pil is not None and isinstance(value, pil.Image))


def as_image(value: object, source: object = "<image>") -> np.ndarray:
    """One image as a caller may give it, as an OpenCV array: an array as it is (pre-processing
    converts gray, BGRA and 16-bit), a file path read by :func:`read_image`, or a PIL image
    converted to BGR uint8.

    Raises:
        ImageReadError: naming the file (or ``source``) and the problem.
    """
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (str, os.PathLike)):
        return read_image(value)
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(value, pil.Image):
        return np.ascontiguousarray(np.asarray(value.convert("RGB"))[:, :, ::-1])
    note = "; cv2.imread returns None for a file it cannot read" if value is None else ""
    raise ImageReadError(source, f"not an image array ({type(value).__name__}{note}). Note: pass a file path, an OpenCV array or a PIL image")


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
    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix or ".jpg", image)
    if not ok:
        raise SSDDeployError(f"{path}: OpenCV could not encode the image")
    return atomic_write(path, lambda tmp: tmp.write_bytes(encoded.tobytes()))

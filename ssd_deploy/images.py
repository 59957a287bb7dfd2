"""Reading images from disk into BGR uint8 arrays, with one clear error per bad file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import ImageReadError, SSDDeployError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def truncation_problem(data: bytes) -> str | None:
    """Why a JPEG/PNG byte string is cut short, or None. OpenCV decodes a truncated JPEG into a
    half-grey picture with only a warning on stderr, so the end markers are checked here."""
    if data[:3] == b"\xff\xd8\xff" and b"\xff\xd9" not in data[-64:].rstrip(b"\x00"):
        return "truncated JPEG (no end-of-image marker)"
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-32:]:
        return "truncated PNG (no IEND chunk)"
    return None


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

    Raises:
        ImageReadError: naming the file and the problem (missing, empty, not an image, truncated,
            unsupported depth or channel count).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "no such file" if not path.exists() else "not a file")
    data = path.read_bytes()
    if not data:
        raise ImageReadError(path, "empty file")
    problem = truncation_problem(data)
    if problem:
        raise ImageReadError(path, problem)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError(path, "not a readable image (OpenCV could not decode it)")
    return to_bgr_uint8(image, path)


def list_images(path: str | Path) -> list[Path]:
    """``path`` itself if it is a file, else the image files directly inside the folder, sorted."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return [path]


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write ``image`` (BGR uint8) atomically, encoded by ``path``'s suffix (e.g. ``.jpg``)."""
    from .checkpoint import atomic_write

    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix or ".jpg", image)
    if not ok:
        raise SSDDeployError(f"{path}: OpenCV could not encode the image")
    return atomic_write(path, lambda tmp: tmp.write_bytes(encoded.tobytes()))

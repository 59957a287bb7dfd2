"""Calibration images for post-training quantisation (ONNX Runtime, NNCF/OpenVINO, TensorRT INT8).

Images come from a folder (searched recursively, so a VOC ``JPEGImages`` folder, a COCO
``images`` folder or a dataset root all work) and go through the same pre-processing every runtime
uses, so the quantiser sees exactly the inputs the deployed model will see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import SSDDeployError
from .images import IMAGE_SUFFIXES, read_image, readable_images
from .pipeline import DEFAULT_BATCH_SIZE, DEFAULT_RESIZE, preprocess

# Post-training quantisation needs a few hundred typical images (NNCF's and ONNX Runtime's
# defaults are 300 and 100 samples); one default for every quantiser: ONNX, OpenVINO, TensorRT.
DEFAULT_CALIBRATION_IMAGES = 200


@dataclass(frozen=True)
class Calibration:
    """Where INT8 calibration images come from: every quantiser (``ssd-export --int8``, the
    benchmarks' cached INT8 files, TensorRT engines) takes this one object.

    Attributes:
        folder: a folder of images, searched recursively; None: the command's default (parity:
            the dataset's images) or, where there is none, INT8 is refused with a note.
        count: at most this many images, spread evenly over the folder (``--calib-images``).
    """

    folder: Path | None = None
    count: int = DEFAULT_CALIBRATION_IMAGES

    def __post_init__(self) -> None:
        if self.folder is not None:
            object.__setattr__(self, "folder", Path(self.folder))
        if not isinstance(self.count, int) or self.count < 1:
            raise SSDDeployError(f"--calib-images {self.count!r}: expected a whole number of images, 1 or more")

    def settings(self) -> dict[str, object]:
        """The report's record: ``calibration`` (the folder or None) and ``calibration_images``."""
        return {"calibration": None if self.folder is None else str(self.folder), "calibration_images": self.count}

    def or_folder(self, folder: str | Path) -> Calibration:
        """This calibration, with ``folder`` when none was given."""
        return self if self.folder is not None else Calibration(Path(folder), self.count)

    def batches(self, input_size: tuple[int, int], batch_size: int = DEFAULT_BATCH_SIZE, resize: str = DEFAULT_RESIZE) -> CalibrationBatches:
        """The pre-processed batches (see :meth:`CalibrationBatches.from_folder`).

        Raises:
            SSDDeployError: no folder was given, or it holds no readable images.
        """
        if self.folder is None:
            raise SSDDeployError("INT8 needs calibration images. Note: pass --calib FOLDER (a few hundred typical images)")
        return CalibrationBatches.from_folder(self.folder, input_size, batch_size, self.count, resize)


def find_calibration_images(folder: str | Path, limit: int | None = None) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted), at most ``limit``, spread evenly.

    Raises:
        SSDDeployError: the folder is missing or holds no images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SSDDeployError(f"{folder}: calibration folder not found. Note: give a folder of images (a dataset's image folder)")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise SSDDeployError(f"{folder}: no images for calibration. Note: expected {', '.join(IMAGE_SUFFIXES)} files")
    if limit is not None and len(paths) > limit:
        step = len(paths) / limit  # every k-th image: a spread sample, the same on every run
        paths = [paths[int(i * step)] for i in range(limit)]
    return paths


def as_calibration(value: Calibration | str | Path | None) -> Calibration:
    """A :class:`Calibration` from itself, a folder (default count), or None (no folder)."""
    return value if isinstance(value, Calibration) else Calibration(value)


@dataclass
class CalibrationBatches:
    """Pre-processed float32 batches ``[B, 3, H, W]`` (RGB in [0, 1]) of calibration images.

    The last batch is padded by repeating its images, so a fixed-batch model can take it and
    every image counts. Iterating again yields the same batches (images are re-read, not kept).

    Attributes:
        paths: the images. input_size: (height, width). batch_size: images per batch.
        resize: the model's resize method (:data:`ssd_deploy.pipeline.RESIZE_METHODS`).
        unreadable: "<file>: <problem>" of each image found but left out (see :meth:`from_folder`).
    """

    paths: list[Path]
    input_size: tuple[int, int]
    batch_size: int = DEFAULT_BATCH_SIZE
    resize: str = DEFAULT_RESIZE
    unreadable: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise SSDDeployError(f"calibration batch size {self.batch_size}: expected 1 or more")
        if not self.paths:
            raise SSDDeployError("calibration: no images")

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        input_size: tuple[int, int],
        batch_size: int = DEFAULT_BATCH_SIZE,
        limit: int | None = DEFAULT_CALIBRATION_IMAGES,
        resize: str = DEFAULT_RESIZE,
    ) -> CalibrationBatches:
        """The batches of the readable images under ``folder`` (see :func:`find_calibration_images`).

        Each unreadable file is printed as one line naming it and left out; its line is kept in
        ``unreadable``. Every file is decoded once here, so a bad one cannot stop a quantiser
        half-way.

        Raises:
            SSDDeployError: the folder is missing, holds no images, or none of them can be read.
        """
        paths, bad = readable_images(find_calibration_images(folder, limit), "left out of calibration")
        if not paths:
            raise SSDDeployError(f"{folder}: none of the calibration images can be read (see the errors above)")
        return cls(paths, tuple(input_size), batch_size, resize, [str(error) for error in bad])

    def __len__(self) -> int:
        return -(-len(self.paths) // self.batch_size)

    def __iter__(self) -> Iterator[np.ndarray]:
        for start in range(0, len(self.paths), self.batch_size):
            chunk = self.paths[start : start + self.batch_size]
            chunk = chunk + [chunk[i % len(chunk)] for i in range(self.batch_size - len(chunk))]
            batch, _ = preprocess([read_image(path) for path in chunk], self.input_size, self.resize)
            yield batch.numpy()

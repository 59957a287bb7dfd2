"""The images a benchmark detects on and calibrates with: the user's, or generated shapes scenes."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..calibration import find_calibration_images
from ..data.shapes import ensure_shapes_dataset, render_scene
from ..errors import ImageReadError, SSDDeployError
from ..images import read_image, report_unreadable

BENCH_SEED = 2024  # not the training or calibration seeds: images the model has not seen
CALIBRATION_SEED = 7
CALIBRATION_COUNT = 64


def bench_images(folder: Path | None, count: int, size: tuple[int, int] = (480, 640)) -> tuple[list[np.ndarray], list[str]]:
    """``count`` BGR uint8 images: from ``folder`` (searched recursively, spread evenly, cycled
    when it holds fewer), else generated shapes scenes of ``size`` = (height, width) pixels.

    Returns:
        The images, and one line per file of ``folder`` that could not be read (each also
        printed; the benchmark goes on with the others).

    Raises:
        SSDDeployError: the folder is missing or holds no readable images.
    """
    if folder is None:
        rng = np.random.default_rng(BENCH_SEED)
        return [render_scene(rng, size).image for _ in range(count)], []
    if not Path(folder).is_dir():
        raise SSDDeployError(f"{folder}: --images folder not found. Note: give a folder of images")
    pictures, bad = [], []
    for path in find_calibration_images(folder, limit=count):
        try:
            pictures.append(read_image(path))
        except ImageReadError as error:
            report_unreadable(error, "skipped")
            bad.append(str(error))
    if not pictures:
        raise SSDDeployError(f"{folder}: none of the --images can be read (see the errors above)")
    return [pictures[i % len(pictures)] for i in range(count)], bad


def default_calibration(cache_dir: Path, log: Callable[[str], None] = print, size: tuple[int, int] = (320, 320)) -> Path:
    """A folder of generated shapes scenes for INT8 calibration (written once under ``cache_dir``).

    Shapes scenes suit models trained on shapes; give ``--calib`` (a dataset's images) for others:
    a quantiser calibrated on the wrong images keeps the speed but loses accuracy (see ``ssd-bench parity``).
    """
    folder = cache_dir / "calibration-shapes"
    images = folder / "JPEGImages"
    ensure_shapes_dataset(folder, CALIBRATION_COUNT, seed=CALIBRATION_SEED, size=size, progress=False, log=log,
                          note=" for INT8 calibration (pass --calib FOLDER to use your own)")
    return images

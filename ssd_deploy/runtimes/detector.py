"""``Detector``: images in, detections out, the same way on every runtime.

    images (any size; BGR, gray, BGRA) -> preprocess -> runner.infer(batch) -> [host NMS if the
    file has none] -> unpad + rescale to each original image -> Detections

Only ``runner.infer`` differs per runtime; every other step is this module's, shared by all.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Sequence, Union

import numpy as np
import torch

from ..errors import ImageReadError, SSDDeployError
from ..images import as_image, is_single_image
from ..pipeline import DEFAULT_BATCH_SIZE, Detections, preprocess, to_detections
from ..postprocess import select_detections
from .base import Runner

# One image as ``detect`` takes it: a file path, an OpenCV array or a PIL image (Any: PIL is
# imported only by the callers who use it).
ImageInput = Union[str, os.PathLike, np.ndarray, Any]


@dataclass
class StageTimes:
    """Milliseconds spent in each stage by the last ``detect`` call (summed over its batches)."""

    preprocess_ms: float = 0.0
    infer_ms: float = 0.0
    postprocess_ms: float = 0.0
    batches: int = 0

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.infer_ms + self.postprocess_ms


@dataclass
class Detector:
    """A loaded model behind the one interface; see :func:`ssd_deploy.runtimes.load`.

    Attributes:
        runner: the runtime-specific part (``runner.infer`` is the raw contract).
        max_batch: images per network call for a dynamic-batch model (a fixed-batch model takes
            exactly its batch size; a short last batch is padded with blank images).
        min_score: report only detections scoring above this; it may be higher than the
            threshold inside the model (filtering after NMS by a higher threshold gives what NMS
            with that threshold gives), never lower. None: the model's own threshold.
        last_times: :class:`StageTimes` of the last :meth:`detect` call.
    """

    runner: Runner
    max_batch: int = DEFAULT_BATCH_SIZE
    min_score: float | None = None
    last_times: StageTimes = field(default_factory=StageTimes)

    def __post_init__(self) -> None:
        self.set_min_score(self.min_score)

    def set_min_score(self, min_score: float | None) -> None:
        """Report only detections above ``min_score`` (None: the model's threshold); an error below it."""
        built_in = self.runner.metadata.score_threshold
        if min_score is not None and min_score < built_in:
            raise SSDDeployError(
                f"{self.runner.path}: score threshold {min_score} is below the {built_in} built into the model. "
                "Note: detections under it were dropped inside the model; re-export with a lower --score"
            )
        self.min_score = min_score

    @property
    def metadata(self):
        return self.runner.metadata

    @property
    def class_names(self) -> list[str]:
        return list(self.runner.metadata.class_names)

    @property
    def batch_size(self) -> int:
        """Images per network call: a fixed-batch file's, else ``max_batch`` within what the
        runner takes (a TensorRT engine's optimisation profile)."""
        largest = getattr(self.runner, "batch_range", (1, self.max_batch))[1]
        return self.runner.metadata.batch or min(self.max_batch, largest)

    def infer(self, batch: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
        """The raw contract for a ready float32 [N, 3, H, W] batch; see :meth:`Runner.infer`."""
        return self.runner.infer(batch)

    def detect(self, images: ImageInput | Sequence[ImageInput]) -> Detections | list[Detections]:
        """Detect objects in one image or a list of images (calling the detector does the same).

        Args:
            images: an image or a list of them, each of any size: a file path, an OpenCV array
                (BGR uint8 H x W x 3; gray, BGRA and 16-bit are converted) or a PIL image.

        Returns:
            For one image its :class:`Detections`, for a list one per image: boxes float32 [D, 4]
            xyxy in that image's pixels, scores, labels (1 ... C-1) and class names.

        Raises:
            SSDDeployError: an image that cannot be read (each named, before any is run), or no images.
        """
        single = is_single_image(images)
        if not single and (images is None or isinstance(images, bytes) or not hasattr(images, "__iter__")):
            raise SSDDeployError(
                f"Detector.detect: got {type(images).__name__}, not an image. Note: pass a file path, an OpenCV array, "
                "a PIL image or a list of them (cv2.imread returns None for a file it cannot read)"
            )
        batch_list = _read_all([images] if single else list(images))
        times = StageTimes()
        results: list[Detections] = []
        for start in range(0, len(batch_list), self.batch_size):
            results.extend(self._detect_batch(batch_list[start : start + self.batch_size], times))
        self.last_times = times
        return results[0] if single else results

    __call__ = detect

    def _detect_batch(self, images: Sequence[np.ndarray], times: StageTimes) -> list[Detections]:
        metadata = self.runner.metadata
        start = time.perf_counter()
        batch, sizes = preprocess(images, metadata.input_size, metadata.resize)
        if metadata.batch is not None and len(images) < metadata.batch:  # fixed batch: pad with blanks
            blanks = batch.new_zeros((metadata.batch - len(images), *batch.shape[1:]))
            batch = torch.cat([batch, blanks])
        times.preprocess_ms += (time.perf_counter() - start) * 1e3

        start = time.perf_counter()
        outputs = self.runner.infer(batch)
        times.infer_ms += (time.perf_counter() - start) * 1e3

        start = time.perf_counter()
        if not metadata.nms:  # a file without NMS: the same selection code as the exported graphs
            boxes, scores = (torch.from_numpy(outputs[name]) for name in ("boxes", "scores"))
            padded = select_detections(boxes, scores, metadata.postprocess)
            outputs = {"num_detections": padded.num_detections, "boxes": padded.boxes, "scores": padded.scores, "labels": padded.labels}
        detections = to_detections(
            outputs["num_detections"], outputs["boxes"], outputs["scores"], outputs["labels"], sizes, metadata.class_names
        )  # one per original size: padding rows of a fixed batch are left out
        if self.min_score is not None:
            detections = [d.above(self.min_score) for d in detections]
        times.postprocess_ms += (time.perf_counter() - start) * 1e3
        times.batches += 1
        return detections

    def close(self) -> None:
        self.runner.close()

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _read_all(items: list[object]) -> list[np.ndarray]:
    """Every image of a ``detect`` call as an array, read before any is run: each unreadable one
    is named, one line each, in a single error (the call runs all or none)."""
    if not items:
        raise SSDDeployError("Detector.detect: empty list of images. Note: pass an image or a list of images")
    images, problems = [], []
    for index, item in enumerate(items):
        try:
            images.append(as_image(item, f"image {index}"))
        except ImageReadError as error:
            problems.append(str(error))
    if len(problems) == 1 and len(items) == 1:
        raise SSDDeployError(problems[0])
    if problems:
        raise SSDDeployError(f"{len(problems)} of {len(items)} images cannot be read: " + "; ".join(problems))
    return images

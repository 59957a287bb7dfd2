"""Host-side steps shared by every runtime: pre-processing, and padded outputs to detections.

    image (any size; BGR, gray or BGRA) -> preprocess -> [N, 3, H, W] RGB in [0, 1]
    ... runtime runs the deploy module ...
    padded outputs -> unpad + rescale to each original image -> Detections

How an image is resized is part of a model's contract: the network saw one interpolation in
training, and another one moves its scores (see the README: up to 0.3 on real photos).
Each model records its method (``ModelConfig.resize``, the ``resize`` metadata key):

- ``opencv``: ``cv2.resize(INTER_LINEAR)`` of the uint8 image, then / 255. What ssd-deploy
  trains with (its training transforms end in this step), and what files without the key use.
- ``torchvision``: / 255 first, then ``F.interpolate(mode="bilinear", align_corners=False)`` of
  the float image, as torchvision's ``GeneralizedRCNNTransform`` does for its detection models
  (it normalises before resizing; both steps are linear, so the order moves values by float
  rounding only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from .images import to_bgr_uint8
from .resizing import DEFAULT_RESIZE, RESIZE_METHODS, check_resize  # noqa: F401  (RESIZE_METHODS: part of this module's API)

# Images per network call wherever a command batches images (detect, eval, parity, calibration, the
# Detector's dynamic batches): large enough to amortise a call, small enough for a 2-core CPU's cache.
DEFAULT_BATCH_SIZE = 8


@dataclass
class Detections:
    """Detections of one image.

    Attributes:
        boxes: float32 [D, 4] xyxy in pixels of the original image.
        scores: float32 [D], decreasing.
        labels: int64 [D], class indices 1 ... C-1 (0 is background and never appears).
        class_names: the model's class names, indexed by label (index 0 is background).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: Sequence[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.scores)

    def names(self) -> list[str]:
        """Class name of each detection (``class_<i>`` when the model has no name for it)."""
        return [self.class_names[i] if i < len(self.class_names) else f"class_{i}" for i in self.labels.tolist()]

    def above(self, score_threshold: float) -> Detections:
        """The detections scoring strictly above ``score_threshold`` (scores are sorted)."""
        keep = self.scores > score_threshold
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep], self.class_names)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready list of detections."""
        return {
            "detections": [
                {"box_xyxy": [round(float(v), 2) for v in box], "score": round(float(score), 5), "label": int(label), "class_name": name}
                for box, score, label, name in zip(self.boxes, self.scores, self.labels, self.names())
            ]
        }


def preprocess(
    images: Sequence[np.ndarray], input_size: tuple[int, int], resize: str = DEFAULT_RESIZE
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Resize (stretch, as SSD is trained), convert BGR to RGB and scale to [0, 1].

    Args:
        images: OpenCV images (BGR uint8 H x W x 3; gray, BGRA and 16-bit are converted).
        input_size: (height, width) of the network input.
        resize: the model's resize method, one of :data:`RESIZE_METHODS` (module docstring).

    Returns:
        batch: float32 Tensor[N, 3, H, W]; original_sizes: (height, width) of each image.
    """
    check_resize(resize, "preprocess")
    bgr = [to_bgr_uint8(image, f"image {i}") for i, image in enumerate(images)]
    sizes = [image.shape[:2] for image in bgr]
    if resize == "torchvision":
        return torch.stack([_resize_float(image, input_size) for image in bgr]), sizes
    height, width = input_size
    batch = np.empty((len(bgr), height, width, 3), dtype=np.uint8)
    for i, image in enumerate(bgr):
        if image.shape[:2] != (height, width):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        batch[i] = image[:, :, ::-1]  # BGR -> RGB
    tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
    return tensor.contiguous(), sizes


def _resize_float(bgr: np.ndarray, input_size: tuple[int, int]) -> torch.Tensor:
    """float32 [3, H, W] RGB in [0, 1]: torchvision's detection resize of one BGR uint8 image."""
    rgb = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1).float().div_(255.0)
    if tuple(rgb.shape[1:]) == tuple(input_size):
        return rgb
    return F.interpolate(rgb[None], size=tuple(input_size), mode="bilinear", align_corners=False)[0]


def to_detections(
    num_detections: Any,
    boxes: Any,
    scores: Any,
    labels: Any,
    original_sizes: Sequence[tuple[int, int]],
    class_names: Sequence[str] = (),
) -> list[Detections]:
    """Unpad the fixed-size outputs and scale boxes from [0, 1] to each original image's pixels.

    Accepts torch tensors or numpy arrays in the layout of :class:`~ssd_deploy.postprocess.PaddedDetections`.
    """
    num_detections, boxes, scores, labels = (_numpy(t) for t in (num_detections, boxes, scores, labels))
    results = []
    for i, (height, width) in enumerate(original_sizes):
        n = int(num_detections[i])
        scale = np.array([width, height, width, height], dtype=np.float32)
        results.append(
            Detections(
                boxes=(boxes[i, :n].astype(np.float32) * scale),
                scores=scores[i, :n].astype(np.float32),
                labels=labels[i, :n].astype(np.int64),
                class_names=list(class_names),
            )
        )
    return results


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)

"""Training augmentation (the SSD paper's recipe) and evaluation resizing of detection samples.

    (BGR uint8 image, target with boxes in pixels)
      TrainTransform: drop difficult -> photometric distort -> zoom out -> IoU crop -> flip
                      -> drop empty boxes -> resize exactly as inference does
      EvalTransform:  resize exactly as inference does (ssd_deploy.pipeline.preprocess)
    -> (float32 RGB Tensor[3, H, W] in [0, 1], target with boxes as fractions of the image)

The random steps are torchvision.transforms.v2 ops (SSD paper, sections 2.2 and 3.6), so only
torch's RNG is used and ``torch.manual_seed`` makes every draw reproducible. The last step is the
pipeline's own resize (cv2 INTER_LINEAR stretch on uint8), so the network sees the same pixels in
training as in deployment. Mean/std normalisation is *not* done here: the model does it.
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np
import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.ops import box_iou
from torchvision.transforms import v2

from ..errors import ConfigError, DatasetError
from ..images import to_bgr_uint8
from ..models.config import IMAGENET_MEAN
from ..pipeline import DEFAULT_RESIZE, check_resize, preprocess

RGB_MEAN_255 = tuple(round(255.0 * m, 3) for m in IMAGENET_MEAN)  # (123.675, 116.28, 103.53)

# The paper's patch options: 1.0 = "use the entire original input image" (RandomIoUCrop returns no
# crop for a value >= 1), 0.1 ... 0.9 = "a patch whose minimum jaccard overlap with the objects is
# ...", 0.0 = "randomly sample a patch". torchvision's default list, written out to be seen.
CROP_MIN_IOUS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)

_TARGET_KEYS = ("boxes", "labels", "difficult")  # every other key of a target is passed through


class TrainTransform:
    """The SSD training augmentation, then the inference resize.

    Steps (each random one drawn with torch's RNG):

    1. difficult boxes are dropped (unless ``keep_difficult``);
    2. ``RandomPhotometricDistort``: brightness, contrast, saturation, hue, each with p=0.5,
       contrast before or after saturation/hue at random, then a random channel permutation
       with p=0.5 (ssd.pytorch's PhotometricDistort; brightness there is additive +-32,
       here a factor in [0.875, 1.125]);
    3. ``RandomZoomOut`` (p=0.5): the image is placed at random on a canvas 1 to ``max_expand``
       times its size filled with ``fill``;
    4. ``RandomIoUCrop`` (see :class:`BatchedIoUCrop`); an image without boxes is not cropped;
    5. ``RandomHorizontalFlip`` (p=0.5);
    6. ``SanitizeBoundingBoxes``: boxes under 1 pixel wide or tall (in the augmented image)
       go, which removes the boxes the crop zeroed;
    7. the stretch to ``input_size`` of :func:`ssd_deploy.pipeline.preprocess` (the same bytes).

    Args:
        input_size: (height, width) of the network input, in pixels.
        fill: RGB colour (0..255) of the zoom-out canvas; rounded to integers because the image
            stays uint8 until the final resize. Default: the ImageNet mean (the paper fills
            with the mean pixel, so that the model, which subtracts it, sees zeros there).
        photometric, expand, crop, flip: turn steps 2, 3, 4, 5 on or off.
        max_expand: largest zoom-out factor (canvas side / image side), >= 1.
        keep_difficult: keep boxes flagged difficult (they are then flagged in the output).
    """

    # Eight parameters: users switch single steps by keyword (TrainTransform(size, crop=False));
    # each is one step's setting, listed in the class docstring, so the signature stays.
    def __init__(
        self,
        input_size: tuple[int, int],
        fill: tuple[float, float, float] = RGB_MEAN_255,
        photometric: bool = True,
        expand: bool = True,
        max_expand: float = 4.0,
        crop: bool = True,
        flip: bool = True,
        keep_difficult: bool = False,
    ) -> None:
        self.input_size = _check_input_size(input_size)
        if len(fill) != 3 or not all(0.0 <= float(v) <= 255.0 for v in fill):
            raise ConfigError(f"TrainTransform: fill {tuple(fill)}. Note: expected an RGB colour, 3 values in 0..255")
        if not max_expand >= 1.0:
            raise ConfigError(f"TrainTransform: max_expand {max_expand}. Note: expected a zoom-out factor >= 1")
        self.fill = tuple(float(v) for v in fill)
        self.keep_difficult = keep_difficult
        self.photometric = v2.RandomPhotometricDistort(p=0.5) if photometric else None
        # On a uint8 image torchvision casts a float fill with .to(uint8), i.e. truncates it
        # (123.675 -> 123): round it here instead.
        fill_uint8 = [int(round(v)) for v in self.fill]
        self.zoom_out = v2.RandomZoomOut(fill=fill_uint8, side_range=(1.0, max_expand), p=0.5) if expand else None
        self.crop = BatchedIoUCrop() if crop else None
        self.flip = v2.RandomHorizontalFlip(p=0.5) if flip else None
        self.sanitize = v2.SanitizeBoundingBoxes(min_size=1.0, min_area=1.0, labels_getter=_labels_and_difficult)

    def augment(self, image: np.ndarray, target: dict[str, Any]) -> tuple[tv_tensors.Image, dict[str, Tensor]]:
        """Steps 1-6: the augmented image at its own size, before the resize to ``input_size``.

        Args:
            image: BGR uint8 H x W x 3 (gray and BGRA are converted).
            target: "boxes" [G, 4] xyxy pixels, "labels" [G], optional "difficult" [G].

        Returns:
            image: uint8 RGB ``tv_tensors.Image`` [3, h, w]; sample: {"boxes": ``BoundingBoxes``
            [G', 4] xyxy pixels of that image, "labels": int64 [G'], "difficult": bool [G']}.
        """
        where = target.get("path", "<array>")
        bgr = to_bgr_uint8(image, where)
        boxes, labels, difficult = _target_tensors(target, bgr.shape[:2], where)
        if not self.keep_difficult:
            keep = ~difficult
            boxes, labels, difficult = boxes[keep], labels[keep], difficult[keep]
        # Planar RGB from the start: torchvision's colour ops run faster on it, and the final
        # resize works on the planes without transposing the (possibly 4x zoomed) image back.
        rgb = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)[::-1])))
        sample = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=bgr.shape[:2]),
            "labels": labels,
            "difficult": difficult,
        }
        if self.photometric is not None:
            rgb = self.photometric(rgb)
        if self.zoom_out is not None:
            rgb, sample = self.zoom_out(rgb, sample)
        if self.crop is not None:
            rgb, sample = self.crop(rgb, sample)
        if self.flip is not None:
            rgb, sample = self.flip(rgb, sample)
        return self.sanitize(rgb, sample)

    def __call__(self, image: np.ndarray, target: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """Augment one sample and resize it to ``input_size``.

        Args:
            image: BGR uint8 H x W x 3 (gray and BGRA are converted).
            target: the dataset's target dict ("boxes" float32 [G, 4] xyxy pixels, "labels"
                int64 [G], "difficult" bool [G], and "image_id", "path", "orig_size").

        Returns:
            image: float32 RGB Tensor[3, H, W] in [0, 1] at ``input_size``; target: "boxes"
            float32 Tensor[G', 4] xyxy as fractions of the image in [0, 1], "labels" int64
            Tensor[G'], "difficult" bool Tensor[G'], every other key passed through.
        """
        rgb, sample = self.augment(image, target)
        height, width = rgb.shape[-2:]
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        boxes = sample["boxes"].as_subclass(Tensor) / scale
        return _network_input(rgb, self.input_size), _output_target(target, boxes, sample["labels"], sample["difficult"])


class EvalTransform:
    """Resize only, exactly as :func:`ssd_deploy.pipeline.preprocess` does at inference; keeps
    every box, difficult ones included.

    Args:
        input_size: (height, width) of the network input, in pixels.
        resize: the model's resize method (:data:`ssd_deploy.pipeline.RESIZE_METHODS`).
    """

    def __init__(self, input_size: tuple[int, int], resize: str = DEFAULT_RESIZE) -> None:
        self.input_size = _check_input_size(input_size)
        self.resize = check_resize(resize, "EvalTransform")

    def __call__(self, image: np.ndarray, target: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """Same arguments and outputs as :meth:`TrainTransform.__call__`."""
        where = target.get("path", "<array>")
        bgr = to_bgr_uint8(image, where)
        height, width = bgr.shape[:2]
        boxes, labels, difficult = _target_tensors(target, (height, width), where)
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        tensor = preprocess([bgr], self.input_size, self.resize)[0][0]
        return tensor, _output_target(target, boxes / scale, labels, difficult)


class BatchedIoUCrop(v2.RandomIoUCrop):
    """torchvision's ``RandomIoUCrop`` (the paper's patch sampling) with its trials drawn and
    checked as one batch, and no crop for an image without boxes.

    torchvision's ``make_params`` (transforms/v2/_geometry.py, 0.29), kept here exactly:

    - draw a minimum IoU from ``sampler_options`` (default :data:`CROP_MIN_IOUS`); a value
      >= 1.0 means no crop (``if min_jaccard_overlap >= 1.0: return dict()``);
    - then up to ``trials`` (40) patches: each side ``min_scale``-``max_scale`` (0.3-1.0) of the
      image's, drawn separately and truncated to int; width/height in [0.5, 2]; a random
      integer position; no zero-size patch;
    - accept the first patch that has some box centre strictly inside it
      (``left < cx < right``, ``top < cy < bottom``) and whose largest IoU with those boxes is
      >= the drawn value (``if ious.max() < min_jaccard_overlap: continue``: *some* object must
      overlap enough, as in Caffe SSD, not all of them);
    - after ``trials`` failures draw a new minimum IoU (``while True``); this ends only because
      1.0 is among the options.

    The inherited ``transform`` then crops the image, clips boxes to the patch and sets boxes
    whose centre is outside it to (0, 0, 0, 0), for ``SanitizeBoundingBoxes`` to remove.

    Why not torchvision's own ``make_params``: it tests trials one at a time (~80 us each, about
    8 ms per image on the shapes data) and, for an image without boxes, where no patch can be
    accepted, spins until it draws 1.0 (~17 ms). Testing the i.i.d. trials together and taking
    the first accepted one gives the same distribution (not the same draws for a given seed).
    """

    def __init__(
        self,
        min_scale: float = 0.3,
        max_scale: float = 1.0,
        min_aspect_ratio: float = 0.5,
        max_aspect_ratio: float = 2.0,
        sampler_options: Sequence[float] = CROP_MIN_IOUS,
        trials: int = 40,
    ) -> None:
        super().__init__(min_scale, max_scale, min_aspect_ratio, max_aspect_ratio, list(sampler_options), trials)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        boxes = next(x for x in flat_inputs if isinstance(x, tv_tensors.BoundingBoxes))
        assert boxes.format == tv_tensors.BoundingBoxFormat.XYXY, boxes.format
        if boxes.shape[0] == 0:
            return {}  # images without objects are valid samples, kept whole
        xyxy = boxes.as_subclass(Tensor)
        cx = 0.5 * (xyxy[:, 0] + xyxy[:, 2])  # [G]
        cy = 0.5 * (xyxy[:, 1] + xyxy[:, 3])
        height, width = boxes.canvas_size
        while True:
            min_iou = self.options[int(torch.randint(len(self.options), (1,)))]
            if min_iou >= 1.0:
                return {}
            scale = self.min_scale + (self.max_scale - self.min_scale) * torch.rand(self.trials, 2)
            new_w = (width * scale[:, 0]).long()  # [T], int() truncation as torchvision
            new_h = (height * scale[:, 1]).long()
            aspect = new_w / new_h
            position = torch.rand(self.trials, 2)
            left = ((width - new_w) * position[:, 0]).long()
            top = ((height - new_h) * position[:, 1]).long()
            right, bottom = left + new_w, top + new_h
            patches = torch.stack([left, top, right, bottom], dim=1).to(xyxy.dtype)  # [T, 4]
            inside = (  # [T, G]: box centre strictly inside the patch
                (left[:, None] < cx) & (cx < right[:, None]) & (top[:, None] < cy) & (cy < bottom[:, None])
            )
            best_iou = box_iou(patches, xyxy).masked_fill(~inside, -1.0).amax(dim=1)  # [T]
            accepted = (
                (self.min_aspect_ratio <= aspect) & (aspect <= self.max_aspect_ratio)
                & (new_w > 0) & (new_h > 0) & inside.any(dim=1) & (best_iou >= min_iou)
            )
            if accepted.any():
                i = int(accepted.nonzero()[0])
                return dict(
                    top=int(top[i]), left=int(left[i]), height=int(new_h[i]), width=int(new_w[i]),
                    is_within_crop_area=inside[i],
                )


def collate(batch: Sequence[tuple[Tensor, dict[str, Any]]]) -> tuple[Tensor, list[dict[str, Any]]]:
    """``DataLoader`` collate function: images stacked to Tensor[N, 3, H, W], targets kept as a
    list (their box counts differ)."""
    images, targets = zip(*batch)
    return torch.stack(images), list(targets)


def _network_input(rgb: Tensor, input_size: tuple[int, int]) -> Tensor:
    """uint8 RGB [3, h, w] -> float32 RGB [3, H, W] in [0, 1], the same numbers as
    :func:`ssd_deploy.pipeline.preprocess` gives for that image in BGR H x W x 3.

    preprocess resizes the interleaved BGR image with cv2 INTER_LINEAR; that filter works per
    channel, so resizing each plane gives the same bytes (tests pin it) while skipping the
    transposition of the augmented image to H x W x 3, which costs ~20x the resize itself.
    """
    planes = rgb.as_subclass(Tensor).numpy()  # [3, h, w]; a crop leaves strided rows, which cv2 reads in place
    height, width = input_size
    if planes.shape[1:] != (height, width):  # as preprocess: no resize at the network's size
        planes = np.stack([cv2.resize(plane, (width, height), interpolation=cv2.INTER_LINEAR) for plane in planes])
    return torch.from_numpy(planes).float().div_(255.0)


def _output_target(target: dict[str, Any], boxes: Tensor, labels: Tensor, difficult: Tensor) -> dict[str, Any]:
    out = {key: value for key, value in target.items() if key not in _TARGET_KEYS}
    out.update(boxes=boxes.clamp_(0.0, 1.0), labels=labels, difficult=difficult)
    return out


def _target_tensors(target: dict[str, Any], image_size: tuple[int, int], where: object) -> tuple[Tensor, Tensor, Tensor]:
    """Copies of the target's boxes (float32 [G, 4], clipped to the image), labels (int64 [G])
    and difficult flags (bool [G], all False when absent)."""
    boxes = np.asarray(target["boxes"], dtype=np.float32)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    labels = np.asarray(target["labels"]).astype(np.int64)
    difficult = np.asarray(target.get("difficult", np.zeros(len(labels), dtype=bool))).astype(bool)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise DatasetError(where, f"target boxes have shape {boxes.shape}. Note: expected [G, 4] xyxy pixels")
    if labels.shape != (len(boxes),) or difficult.shape != (len(boxes),):
        raise DatasetError(
            where,
            f"{len(boxes)} boxes but labels of shape {labels.shape} and difficult of shape {difficult.shape}. "
            "Note: expected one label and one difficult flag per box",
        )
    height, width = image_size
    boxes_t = torch.tensor(boxes)
    boxes_t[:, 0::2].clamp_(0.0, width)
    boxes_t[:, 1::2].clamp_(0.0, height)
    return boxes_t, torch.tensor(labels), torch.tensor(difficult)


def _labels_and_difficult(inputs: tuple[Any, dict[str, Tensor]]) -> tuple[Tensor, Tensor]:
    """What SanitizeBoundingBoxes filters along with the boxes."""
    sample = inputs[1]
    return sample["labels"], sample["difficult"]


def _check_input_size(input_size: Sequence[int]) -> tuple[int, int]:
    size = tuple(input_size)
    if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size):
        raise ConfigError(f"input_size {input_size!r}. Note: expected (height, width), positive integers in pixels")
    return int(size[0]), int(size[1])

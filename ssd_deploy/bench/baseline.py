"""The baseline a user would otherwise run: torchvision's own eager SSD with the same weights.

    list of BGR images -> tensors (RGB, [0, 1])  (host, as a user writes it)
      -> torchvision SSD: transform (normalise, resize) -> backbone -> head
                          -> anchors -> decode + NMS (postprocess_detections) -> rescale
      -> list of {"boxes", "scores", "labels"}

The torchvision model is built from public torchvision pieces with our checkpoint's settings (prior
layout as a ``DefaultBoxGenerator``, input size, mean/std, thresholds), and our weights are copied
in by reversing :mod:`ssd_deploy.models.torchvision_compat`'s key mapping, so it computes the same
detections as ours (tested). Only ``ssd300_vgg16`` and ``ssdlite_mobilenet_v3`` (torchvision's
``ssdlite320_mobilenet_v3_large``) have a torchvision counterpart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..models import SSD
from ..models.torchvision_compat import convert_torchvision_state_dict
from ..pipeline import Detections
from ..postprocess import PostprocessConfig
from ..runtimes.detector import StageTimes

# Our architecture -> torchvision's builder of the same network.
TORCHVISION_NAMES = {"ssd300_vgg16": "ssd300_vgg16", "ssdlite_mobilenet_v3": "ssdlite320_mobilenet_v3_large"}


def baseline_unsupported(model: SSD) -> str | None:
    """Why ``model`` has no torchvision counterpart (None when it has one)."""
    config = model.config
    if config.arch not in TORCHVISION_NAMES:
        return f"{config.arch} has no torchvision counterpart (torchvision has {', '.join(TORCHVISION_NAMES.values())})"
    if config.score_function != "softmax":
        return "torchvision's SSD scores with a softmax; this model uses per-class sigmoids (focal loss)"
    if config.feature_indices is not None:
        return "a custom prior layout on a subset of the backbone's maps has no torchvision counterpart"
    if config.priors.explicit_sizes is not None:
        return "explicit prior sizes cannot be expressed as torchvision's DefaultBoxGenerator"
    return None


def build_torchvision_model(model: SSD, postprocess: PostprocessConfig = PostprocessConfig()) -> nn.Module:
    """torchvision's SSD with ``model``'s weights, priors, input size, normalisation and thresholds.

    Args:
        model: an ssd-deploy SSD of an architecture torchvision has (see :func:`baseline_unsupported`).
        postprocess: the thresholds our runtimes apply (score, NMS IoU, detections kept, top-k).

    Returns:
        A ``torchvision.models.detection.SSD`` in eval mode: ``tv(list of Tensor[3, H, W] RGB in
        [0, 1])`` gives per image ``boxes`` Tensor[D, 4] xyxy in that image's pixels, ``scores``,
        ``labels``.

    Raises:
        ValueError: the model has no torchvision counterpart (the reason says why).
    """
    from torchvision.models.detection.ssd import SSD as TorchvisionSSD
    from torchvision.models.detection._utils import retrieve_out_channels
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator

    reason = baseline_unsupported(model)
    if reason:
        raise ValueError(reason)
    config = model.config
    height, width = config.input_size
    backbone, make_head = _torchvision_parts(config)
    priors = config.priors
    anchors = DefaultBoxGenerator(
        [list(ratios) for ratios in priors.aspect_ratios],
        scales=list(priors.scales),
        steps=None if priors.steps is None else list(priors.steps),
        clip=priors.clip,
    )
    out_channels = retrieve_out_channels(backbone, (width, height))
    tv = TorchvisionSSD(
        backbone,
        anchors,
        (width, height),  # torchvision's size is (width, height)
        config.num_classes,
        image_mean=list(config.mean),
        image_std=list(config.std),
        head=make_head(out_channels, anchors.num_anchors_per_location(), config.num_classes),
        score_thresh=postprocess.score_threshold,
        nms_thresh=postprocess.iou_threshold,
        detections_per_img=postprocess.max_detections,
        topk_candidates=postprocess.topk_candidates,
    )
    tv.load_state_dict(to_torchvision_state_dict(model, tv.state_dict().keys()))
    return tv.eval()


def _torchvision_parts(config):
    """torchvision's backbone for ``config`` and a head constructor ``(channels, anchors, classes) -> head``."""
    from torchvision.models import mobilenet_v3_large
    from torchvision.models.detection import ssd300_vgg16
    from torchvision.models.detection.ssd import SSDHead
    from torchvision.models.detection.ssdlite import SSDLiteHead, _mobilenet_extractor

    if config.arch == "ssd300_vgg16":
        return ssd300_vgg16(weights=None, weights_backbone=None, num_classes=config.num_classes).backbone, SSDHead
    # What torchvision's ssdlite320_mobilenet_v3_large builds, with the tail chosen explicitly: its
    # builder ties the reduced tail to "no ImageNet weights", which need not match the checkpoint.
    norm_layer = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
    mobilenet = mobilenet_v3_large(weights=None, norm_layer=norm_layer, reduced_tail=config.reduced_tail)
    backbone = _mobilenet_extractor(mobilenet, 6, norm_layer)
    return backbone, partial(SSDLiteHead, norm_layer=norm_layer)


def to_torchvision_state_dict(model: SSD, torchvision_keys: Sequence[str]) -> dict[str, torch.Tensor]:
    """``model``'s weights under torchvision's names: the converter's renaming, run backwards.

    The converter maps each torchvision key to ours; mapping the keys themselves gives
    ``{our key: torchvision key}``, which we read the other way round.
    """
    name = TORCHVISION_NAMES[model.config.arch]
    ours = model.state_dict()
    renamed = convert_torchvision_state_dict({key: key for key in torchvision_keys}, name)
    missing = sorted(key for key in renamed if key not in ours)
    if missing:
        raise ValueError(f"torchvision {name}: no weights for {missing[:3]} in the ssd-deploy model")
    return {tv_key: ours[our_key] for our_key, tv_key in renamed.items()}


@dataclass
class TorchvisionBaseline:
    """Times torchvision's eager pipeline the way a user runs it, stage by stage.

    ``detect(images)`` converts the BGR images to RGB float tensors in [0, 1] (what a user writes),
    calls ``model(list_of_tensors)``, and converts the outputs to numpy. ``last_times`` splits it:
    pre-processing = host conversion + torchvision's transform (normalise, resize); network =
    backbone + head; post-processing = the rest (prior generation, decoding, NMS, rescaling to the
    image and the conversion to numpy), measured with forward hooks.
    """

    model: nn.Module
    class_names: Sequence[str] = ()
    last_times: StageTimes = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.last_times = StageTimes()
        self._marks: dict[str, float] = {}
        for name in ("transform", "backbone", "head"):
            module = getattr(self.model, name)
            module.register_forward_pre_hook(partial(self._mark, f"{name}_start"))
            module.register_forward_hook(partial(self._mark, f"{name}_end"))

    def _mark(self, key: str, *_: object) -> None:
        self._marks[key] = time.perf_counter()

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detections per image (boxes xyxy in the image's pixels), as :meth:`Detector.detect` gives."""
        marks = self._marks
        start = time.perf_counter()
        tensors = [torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1])).permute(2, 0, 1).float().div_(255.0) for image in images]
        with torch.inference_mode():
            outputs = self.model(tensors)
        results = [
            Detections(o["boxes"].numpy(), o["scores"].numpy(), o["labels"].numpy(), list(self.class_names)) for o in outputs
        ]
        end = time.perf_counter()
        pre = marks["transform_end"] - start
        network = (marks["backbone_end"] - marks["backbone_start"]) + (marks["head_end"] - marks["head_start"])
        total = end - start
        self.last_times = StageTimes(pre * 1e3, network * 1e3, (total - pre - network) * 1e3, batches=1)
        return results

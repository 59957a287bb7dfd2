"""torchvision's COCO SSD weights by name, from the local torch hub cache (nothing is downloaded).

    --model ssdlite320_mobilenet_v3_large -> <torch hub dir>/checkpoints/ssdlite320_mobilenet_v3_large_coco-*.pth

torchvision saves its weights there when a program asks for them (``weights="DEFAULT"``), so a
machine that ever ran torchvision's detector has them; elsewhere the file can be copied there.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError

# torchvision's file names: <model>_coco-<first hex digits of the file's SHA-256>.pth
TORCHVISION_WEIGHTS = {
    "ssd300_vgg16": "ssd300_vgg16_coco-*.pth",
    "ssdlite320_mobilenet_v3_large": "ssdlite320_mobilenet_v3_large_coco-*.pth",
}


def hub_checkpoints() -> Path:
    """Where torch keeps downloaded weights: ``$TORCH_HOME/hub/checkpoints`` (``~/.cache/torch/...``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_model(model: str | Path) -> Path:
    """``model`` as a file: an existing path as it is; a torchvision weights name
    (:data:`TORCHVISION_WEIGHTS`) as its COCO file in the torch hub cache; anything else as a path
    (whoever opens it says what is missing).

    Raises:
        CheckpointError: a weights name whose file is not in the cache, saying where it looked.
    """
    path = Path(model)
    if path.exists() or str(model) not in TORCHVISION_WEIGHTS:
        return path
    pattern = hub_checkpoints() / TORCHVISION_WEIGHTS[str(model)]
    found = sorted(pattern.parent.glob(pattern.name))
    if not found:
        raise CheckpointError(
            model,
            f"no such file, and torchvision's COCO weights of that name are not in the torch hub cache (looked for {pattern}). "
            f"Note: copy the file there (torchvision saves it there the first time it is asked for), or give its path",
        )
    return found[-1]

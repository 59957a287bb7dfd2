"""Helpers imported by several test modules (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import torch
from torch import nn

from ssd_deploy.models.informative import informative_init  # noqa: F401  (tests import it from here)
from ssd_deploy.training import TrainConfig

# The smallest training runs (tests/test_training.py, test_time_limit.py): on the `tiny_data` fixture's
# 24 + 6 generated 96 px images, 3 steps per epoch.
TINY = dict(arch="ssdlite_mobilenet_v2", input_size=(96, 96), batch_size=8, workers=0, progress=False, tensorboard=False,
            lr=0.01, warmup_epochs=0.5)


def tiny_config(tiny_data, output, **changes) -> TrainConfig:
    """A :data:`TINY` run on the ``tiny_data`` fixture's sets, writing to ``output``."""
    return TrainConfig(data=str(tiny_data / "train"), val=str(tiny_data / "val"), output=str(output), **{**TINY, **changes})


def train_on_shapes(arch: str = "ssdlite_mobilenet_v2", size: int = 128, steps: int = 200, seed: int = 0) -> nn.Module:
    """Train a small detector on generated shapes for ``steps`` AdamW steps (batch 16, ~0.4 s a step here).

    A stand-in for ``ssd-train`` in tests that need a *trained* model: after 200 steps the
    detector's scores are confident (top scores above 0.9) and spread, unlike a random model's.
    """
    import numpy as np

    from ssd_deploy.data.shapes import CLASS_NAMES, render_scene
    from ssd_deploy.loss import MultiBoxLoss
    from ssd_deploy.models import create_model
    from ssd_deploy.pipeline import preprocess

    torch.manual_seed(seed)
    model = create_model(arch, num_classes=len(CLASS_NAMES), input_size=(size, size))
    rng = np.random.default_rng(seed)
    scenes = [render_scene(rng, (size, size)) for _ in range(256)]
    images, _ = preprocess([scene.image for scene in scenes], (size, size))
    targets = [{"boxes": torch.from_numpy(s.boxes / size), "labels": torch.from_numpy(s.labels)} for s in scenes]
    loss = MultiBoxLoss(model.priors)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    model.train()
    for _ in range(steps):
        index = torch.randint(0, len(scenes), (16,))
        loc, logits = model(images[index])
        total = loss(loc, logits, [targets[i] for i in index])["total"]
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    return model.eval()


def padded_detections(detections, images, capacity: int = 200):
    """Detections of each image back in the padded layout (as the graphs give them), boxes as fractions of the image."""
    n = len(detections)
    num = torch.zeros(n, dtype=torch.int32)
    boxes, scores, labels = torch.zeros(n, capacity, 4), torch.zeros(n, capacity), torch.zeros(n, capacity, dtype=torch.int32)
    for i, (found, image) in enumerate(zip(detections, images)):
        height, width = image.shape[:2]
        k = len(found)
        num[i] = k
        boxes[i, :k] = torch.from_numpy(found.boxes) / torch.tensor([width, height, width, height])
        scores[i, :k] = torch.from_numpy(found.scores)
        labels[i, :k] = torch.from_numpy(found.labels).int()
    return num, boxes, scores, labels

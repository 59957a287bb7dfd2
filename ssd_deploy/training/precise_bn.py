"""Precise BatchNorm statistics: recompute the running mean and variance with the final weights.

BatchNorm's running statistics are an exponential average over training steps, and weights keep
changing under them; with torchvision's SSDLite momentum (0.03, for a 600-epoch recipe) they lag
far behind in short runs: measured here, a model with training loss 0.54 scored 7.3 in eval mode,
0.42 after recomputing. So before each validation the statistics are recomputed as plain averages
over training batches with the weights frozen (the "precise BN" of Detectron2 and pycls, after
Wu & Johnson, "Rethinking Batch in BatchNorm", 2021).
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn


@torch.no_grad()
def recompute_batchnorm_statistics(model: nn.Module, batches: Iterable[Tensor], device: torch.device) -> int:
    """Replace every BatchNorm layer's running statistics by their average over ``batches``.

    Args:
        model: leaves in the mode it came in.
        batches: image batches Tensor[N, 3, H, W] as the model takes them in training (N >= 2).

    Returns:
        The number of batches used (0 leaves the statistics as they were).
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not layers:
        return 0
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone(), m.momentum) for m in layers]
    was_training = model.training
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative moving average: the plain mean over the batches
    model.train()
    used = 0
    for images in batches:
        model(images.to(device, non_blocking=True))
        used += 1
    for layer, (mean, var, count, momentum) in zip(layers, saved):
        layer.momentum = momentum
        if used == 0:
            layer.running_mean.copy_(mean)
            layer.running_var.copy_(var)
            layer.num_batches_tracked.copy_(count)
    model.train(was_training)
    return used

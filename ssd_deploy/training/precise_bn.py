"""Precise BatchNorm statistics: recompute the running mean and variance with the final weights.

BatchNorm's running statistics are an exponential average over training steps, and weights keep
changing under them; with torchvision's SSDLite momentum (0.03, for a 600-epoch recipe) they lag
far behind in short runs: measured here, a model with training loss 0.54 scored 7.3 in eval mode,
0.42 after recomputing. So before each validation the statistics are recomputed as plain averages
over training batches with the weights frozen (the "precise BN" of Detectron2 and pycls, after
Wu & Johnson, "Rethinking Batch in BatchNorm", 2021).
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Iterator

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import update_bn

from .config import TrainConfig
from .data import epoch_loader
from .distributed import DistContext


def precise_bn(model: nn.Module, dataset: Any, config: TrainConfig, context: DistContext, epoch: int) -> None:
    """Recompute BatchNorm statistics on ``precise_bn_images`` augmented training images (the
    epoch's own seeded order, on this process alone), so validation and the saved checkpoint use
    statistics of the final weights. Batches of one image are left out (BatchNorm in training
    mode needs two)."""
    if config.precise_bn_images <= 0:
        return
    loader = epoch_loader(dataset, config, epoch, DistContext(device=context.device))
    limit = max(1, config.precise_bn_images // config.batch_size)
    batches = (images for images, _ in itertools.islice(loader, limit) if images.shape[0] > 1)
    recompute_batchnorm_statistics(model, batches, context.device)


@torch.no_grad()
def recompute_batchnorm_statistics(model: nn.Module, batches: Iterable[Tensor], device: torch.device) -> int:
    """Replace every BatchNorm layer's running statistics by their average over ``batches``
    (``torch.optim.swa_utils.update_bn``: a cumulative average, momentum None, in training mode).

    Args:
        model: leaves in the mode it came in.
        batches: image batches Tensor[N, 3, H, W] as the model takes them in training (N >= 2).

    Returns:
        The number of batches used (0 leaves the statistics as they were; ``update_bn`` alone
        would leave them reset to mean 0, variance 1).
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not layers:
        return 0
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in layers]
    used = 0

    def counted() -> Iterator[Tensor]:
        nonlocal used
        for images in batches:
            used += 1
            yield images.to(device, non_blocking=True)

    update_bn(counted(), model)
    if used == 0:
        for layer, (mean, var, count) in zip(layers, saved):
            layer.running_mean.copy_(mean)
            layer.running_var.copy_(var)
            layer.num_batches_tracked.copy_(count)
    return used

"""Training: configuration, data, optimisation, the loop, validation and logs (``ssd-train``)."""

from .config import TrainConfig

__all__ = ["TrainConfig", "train"]


def train(config: TrainConfig, resume=None, reserve_images: int = 0):
    """Train as ``config`` says (see :func:`ssd_deploy.training.trainer.train`)."""
    from .trainer import train as _train

    return _train(config, resume, reserve_images)

"""The training and validation data of a run: datasets, augmentation and per-epoch loaders.

Every epoch's randomness (sample order, augmentation draws, worker seeds) is derived from
``(seed, epoch)`` alone, so a run resumed from a checkpoint draws exactly what an uninterrupted
run would have drawn.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from ..data.dataset import DetectionDataset, load_dataset
from ..data.shapes import CLASS_NAMES as SHAPES_CLASS_NAMES
from ..data.shapes import ensure_shapes_dataset
from ..data.transforms import TrainTransform, collate
from ..errors import ConfigError
from .config import SHAPES, TrainConfig
from .distributed import DistContext, barrier

log = logging.getLogger("ssd_deploy.training")


def shapes_paths(config: TrainConfig) -> tuple[Path, Path]:
    """Where ``data=shapes`` keeps its generated sets: ``<output>/data/shapes-{train,val}``."""
    root = Path(config.output) / "data"
    return root / f"shapes-train-{config.shapes_train}-seed{config.seed}", root / f"shapes-val-{config.shapes_val}-seed{config.seed + 1}"


def ensure_shapes(config: TrainConfig, context: DistContext) -> tuple[Path, Path]:
    """Generate the shapes train/val sets once (rank 0); later runs reuse them and say so."""
    train_dir, val_dir = shapes_paths(config)
    if context.is_main:
        for folder, count, seed in ((train_dir, config.shapes_train, config.seed), (val_dir, config.shapes_val, config.seed + 1)):
            ensure_shapes_dataset(folder, count, seed=seed, progress=config.progress)
    barrier(context)
    return train_dir, val_dir


def load_datasets(config: TrainConfig, context: DistContext) -> tuple[DetectionDataset, DetectionDataset | None]:
    """The training set and (if any) the validation set, which uses the training set's label map."""
    train_path, val_path = config.data, config.val
    if config.data == SHAPES:
        generated_train, generated_val = ensure_shapes(config, context)
        train_path, val_path = str(generated_train), str(val_path or generated_val)
    names = list(SHAPES_CLASS_NAMES) if config.data == SHAPES else None  # the generator's order, not sorted
    train = load_dataset(
        train_path, config.data_format, split=config.train_split, class_names=names, images_dir=config.images_dir,
        skip_bad=config.skip_bad_data,
    )
    val = None
    if val_path is not None:
        val = load_dataset(
            val_path, config.data_format, split=config.val_split, class_names=train.class_names,
            images_dir=config.images_dir, skip_bad=config.skip_bad_data,
        )
    if context.is_main:
        print(f"data: {len(train)} training images, {len(val) if val is not None else 0} validation images, "
              f"{len(train.class_names) - 1} classes ({', '.join(train.class_names[1:6])}{', ...' if len(train.class_names) > 6 else ''})")
        for name, dataset in (("train", train), ("val", val)):
            summary = dataset.report.summary() if dataset is not None else ""
            if summary:
                print(f"data ({name}): {summary}")
    return train, val


def train_transform(config: TrainConfig, input_size: tuple[int, int], mean: tuple[float, float, float]) -> TrainTransform:
    """The paper's augmentation (or resize only with ``augment=False``); zoom-out fills with the
    model's normalisation mean, i.e. the dataset mean it was trained with."""
    fill = tuple(255.0 * m for m in mean)
    if not config.augment:
        return TrainTransform(input_size, fill, photometric=False, expand=False, crop=False, flip=False, keep_difficult=config.keep_difficult)
    return TrainTransform(input_size, fill, keep_difficult=config.keep_difficult)


class MemoryCachedDataset(Dataset):
    """A training set whose transformed samples stay in memory after their first read.

    For deterministic transforms only (``augment=False``: decode, then resize), where every epoch
    would decode the same files to the same tensors again. Decoding a 320 x 320 PNG takes ~2.4 ms
    on this project's 2-core CI machine, ~15 % of a demo training step (SSDLite at 160 px).
    Images are kept as uint8 (3 x H x W bytes each) and returned exactly as the transform gave
    them: it produces ``uint8 / 255`` values, which :meth:`__getitem__` checks on the first sample.
    Sample ``i`` is always the same sample, so runs and resumed runs stay bit-identical. Each
    training process keeps its own cache; with DistributedDataParallel every rank's sampler
    reshuffles each epoch, so each rank ends up holding most of the set.

    Attributes:
        dataset: the wrapped :class:`DetectionDataset`, its transform set.
    """

    def __init__(self, dataset: DetectionDataset) -> None:
        self.dataset = dataset
        self._samples: dict[int, tuple[Tensor, dict[str, Any]]] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def estimated_bytes(self, input_size: tuple[int, int]) -> int:
        """Memory the cache will hold once every image was read: 3 x H x W bytes per image."""
        return len(self) * 3 * input_size[0] * input_size[1]

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Any]]:
        cached = self._samples.get(index)
        if cached is None:
            image, target = self.dataset[index]
            stored = image.mul(255.0).round_().to(torch.uint8)
            if not self._samples and not torch.equal(stored.float().div_(255.0), image):
                raise ConfigError("cache_images: the training transform does not give uint8 / 255 pixels, so they cannot be cached exactly")
            cached = self._samples[index] = (stored, target)
        stored, target = cached
        return stored.float().div_(255.0), {key: value.clone() if isinstance(value, Tensor) else value for key, value in target.items()}


def epoch_seed(config: TrainConfig, epoch: int, rank: int = 0) -> int:
    return (config.seed * 1_000_003 + epoch * 7919 + rank) % (2**63)


def epoch_loader(dataset: DetectionDataset | MemoryCachedDataset, config: TrainConfig, epoch: int, context: DistContext) -> DataLoader:
    """The loader of one epoch, its order and augmentation seeded from (seed, epoch, rank)."""
    generator = torch.Generator().manual_seed(epoch_seed(config, epoch, context.rank))
    torch.manual_seed(epoch_seed(config, epoch, context.rank))  # augmentation in this process (workers=0)
    if context.distributed:
        sampler: Any = DistributedSampler(dataset, context.world_size, context.rank, shuffle=True, seed=config.seed, drop_last=True)
        sampler.set_epoch(epoch)
    else:
        sampler = RandomSampler(dataset, generator=generator)
    per_process = len(dataset) // context.world_size
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.workers,
        collate_fn=collate,
        drop_last=per_process >= config.batch_size,  # a last batch of 1 breaks BatchNorm
        generator=generator,
        pin_memory=context.device.type == "cuda",
    )

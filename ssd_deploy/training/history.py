"""What a run records per epoch: a CSV log, TensorBoard scalars (when installed) and a PNG of
the loss and mAP curves."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

from ..files import atomic_write

log = logging.getLogger("ssd_deploy.training")

COLUMNS = (
    "epoch", "lr", "loss", "loss_loc", "loss_cls", "images_per_s", "epoch_s",
    "map50", "map50_voc07", "coco_ap", "coco_ap50", "coco_ap75",
)


class History:
    """Epoch rows, written to ``<out>/log.csv`` (rewritten whole and atomically each epoch, so a
    resumed run continues the same file) and to TensorBoard under ``<out>/tensorboard``."""

    def __init__(self, out_dir: Path, rows: list[dict[str, Any]] | None = None, tensorboard: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.rows: list[dict[str, Any]] = list(rows or [])
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.out_dir / "tensorboard"))
            except ImportError:
                log.info("TensorBoard logging is off: the tensorboard package is not installed")

    @property
    def csv_path(self) -> Path:
        return self.out_dir / "log.csv"

    def add(self, row: dict[str, Any]) -> None:
        """Record one epoch (missing columns stay empty) and rewrite the CSV."""
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)) and not math.isnan(value):
                    self.writer.add_scalar(key, value, row["epoch"])
            self.writer.flush()

        def write(tmp: Path) -> None:
            with tmp.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(self.rows)

        atomic_write(self.csv_path, write)

    def plot(self, path: Path | None = None) -> Path | None:
        """Loss components and validation mAP against epochs as a PNG (None without matplotlib)."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            log.info("no curves.png: matplotlib is not installed (pip install 'ssd-deploy[plots]')")
            return None
        path = path or self.out_dir / "curves.png"
        epochs = [r["epoch"] for r in self.rows]
        figure, (loss_axis, map_axis) = plt.subplots(1, 2, figsize=(10, 4))
        for key, label in (("loss", "total"), ("loss_loc", "localisation"), ("loss_cls", "confidence")):
            loss_axis.plot(epochs, [r.get(key, math.nan) for r in self.rows], marker="o", label=label)
        loss_axis.set(xlabel="epoch", ylabel="training loss", title="Loss")
        loss_axis.legend()
        for key, label in (("map50", "mAP@0.5 (VOC all-point)"), ("map50_voc07", "mAP@0.5 (VOC07 11-point)"), ("coco_ap", "COCO AP@[.5:.95]")):
            points = [(r["epoch"], r[key]) for r in self.rows if isinstance(r.get(key), (int, float))]
            if points:
                map_axis.plot(*zip(*points), marker="o", label=label)
        map_axis.set(xlabel="epoch", ylabel="validation", title="Validation mAP", ylim=(0, 1))
        if map_axis.lines:
            map_axis.legend()
        figure.tight_layout()
        atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=100, format="png"))
        plt.close(figure)
        return path

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

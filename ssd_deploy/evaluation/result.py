"""The outcome of an evaluation: per-class rows, means, a Markdown table and JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..files import atomic_write


_COLUMNS = (("voc07", "ap_voc07", "AP VOC07"), ("voc", "ap_voc", "AP VOC"), ("coco", "ap_coco", "AP COCO"))


@dataclass(frozen=True)
class ClassResult:
    """One class's row. An AP is None where the metric was not asked for or the class has no
    (non-difficult) ground truth, so it has no recall to measure.

    Attributes:
        name: class name.
        label: class index (1 ... C-1).
        num_gt: ground-truth objects that count (not difficult).
        num_difficult: difficult objects (ignored by every metric).
        num_det: detections of the class.
        ap_voc07: VOC2007 11-point AP at IoU 0.5.
        ap_voc: VOC2010+ all-point AP at IoU 0.5.
        ap_coco: COCO AP averaged over IoU 0.5:0.95 (all areas, 100 detections per image).
    """

    name: str
    label: int
    num_gt: int
    num_difficult: int
    num_det: int
    ap_voc07: float | None = None
    ap_voc: float | None = None
    ap_coco: float | None = None


@dataclass(frozen=True)
class EvaluationResult:
    """Detection metrics of a dataset.

    Means are over the classes with an AP (classes without ground truth are left out, as the VOC
    devkit and COCOeval do); every number is None where it cannot be measured, never NaN.

    Attributes:
        map_voc07: mean VOC2007 11-point AP (None if not asked for or no class has ground truth).
        map_voc: mean VOC2010+ all-point AP.
        coco: COCOeval's summary by name ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10",
            "AR100", "ARs", "ARm", "ARl"); empty if COCO was not asked for.
        per_class: one row per foreground class, in label order.
        num_images: images evaluated.
        metrics: the metrics computed ("voc07", "voc", "coco").
    """

    map_voc07: float | None
    map_voc: float | None
    coco: dict[str, float | None] = field(default_factory=dict)
    per_class: list[ClassResult] = field(default_factory=list)
    num_images: int = 0
    metrics: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line with the mean APs that were computed."""
        parts = []
        if self.map_voc07 is not None:
            parts.append(f"mAP VOC07 {self.map_voc07:.4f}")
        if self.map_voc is not None:
            parts.append(f"mAP VOC {self.map_voc:.4f}")
        if self.coco:
            parts.append("COCO " + ", ".join(f"{k} {_number(self.coco[k])}" for k in ("AP", "AP50", "AP75", "AR100")))
        return f"{self.num_images} images: " + ("; ".join(parts) if parts else "no metric computed")

    def table(self) -> str:
        """Markdown table of the per-class results, then the summary line ("-": not measurable)."""
        columns = [(key, title) for metric, key, title in _COLUMNS if metric in self.metrics]
        header = ["class", "GT", "difficult", "detections"] + [title for _, title in columns]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        for row in self.per_class:
            cells = [row.name, str(row.num_gt), str(row.num_difficult), str(row.num_det)]
            cells += [_number(getattr(row, key)) for key, _ in columns]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n\n" + self.summary() + "\n"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (no NaN: unmeasurable numbers are None)."""
        return {
            "num_images": self.num_images,
            "metrics": list(self.metrics),
            "map_voc07": self.map_voc07,
            "map_voc": self.map_voc,
            "coco": dict(self.coco),
            "per_class": [asdict(row) for row in self.per_class],
        }


def write_result_json(result: EvaluationResult, path: str | Path) -> Path:
    """Write ``result.to_dict()`` as indented JSON, atomically (a reader never sees half a file)."""
    text = json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"

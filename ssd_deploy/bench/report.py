"""Benchmark reports: Markdown tables, CSV and JSON (no NaN: unmeasured is null) of the rows in
:mod:`.rows`, and their PNG plots."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

from ..files import atomic_write
from .machine import describe
from .plots import PlotUnavailable, plot_latency, plot_parity
from .rows import LatencyRow, ParityRow, SkipRecord

LATENCY_NOTES = (
    "End-to-end = Detector.detect on a list of original-size images (pre-processing, network call, "
    "post-processing); median, p90 and p99 over the timed runs after the warm-up; images/s = batch / median.",
    "Decoding and NMS run inside each exported graph, so the post-processing column is measured: the runtime also "
    "runs the network alone on the same batch, alternating with the full graph (exported files: a network-only "
    "companion, for ONNX cut out of the very file timed; pytorch: the runner's own network module); "
    "post-processing = median(full − network only) + the host's unpad and rescale; network = median of the "
    "network-only runs. Other = end-to-end median − pre − network − post: what no stage accounts for (copies in "
    "and out of the runtime, the detect call's own bookkeeping, and medians of separate runs not adding up exactly; "
    "it can be slightly negative). Vs own call = end to end over the runtime's own call on a ready batch "
    "(network + in-graph decode and NMS), minus 1: the host's share.",
    "Baseline = torchvision's eager SSD with the same weights and thresholds (model.eval()(list of tensors) under "
    "torch.inference_mode(), its fastest eager setting), split with forward "
    "hooks: pre = host conversion + transform (normalise, resize), network = backbone + head, post = prior "
    "generation + decoding + NMS + rescaling. Speed-up = baseline median / runtime median at the same batch size; "
    "ceiling = baseline median / the fastest network-only median of the model at that batch size (the speed-up "
    "if pre- and post-processing were free).",
)


@dataclass
class LatencyReport:
    """What ``ssd-bench latency`` measured, with the machine and settings."""

    rows: list[LatencyRow]
    skipped: list[SkipRecord] = field(default_factory=list)
    failed: list[SkipRecord] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=lambda: list(LATENCY_NOTES))
    unreadable_images: list[str] = field(default_factory=list)  # "<file>: <problem>" of each --images file left out

    def markdown(self) -> str:
        """Machine, settings, the results table, then what was skipped and how it was measured."""
        header = ["model", "runtime", "precision", "batch", "median ms", "p90 ms", "p99 ms", "images/s",
                  "pre ms", "network ms", "post ms", "other ms", "post %", "vs own call", "speed-up", "ceiling"]
        body = [
            [r.model, "torchvision (eager)" if r.baseline else r.runtime, r.precision, r.batch, _ms(r.median_ms), _ms(r.p90_ms),
             _ms(r.p99_ms), f"{r.images_per_s:.1f}", _ms(r.preprocess_ms), _ms(r.network_ms),
             _ms(r.postprocess_ms) + ("" if r.post_in_graph_ms is not None or r.baseline else "*"),
             _ms(r.other_ms), f"{100 * r.post_share:.1f}", _percent(r.over_own_call),
             "-" if r.speedup is None else f"{r.speedup:.2f}×", "-" if r.ceiling is None else f"{r.ceiling:.2f}×"]
            for r in self.rows
        ]
        lines = [f"Machine: {describe(self.machine)}" if self.machine else "", _settings_line(self.settings), "",
                 markdown_table(header, body, align="lllr" + "r" * 12)]
        if any(r.post_in_graph_ms is None and not r.baseline for r in self.rows):
            lines.append("\n\\* no network-only companion (an exported file was given): post = host unpad/rescale only; decoding and NMS are in the network column.")
        lines += _skip_lines("Skipped", self.skipped) + _skip_lines("Failed", self.failed)
        if self.unreadable_images:
            lines += ["", "Images left out (unreadable):"] + [f"- {line}" for line in self.unreadable_images]
        lines += ["", "How it was measured:"] + [f"- {note}" for note in self.notes]
        return "\n".join(line for line in lines if line is not None).strip() + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "settings": self.settings,
            "results": [asdict(row) for row in self.rows],
            "skipped": [asdict(s) for s in self.skipped],
            "failed": [asdict(s) for s in self.failed],
            "unreadable_images": list(self.unreadable_images),
            "notes": list(self.notes),
        }

    def csv(self) -> str:
        return rows_csv(self.rows, LatencyRow)

    def write(self, out_dir: str | Path, plot: bool = True) -> dict[str, Path]:
        """Write ``latency.md``, ``.csv``, ``.json`` and (with ``plot``) ``.png`` into ``out_dir``.

        Returns:
            {kind: path} of the files written. Without matplotlib the plot is left out with a note.
        """
        out = Path(out_dir)
        written = {
            "md": write_text(out / "latency.md", self.markdown()),
            "csv": write_text(out / "latency.csv", self.csv()),
            "json": write_json(out / "latency.json", self.to_dict()),
        }
        if plot and self.rows:
            _add_plot(written, self.notes, lambda: plot_latency(self.rows, out / "latency.png"))
        return written


def _add_plot(written: dict[str, Path], notes: list[str], draw: Callable[[], Path]) -> None:
    """``written["png"] = draw()``, or a note saying why there is no plot (no matplotlib)."""
    try:
        written["png"] = draw()
    except PlotUnavailable as error:
        notes.append(str(error))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """A Markdown table; ``align`` has one ``l``/``r`` per column (default: left)."""
    marks = ["---:" if (align[i:i + 1] or "l") == "r" else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def rows_csv(rows: Sequence[Any], row_type: type) -> str:
    names = [f.name for f in fields(row_type)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if value is None else value for key, value in asdict(row).items()})
    return buffer.getvalue()


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity (nested in dicts and lists) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, data: dict[str, Any]) -> Path:
    text = json.dumps(finite(data), indent=2, allow_nan=False, default=str) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def _pre_selection(pre_nms_topk: int) -> str:
    return f"best {pre_nms_topk} over all classes into NMS" if pre_nms_topk else "every candidate into NMS (exact)"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.0f}%"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _settings_line(settings: dict[str, Any]) -> str:
    keys = ("device", "threads", "batch_sizes", "warmup", "iterations", "max_seconds", "images")
    parts = [f"{key} {settings[key]}" for key in keys if key in settings]
    post = settings.get("postprocess")
    if post:
        parts.append(f"score > {post['score_threshold']:g}, NMS IoU {post['iou_threshold']:g}, top {post['topk_candidates']} per class, "
                     f"{_pre_selection(post.get('pre_nms_topk', 0))}, {post['max_detections']} kept")
    return ("Settings: " + ", ".join(parts)) if parts else ""


def _skip_lines(title: str, records: Sequence[SkipRecord]) -> list[str]:
    if not records:
        return []
    return ["", f"{title}:"] + [f"- {r.model}: {r.runtime}{' ' + r.precision if r.precision else ''}: {r.reason}" for r in records]


PARITY_NOTES = (
    "mAP in points (0-100): VOC07 = VOC2007 11-point mAP at IoU 0.5 (difficult objects ignored); COCO AP = "
    "AP@[.5:.95] (pycocotools). Δ = runtime − PyTorch FP32 (the eager reference, same thresholds).",
    "Raw outputs: on one sample batch, each runtime's network-only companion (same format and precision, no "
    "decoding, no NMS) and the reference network; both decoded on the host the same way, then compared "
    "element-wise: boxes as fractions of the image side, scores as probabilities. Detections found: confident "
    "(score > 0.3) reference detections the runtime also found (same label, IoU ≥ 0.5), and the other way round.",
)


@dataclass
class ParityReport:
    """What ``ssd-bench parity`` measured; ``ok`` is False when a difference exceeds its tolerance."""

    model: str
    dataset: str
    num_images: int
    rows: list[ParityRow]
    tolerances: dict[str, float]
    skipped: list[SkipRecord] = field(default_factory=list)
    failed: list[SkipRecord] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=lambda: list(PARITY_NOTES))

    @property
    def violations(self) -> list[str]:
        """One line per runtime beyond its tolerance."""
        lines = []
        for row in self.rows:
            if not row.ok:
                deltas = ", ".join(f"{name} {delta:+.2f}" for name, delta in (("mAP VOC07", row.delta_voc07), ("COCO AP", row.delta_coco)) if delta is not None)
                lines.append(f"{row.runtime} {row.precision}: {deltas} points vs PyTorch FP32 exceeds the tolerance of {row.tolerance} points")
        return lines

    @property
    def ok(self) -> bool:
        return not self.violations and not self.failed

    def markdown(self) -> str:
        header = ["runtime", "precision", "mAP VOC07", "Δ VOC07", "COCO AP", "Δ COCO", "tolerance", "max box diff",
                  "max score diff", "detections found", "ok"]
        body = [
            [r.runtime + (" (reference)" if r.reference else ""), r.precision, _points(r.map_voc07), _delta(r.delta_voc07),
             _points(r.coco_ap), _delta(r.delta_coco), "-" if r.tolerance is None else f"±{r.tolerance:g}",
             _small(r.max_box_diff), _small(r.max_score_diff), _found(r), "yes" if r.ok else "**NO**"]
            for r in self.rows
        ]
        lines = [f"Model: {self.model}; data: {self.dataset} ({self.num_images} images)",
                 f"Machine: {describe(self.machine)}" if self.machine else "", "",
                 markdown_table(header, body, align="ll" + "r" * 9)]
        if self.violations:
            lines += ["", "Beyond tolerance:"] + [f"- {line}" for line in self.violations]
        lines += _skip_lines("Skipped", self.skipped) + _skip_lines("Failed", self.failed)
        lines += ["", "How it was measured:"] + [f"- {note}" for note in self.notes]
        return "\n".join(lines).strip() + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "num_images": self.num_images,
            "ok": self.ok,
            "tolerances_points": dict(self.tolerances),
            "violations": self.violations,
            "results": [asdict(row) for row in self.rows],
            "skipped": [asdict(s) for s in self.skipped],
            "failed": [asdict(s) for s in self.failed],
            "machine": self.machine,
            "settings": self.settings,
            "notes": list(self.notes),
        }

    def write(self, out_dir: str | Path, plot: bool = True) -> dict[str, Path]:
        """Write ``parity.md``, ``parity.json`` and (with ``plot``) ``parity.png`` into ``out_dir``."""
        out = Path(out_dir)
        written = {"md": write_text(out / "parity.md", self.markdown()), "json": write_json(out / "parity.json", self.to_dict())}
        if plot and self.rows:
            _add_plot(written, self.notes, lambda: plot_parity(self.model, self.rows, out / "parity.png"))
        return written


def _points(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _delta(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def _small(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def _found(row: ParityRow) -> str:
    if row.found_of is None:
        return "-"
    return f"{row.found}/{row.found_of}, {row.found_back}/{row.found_back_of}"

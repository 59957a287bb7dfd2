"""PNG charts of benchmark reports (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import SSDDeployError
from ..files import atomic_write
from .rows import LatencyRow, ParityRow

STAGE_COLOURS = {"pre-processing": "#9ecae1", "network": "#3182bd", "post-processing (decode + NMS)": "#e6550d"}


class PlotUnavailable(SSDDeployError):
    """matplotlib is not installed."""


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable("no PNG plot: matplotlib is not installed. Note: pip install 'ssd-deploy[plots]'") from None
    return plt


def plot_latency(rows: Sequence[LatencyRow], path: Path) -> Path:
    """One panel per model and batch size: a horizontal bar per runtime × precision, split into
    pre-processing, network and post-processing (median ms per batch), speed-up at the bar's end."""
    plt = _pyplot()
    panels = sorted({(row.model, row.batch) for row in rows})
    heights = [max(2.0, 0.45 * sum(1 for r in rows if (r.model, r.batch) == panel) + 1.2) for panel in panels]
    figure, axes = plt.subplots(len(panels), 1, figsize=(10, sum(heights)), squeeze=False, gridspec_kw={"height_ratios": heights})
    for axis, (model, batch) in zip(axes[:, 0], panels):
        panel = sorted((r for r in rows if (r.model, r.batch) == (model, batch)), key=lambda r: r.median_ms, reverse=True)
        labels = [r.label for r in panel]
        left = [0.0] * len(panel)
        stages = {
            "pre-processing": [r.preprocess_ms for r in panel],
            "network": [r.network_ms for r in panel],
            "post-processing (decode + NMS)": [r.postprocess_ms for r in panel],
        }
        for name, values in stages.items():
            axis.barh(labels, values, left=left, color=STAGE_COLOURS[name], label=name)
            left = [a + b for a, b in zip(left, values)]
        for y, row in enumerate(panel):
            end = max(left[y], row.median_ms)
            text = f" {row.median_ms:.1f} ms" + ("" if row.speedup is None else f"  {row.speedup:.1f}×")
            axis.plot([row.median_ms], [y], marker="|", color="black", markersize=12)
            axis.text(end, y, text, va="center", fontsize=8)
        axis.set_title(f"{model}, batch {batch}: median latency per batch (| = end-to-end median)", fontsize=10)
        axis.set_xlabel("milliseconds")
        axis.set_xlim(0, max(max(left), max(r.median_ms for r in panel)) * 1.3)
    handles, names = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, names, loc="upper center", ncol=3, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.35 / sum(heights)))
    return _save(figure, plt, path)


def plot_parity(model: str, rows: Sequence[ParityRow], path: Path) -> Path:
    """Grouped bars: mAP VOC07 and COCO AP (points) per runtime × precision of ``model`` (a file
    name), tolerance breaches in red."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(max(6.0, 1.1 * len(rows) + 2), 4.5))
    positions = range(len(rows))
    width = 0.38
    for offset, key, title, colour in ((-width / 2, "map_voc07", "mAP VOC07", "#3182bd"), (width / 2, "coco_ap", "COCO AP", "#9ecae1")):
        values = [getattr(r, key) or 0.0 for r in rows]
        bars = axis.bar([p + offset for p in positions], values, width, label=title, color=colour)
        for bar, row in zip(bars, rows):
            if not row.ok:
                bar.set_edgecolor("red")
                bar.set_linewidth(2)
    axis.set_xticks(list(positions))
    axis.set_xticklabels([r.label for r in rows], rotation=30, ha="right", fontsize=8)
    axis.set_ylabel("points (0-100)")
    axis.set_title(f"{model}: accuracy per runtime (red edge: beyond tolerance vs PyTorch FP32)", fontsize=10)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, plt, path)


def _save(figure, plt, path: Path) -> Path:
    def write(tmp: Path) -> None:
        figure.savefig(tmp, format="png", dpi=110)

    try:
        return atomic_write(path, write)
    finally:
        plt.close(figure)

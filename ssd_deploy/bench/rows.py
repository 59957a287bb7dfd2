"""Benchmark results, one row each: a latency measurement, a parity comparison, a combination
not measured. Plain data (the report and the plots read them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Measured:
    """What a latency row measured: the input's file name, its architecture, runtime, precision,
    batch size, device and the file run (``baseline``: torchvision's eager pipeline)."""

    model: str
    arch: str
    runtime: str
    precision: str
    batch: int
    device: str
    file: str
    baseline: bool = False


@dataclass(kw_only=True)
class LatencyRow(Measured):
    """One runtime × precision × batch size of one model (the fields of :class:`Measured`, then
    the times). Times in milliseconds per batch.

    Attributes:
        iterations: timed runs.
        median_ms, p90_ms, p99_ms, mean_ms, min_ms: end-to-end latency of a ``detect`` call.
        images_per_s: batch / median.
        preprocess_ms, network_ms, postprocess_ms: median per stage (see :data:`ssd_deploy.bench.report.LATENCY_NOTES`).
        post_in_graph_ms: decoding + NMS inside the graph (None when not measured).
        post_host_ms: unpadding and rescaling on the host.
        post_share: postprocess_ms / median_ms.
        other_ms: the end-to-end median minus the three stage medians: what no stage accounts for
            (copies in and out of the runtime, the detect call's own work, and medians of separate
            runs not adding up exactly); may be slightly negative.
        own_call_ms: the runtime's own call (network + decode + NMS) on a ready batch: network-only
            median + in-graph post-processing median (None where not split).
        ceiling: the baseline's median over the fastest network-only median of this model and batch:
            the speed-up if pre- and post-processing were free (None without a baseline).
        split: how the stages were measured.
        speedup: baseline median / this median (None without a baseline).
    """

    iterations: int
    median_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    images_per_s: float
    preprocess_ms: float
    network_ms: float
    postprocess_ms: float
    post_in_graph_ms: float | None
    post_host_ms: float
    post_share: float
    split: str
    speedup: float | None = None
    other_ms: float = 0.0
    own_call_ms: float | None = None
    ceiling: float | None = None

    @property
    def label(self) -> str:
        return "torchvision eager" if self.baseline else f"{self.runtime} {self.precision}"

    @property
    def over_own_call(self) -> float | None:
        """End to end over the runtime's own call on a ready batch, minus 1 (host pre/post share)."""
        return None if not self.own_call_ms else self.median_ms / self.own_call_ms - 1.0


@dataclass
class SkipRecord:
    """A combination not measured: skipped (not available here) or failed (an error while running)."""

    model: str
    runtime: str
    precision: str | None
    reason: str


@dataclass
class ParityRow:
    """One runtime × precision over the dataset.

    Attributes:
        runtime, precision: what ran. file: the file it ran.
        map_voc07, coco_ap: points (0-100); None where not measurable.
        delta_voc07, delta_coco: runtime − reference, points.
        tolerance: the largest allowed |Δ| for this precision, points.
        max_box_diff: largest decoded-box coordinate difference on the sample batch (fraction of
            the image side); max_score_diff: largest score difference (probability).
        found, found_of: confident reference detections the runtime found, of how many;
        found_back, found_back_of: the other way round.
        ok: every |Δ| within tolerance. reference: this row is the PyTorch FP32 reference.
    """

    runtime: str
    precision: str
    file: str
    map_voc07: float | None
    coco_ap: float | None
    delta_voc07: float | None
    delta_coco: float | None
    tolerance: float | None
    max_box_diff: float | None
    max_score_diff: float | None
    found: int | None = None
    found_of: int | None = None
    found_back: int | None = None
    found_back_of: int | None = None
    ok: bool = True
    reference: bool = False

    @property
    def label(self) -> str:
        return f"{self.runtime} {self.precision}" + (" (reference)" if self.reference else "")

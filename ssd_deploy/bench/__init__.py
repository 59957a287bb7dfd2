"""``ssd-bench``: latency of every runtime against torchvision's eager pipeline, and accuracy parity.

    from ssd_deploy.bench import LatencyConfig, ParityConfig, run_latency, run_parity
    report = run_latency(["model.pt"], LatencyConfig(batch_sizes=(1, 8)), out_dir="runs/bench")
    print(report.markdown()); report.write("runs/bench")        # latency.md/.csv/.json/.png
    parity = run_parity("model.pt", ParityConfig(data=Path("VOCdevkit/VOC2007")), out_dir="runs/bench")
    parity.write("runs/bench"); parity.ok                         # False: a runtime beyond tolerance

Modules: ``variants`` (which runtime x precision, which files), ``latency``, ``parity``,
``baseline`` (torchvision's eager SSD with our weights), ``machine``, ``images``, ``rows`` (results
as data), ``report`` (tables, CSV, JSON), ``plots`` (PNG charts). The exported files and their
network-only companions come from the export cache, :mod:`ssd_deploy.artifacts`.
"""

from .baseline import TorchvisionBaseline, baseline_unsupported, build_torchvision_model
from .latency import LatencyConfig, run_latency
from .machine import machine_info
from .parity import DEFAULT_TOLERANCES, ParityConfig, run_parity
from .report import LatencyReport, ParityReport
from .rows import LatencyRow, ParityRow, SkipRecord
from .variants import plan_variants, prepare_variants

__all__ = [
    "DEFAULT_TOLERANCES",
    "LatencyConfig",
    "LatencyReport",
    "LatencyRow",
    "ParityConfig",
    "ParityReport",
    "ParityRow",
    "SkipRecord",
    "TorchvisionBaseline",
    "baseline_unsupported",
    "build_torchvision_model",
    "machine_info",
    "plan_variants",
    "prepare_variants",
    "run_latency",
    "run_parity",
]

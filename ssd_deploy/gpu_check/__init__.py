"""The GPU machine's first run in one call: what runs on CUDA, how it compares with CPU FP32, how fast.

    python benchmarks/gpu_check.py [--out runs/gpu-check] [--wheels DIR] [--device cpu]

Every check ends passed, failed or skipped with the reason (a package not installed, no CUDA
device, the time budget spent), and the report says which: ``OUT/gpu_check.md`` and
``OUT/gpu_check.json``. ``--device cpu`` runs the same checks on the CPU: a dry run of the script.

    environment        versions, GPU, the packages present and missing
    eager fp32/16/bf16 the pytorch runtime on CUDA against the CPU FP32 reference
    torchscript        an exported .ts on CUDA against CPU FP32
    aotinductor        a .pt2 compiled for CUDA against CPU FP32, and refused on the CPU
    torch.compile      the pytorch runtime through torch.compile on CUDA against CPU FP32
    amp training       AMP steps on CUDA, a resume, and an AMP resume of a CPU (no AMP) checkpoint
    suite              the suite's TensorRT, AMP and TensorRT-provider tests (pytest)
    bench              ssd-bench latency and parity on CUDA: the demo model, a 91-class SSDLite320

The models are untrained with spread weights (:func:`~ssd_deploy.models.informative.informative_init`):
nothing is downloaded, and their varied scores make the comparisons meaningful. This module imports
only the standard library and torch at the top, so it reports what is missing even where the
package's own dependencies (pillow, tqdm, pyyaml, onnxscript) are not installed.

    report.py       the outcomes (passed, failed, skipped with the reason) and the report
    environment.py  packages, CUDA, versions, wheels brought along
    workspace.py    the models, the CPU FP32 reference, the comparison with it, timing
    checks.py       the runtime, training and bench checks; plan and run_gpu_check
    suite.py        the suite's GPU tests through pytest
"""

from .checks import (
    aotinductor_file,
    check_amp_training,
    check_bench,
    check_runtime,
    plan,
    run_gpu_check,
    torchscript_file,
)
from .environment import (
    CORE_PACKAGES,
    EXPORT_PACKAGES,
    OPTIONAL_PACKAGES,
    TEST_PACKAGES,
    WHEELS,
    add_to_path,
    cuda_problem,
    install_wheels,
    machine_facts,
    missing_packages,
    needs,
    require_cuda,
)
from .report import CheckFailed, CheckResult, GpuCheckReport, SkipCheck, run_check
from .suite import REPO, SUITE, check_suite, merge_junit, parse_junit
from .workspace import HEAD_SCALE, MODELS, SAMPLE_BATCH, TIMED_BATCHES, Workspace, compare_with_cpu, conditioned_model, detector_outputs, time_batches

__all__ = [
    "CORE_PACKAGES",
    "EXPORT_PACKAGES",
    "HEAD_SCALE",
    "MODELS",
    "OPTIONAL_PACKAGES",
    "REPO",
    "SAMPLE_BATCH",
    "SUITE",
    "TEST_PACKAGES",
    "TIMED_BATCHES",
    "WHEELS",
    "CheckFailed",
    "CheckResult",
    "GpuCheckReport",
    "SkipCheck",
    "Workspace",
    "add_to_path",
    "aotinductor_file",
    "check_amp_training",
    "check_bench",
    "check_runtime",
    "check_suite",
    "compare_with_cpu",
    "conditioned_model",
    "cuda_problem",
    "detector_outputs",
    "install_wheels",
    "machine_facts",
    "merge_junit",
    "missing_packages",
    "needs",
    "parse_junit",
    "plan",
    "require_cuda",
    "run_check",
    "run_gpu_check",
    "time_batches",
    "torchscript_file",
]

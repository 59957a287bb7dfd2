"""AOTInductor packages (``.pt2``): ``torch.export`` then ahead-of-time compilation to machine code.

PyTorch now points TorchScript users to ``torch.export``; AOTInductor turns the exported program
into a shared library packaged with its weights. Python loads it with
``torch._inductor.aoti_load_package`` and C++ with ``torch::inductor::AOTIModelPackageLoader``.
NMS inside is torchvision's operator, so a C++ program must also load torchvision's operator
library (``torchvision/_C_stable.so`` from the wheel) before running the package.
The package is compiled for one device (the one ``example`` is on). Metadata is compiled in
(``aot_inductor.metadata``), beside AOTInductor's own ``AOTI_DEVICE_KEY`` (the compiled-for device type);
both are read from the archive without loading the model, and a package runs only on its device type
(:func:`ssd_deploy.runtimes.aotinductor.load_package` loads it).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import ExportError
from .graph import GraphSpec
from .metadata import INPUT_NAME

# The generated C++ wrapper only sequences kernel calls; the kernels themselves are compiled with
# -O3 either way. Compiling the wrapper at -O0 instead of torch's default -O1 took 5.4 s instead
# of 12.2 s for SSDLite on 2 cores, with no measurable change in latency (batch 1 and 8). This
# overrides torch's AOT_INDUCTOR_COMPILE_WRAPPER_OPT_LEVEL environment variable.
WRAPPER_OPT_LEVEL = "O0"
# AOTInductor precompiles its common headers once per machine (a cache in torch's temp folder). On
# 2 cores building them cost more than they save: SSDLite's package compiled in 49.8 s instead of
# 58.5 s on a fresh machine without them, and a second package in 31.4 s instead of 30.1 s.
PRECOMPILE_HEADERS = False
# Without this, Inductor bakes the exporting process's thread count into the kernels (one thread:
# no parallel loops at all; another count: num_threads(N)). A package runs where it is deployed,
# with that machine's threads: the kernels ask OpenMP for the count at run time.
DYNAMIC_THREADS = True


def write(network: nn.Module, spec: GraphSpec, example: Tensor, path: Path, metadata: dict[str, str]) -> None:
    """``torch.export`` the graph on ``example`` and package it with AOTInductor at ``path``."""
    graph = spec.build(network, nms_backend="torchvision")
    dynamic_shapes = None if spec.batch is not None else {INPUT_NAME: {0: torch.export.Dim("batch", min=1, max=1024)}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecations inside torchvision's meta kernels
        program = torch.export.export(graph, (example,), dynamic_shapes=dynamic_shapes, strict=False)
        configs = {"aot_inductor.metadata": dict(metadata), "aot_inductor.compile_wrapper_opt_level": WRAPPER_OPT_LEVEL,
                   "aot_inductor.precompile_headers": PRECOMPILE_HEADERS, "cpp.dynamic_threads": DYNAMIC_THREADS}
        torch._inductor.aoti_compile_and_package(program, package_path=str(path), inductor_configs=configs)


# The compiled-for device type ("cpu", "cuda") that AOTInductor writes into every package's metadata.
DEVICE_KEY = "AOTI_DEVICE_KEY"


def read_metadata(path: Path) -> dict[str, str]:
    """The compiled-in metadata (ours and AOTInductor's ``AOTI_*`` keys), read from the archive's
    JSON without loading the compiled model (which would load its weights onto the device)."""
    try:
        return dict(torch._C._aoti.AOTIModelPackageLoader.load_metadata_from_package(str(path), "model"))
    except Exception as error:  # the reader raises RuntimeError on a missing or malformed archive
        raise ExportError(path, f"not a readable AOTInductor package: {str(error).strip().splitlines()[0][:200]}") from None

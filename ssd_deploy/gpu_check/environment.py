"""The machine before any check: packages present and missing, CUDA, versions, and wheels brought
along (installed into the output folder only). Only the standard library and torch are imported."""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from ..devices import torch_device_problem
from .report import SkipCheck

# Import name -> distribution, for what the checks need beyond torch, torchvision, numpy, onnx, cv2.
CORE_PACKAGES = {"PIL": "pillow", "tqdm": "tqdm", "yaml": "pyyaml"}
EXPORT_PACKAGES = {"onnxscript": "onnxscript", "onnx_ir": "onnx-ir"}
TEST_PACKAGES = {"pytest": "pytest"}
OPTIONAL_PACKAGES = {"onnxruntime": "onnxruntime", "tensorrt": "tensorrt", "openvino": "openvino", "pycocotools": "pycocotools"}
# Wheels to bring to a machine without them (pure Python or manylinux, 11 MiB in all; pycocotools for COCO AP).
WHEELS = ("pillow", "tqdm", "pyyaml", "onnxscript", "onnx-ir", "ml-dtypes", "pytest", "pluggy", "iniconfig", "packaging", "pygments", "pycocotools")


def missing_packages(packages: dict[str, str]) -> list[str]:
    """Distributions of ``packages`` (import name -> distribution) that cannot be imported here."""
    missing = []
    for module, distribution in packages.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package missing, or a module set to None
            found = False
        if not found:
            missing.append(distribution)
    return missing


def needs(packages: dict[str, str]) -> None:
    """SkipCheck naming the missing distributions of ``packages`` (none missing: nothing)."""
    missing = missing_packages(packages)
    if missing:
        raise SkipCheck(f"needs {', '.join(missing)} (not installed; bring the wheels: --wheels DIR, see the README)")


def cuda_problem(device: str) -> str | None:
    """Why ``device`` cannot run the checks here, or None. ``cpu`` always can: a dry run of the
    checks themselves (the comparisons are then CPU against CPU)."""
    return torch_device_problem(device)


def require_cuda(device: str) -> None:
    """SkipCheck saying why ``device`` cannot run the checks here (``cpu`` always can)."""
    problem = cuda_problem(device)
    if problem:
        raise SkipCheck(problem)


def machine_facts(device: str) -> dict[str, Any]:
    """Versions, the GPU and which packages are present (``missing`` says which are not)."""
    facts: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda (torch)": torch.version.cuda,
        "device": device,
    }
    problem = cuda_problem(device)
    if torch.device(device).type == "cuda" and problem is None:
        index = torch.device(device).index or 0
        major, minor = torch.cuda.get_device_capability(index)
        facts["gpu"] = f"{torch.cuda.get_device_name(index)} (compute capability {major}.{minor})"
    else:
        facts["gpu"] = problem
    for module in ("torchvision", "numpy", "onnx", "cv2", "onnxruntime", "onnxscript"):
        facts[module] = _version(module)
    everything = {**CORE_PACKAGES, **EXPORT_PACKAGES, **TEST_PACKAGES, **OPTIONAL_PACKAGES}
    facts["missing"] = ", ".join(missing_packages(everything)) or "none"
    if facts["onnxruntime"] != "not installed":
        import onnxruntime

        facts["onnxruntime providers"] = ", ".join(onnxruntime.get_available_providers())
    return facts


def _version(module: str) -> str:
    if missing_packages({module: module}):
        return "not installed"
    try:
        return str(getattr(__import__(module), "__version__", "installed"))
    except Exception as error:  # noqa: BLE001 - a broken install is a fact to report
        return f"cannot be imported ({type(error).__name__})"


def install_wheels(wheels: Path, target: Path) -> list[str]:
    """Install every ``*.whl`` of ``wheels`` into ``target`` (no index, no dependencies resolved: the
    folder holds them all) and put ``target`` first on this process's and its children's path.

    Returns:
        The wheel file names installed.
    """
    files = sorted(wheels.glob("*.whl"))
    if not files:
        raise SystemExit(f"gpu_check: {wheels} holds no .whl files. Note: see the README's GPU check section")
    command = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet", "--target", str(target), *map(str, files)]
    subprocess.run(command, check=True)
    add_to_path(target)
    return [file.name for file in files]


def add_to_path(folder: Path) -> None:
    """``folder`` first on ``sys.path`` and on the PYTHONPATH that subprocesses (pytest) inherit."""
    sys.path.insert(0, str(folder))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(folder), *filter(None, [os.environ.get("PYTHONPATH")])])
    importlib.invalidate_caches()

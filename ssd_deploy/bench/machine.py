"""What a benchmark ran on: CPU, cores, GPU, library versions, load. Stored with every result."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from typing import Any

import torch

from ..artifacts import usable_cores

# Distributions whose versions matter for the numbers (absent ones are recorded as None).
PACKAGES = (
    "torch", "torchvision", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "nncf", "tensorrt",
    "numpy", "opencv-python-headless", "ssd-deploy",
)


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux, else what ``platform`` says)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def physical_cores() -> int | None:
    """Distinct (package, core) pairs in ``/proc/cpuinfo``; None where that cannot be read."""
    cores: set[tuple[str, str]] = set()
    package = core = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    package = value.strip()
                elif key == "core id":
                    core = value.strip()
                elif not key and package is not None and core is not None:
                    cores.add((package, core))
                    package = core = None
    except OSError:
        return None
    if package is not None and core is not None:
        cores.add((package, core))
    return len(cores) or None


def cpu_flags() -> list[str]:
    """The instruction-set extensions that decide reduced-precision speed (AVX-512, VNNI, BF16, AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8", "amx_fp16")
                    return [flag for flag in wanted if flag in flags]
    except OSError:
        pass
    return []


def gpus() -> list[str]:
    """Names of the CUDA devices torch sees."""
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine_info() -> dict[str, Any]:
    """A JSON-ready description of this machine and its software.

    Keys: ``cpu`` (model name), ``cpu_flags``, ``logical_cores``, ``physical_cores``,
    ``usable_cores`` (this process's CPU affinity), ``torch_threads``, ``gpus``, ``os``,
    ``load_average`` (1/5/15 minutes when measured: other work on the machine slows every number),
    ``versions``.
    """
    usable = usable_cores()
    try:
        load = [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical_cores(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "gpus": gpus(),
        "os": platform.platform(),
        "load_average": load,
        "versions": package_versions(),
    }


def describe(machine: dict[str, Any]) -> str:
    """One line: CPU, cores, GPU, main versions."""
    versions = machine.get("versions", {})
    libs = ", ".join(f"{name} {versions[name]}" for name in ("torch", "torchvision", "onnxruntime", "openvino", "tensorrt") if versions.get(name))
    gpu = ", ".join(machine.get("gpus") or []) or "no GPU"
    load = machine.get("load_average")
    return (
        f"{machine['cpu']} ({machine.get('physical_cores') or '?'} cores, {machine.get('usable_cores')} usable, "
        f"{machine.get('torch_threads')} torch threads); {gpu}; {libs}" + (f"; load average {load[0]}" if load else "")
    )

"""CMake flags for the C++ examples (``examples/cpp``), found in the current Python environment.

The wheels pip installed carry what the C++ programs link against:

- ``openvino``: headers, libraries and a CMake config (``openvino/cmake``) -> ``OpenVINO_DIR``.
- ``torch``: headers and libraries (``torch/include``, ``torch/lib``) -> ``TORCH_ROOT``, used
  directly, since torch's own CMake config insists on a CUDA toolkit for the CUDA wheel; plus
  the C++ ABI it was built with -> ``TORCH_CXX11_ABI``.
- ``onnxruntime``: the library only (``onnxruntime/capi/libonnxruntime.so.<version>``), no headers,
  so ``ssd_detect_onnxruntime`` needs an ONNX Runtime release's ``include/`` (``ONNXRUNTIME_ROOT``);
  the wheel's library is used when that folder has none.
- OpenCV: the ``opencv-python`` wheels have no C++ SDK either, so ``ssd_detect_opencv`` needs an
  OpenCV 5 build with its dnn module (``OpenCV_DIR``, its ``lib/cmake/opencv5``). OpenCV 4.x (Debian's
  ``libopencv-dev`` 4.6) has no NonMaxSuppression layer and its importer reads none of the files.

So building is two lines: ``cmake -S examples/cpp -B build/cpp $(ssd-cmake-flags)`` and
``cmake --build build/cpp``.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

ONNXRUNTIME_HEADER = "onnxruntime_cxx_api.h"
# where releases and distributions put the headers, relative to ONNXRUNTIME_ROOT
ONNXRUNTIME_INCLUDE_DIRS = ("include", "include/onnxruntime", "include/onnxruntime/core/session")


@dataclass(frozen=True)
class CMakeDependency:
    """One runtime the examples can be built against.

    Attributes:
        name: the runtime (``OpenVINO``, ``LibTorch``, ``ONNX Runtime``).
        program: the example program it enables.
        flags: the ``-D`` flags that point CMake at it; empty when it was not found.
        detail: where it was found, or why not and what to do.
    """

    name: str
    program: str
    flags: tuple[str, ...]
    detail: str

    @property
    def found(self) -> bool:
        return bool(self.flags)


def _package_dir(name: str) -> Path | None:
    """The installed package's folder, without importing it (None when not installed)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def openvino_dependency() -> CMakeDependency:
    """``OpenVINO_DIR`` from the ``openvino`` wheel (its ``openvino/cmake`` folder)."""
    name, program = "OpenVINO", "ssd_detect_openvino"
    package = _package_dir("openvino")
    if package is None:
        return CMakeDependency(name, program, (), "the openvino package is not installed. Note: pip install openvino")
    config = package / "cmake" / "OpenVINOConfig.cmake"
    if not config.is_file():
        return CMakeDependency(name, program, (), f"{config} is missing: this openvino wheel has no C++ SDK")
    return CMakeDependency(name, program, (f"-DOpenVINO_DIR={config.parent}",), f"CMake config in {config.parent}")


def libtorch_dependency() -> CMakeDependency:
    """``TORCH_ROOT`` (the ``torch`` package folder, with ``include/`` and ``lib/``) and its C++ ABI."""
    name, program = "LibTorch", "ssd_detect_libtorch"
    package = _package_dir("torch")
    if package is None:
        return CMakeDependency(name, program, (), "the torch package is not installed. Note: pip install torch")
    if not (package / "include" / "torch" / "script.h").is_file() or not (package / "lib").is_dir():
        return CMakeDependency(name, program, (), f"{package} has no include/torch/script.h or lib/: this torch has no C++ SDK")
    import torch  # only here: it takes seconds to import

    abi = int(torch.compiled_with_cxx11_abi())
    flags = (f"-DTORCH_ROOT={package}", f"-DTORCH_CXX11_ABI={abi}")
    return CMakeDependency(name, program, flags, f"torch {torch.__version__} headers and libraries in {package} (C++ ABI {abi})")


def _wheel_onnxruntime_library() -> Path | None:
    """The shared library inside the ``onnxruntime`` wheel (``capi/libonnxruntime.so.<version>``)."""
    package = _package_dir("onnxruntime")
    if package is None:
        return None
    libraries = sorted((package / "capi").glob("libonnxruntime.so*"))
    return libraries[0] if libraries else None


def onnxruntime_dependency(root: str | Path | None = None) -> CMakeDependency:
    """``ONNXRUNTIME_ROOT`` (an ONNX Runtime release: ``include/``, ``lib/``), or the environment variable.

    A root with headers but no library (e.g. the headers of the release matching the installed
    wheel) gets the wheel's library as ``ONNXRUNTIME_LIBRARY``.
    """
    name, program = "ONNX Runtime", "ssd_detect_onnxruntime"
    root = root or os.environ.get("ONNXRUNTIME_ROOT")
    note = (
        "Note: the onnxruntime wheel has no C++ headers; unpack an ONNX Runtime release (the onnxruntime-linux-x64-<version> "
        "archive of the version pip installed) and pass --onnxruntime-root or set ONNXRUNTIME_ROOT"
    )
    if not root:
        return CMakeDependency(name, program, (), f"no ONNX Runtime headers given. {note}")
    root = Path(root).expanduser().resolve()
    include = next((root / d for d in ONNXRUNTIME_INCLUDE_DIRS if (root / d / ONNXRUNTIME_HEADER).is_file()), None)
    if include is None:
        return CMakeDependency(name, program, (), f"{root} has no {ONNXRUNTIME_HEADER} under include/. {note}")
    flags = [f"-DONNXRUNTIME_ROOT={root}"]
    library = next(iter(sorted((root / "lib").glob("libonnxruntime.so*"))), None) if (root / "lib").is_dir() else None
    if library is None:
        library = _wheel_onnxruntime_library()
        if library is None:
            problem = f"{root} has headers but no lib/libonnxruntime.so, and no onnxruntime wheel is installed"
            return CMakeDependency(name, program, (), problem)
        flags.append(f"-DONNXRUNTIME_LIBRARY={library}")
    return CMakeDependency(name, program, tuple(flags), f"headers in {include}, library {library}")


def _cmake_version(config_dir: Path, package: str) -> str | None:
    """The version a CMake package's ``<package>Config-version.cmake`` declares (``set(<package>_VERSION x.y.z)``)."""
    version_file = config_dir / f"{package}Config-version.cmake"
    if not version_file.is_file():
        return None
    match = re.search(rf"set\(\s*{package}_VERSION\s+([0-9.]+)\s*\)", version_file.read_text(errors="replace"))
    return match.group(1) if match else None


def opencv_dependency(opencv_dir: str | Path | None = None) -> CMakeDependency:
    """``OpenCV_DIR`` (the folder of an OpenCV 5 build's ``OpenCVConfig.cmake``), or the environment variable."""
    name, program = "OpenCV DNN", "ssd_detect_opencv"
    opencv_dir = opencv_dir or os.environ.get("OpenCV_DIR")
    note = (
        "Note: the opencv-python wheels have no C++ SDK, and OpenCV 4.x (Debian's libopencv-dev) reads none of the exported "
        "files; build OpenCV 5 with its dnn module and pass --opencv-dir <its lib/cmake/opencv5> or set OpenCV_DIR"
    )
    if not opencv_dir:
        return CMakeDependency(name, program, (), f"no OpenCV 5 C++ SDK given. {note}")
    folder = Path(opencv_dir).expanduser().resolve()
    version = _cmake_version(folder, "OpenCV")
    if not (folder / "OpenCVConfig.cmake").is_file() or version is None:
        return CMakeDependency(name, program, (), f"{folder} has no OpenCVConfig.cmake with a version. {note}")
    if int(version.split(".")[0]) < 5:
        return CMakeDependency(name, program, (), f"{folder} is OpenCV {version}, which has no NonMaxSuppression layer. {note}")
    modules = folder / "OpenCVModules.cmake"
    if not modules.is_file() or "opencv_dnn" not in modules.read_text(errors="replace"):
        return CMakeDependency(name, program, (), f"OpenCV {version} in {folder} was built without its dnn module. {note}")
    return CMakeDependency(name, program, (f"-DOpenCV_DIR={folder}",), f"OpenCV {version} with dnn, CMake config in {folder}")


def cmake_dependencies(onnxruntime_root: str | Path | None = None, opencv_dir: str | Path | None = None) -> list[CMakeDependency]:
    """Every runtime the examples can use, found or not (in the order of the programs)."""
    return [openvino_dependency(), onnxruntime_dependency(onnxruntime_root), libtorch_dependency(), opencv_dependency(opencv_dir)]


def cmake_flags(onnxruntime_root: str | Path | None = None, opencv_dir: str | Path | None = None) -> list[str]:
    """The ``-D`` flags for ``cmake -S examples/cpp``: each runtime found in this environment."""
    return [flag for dependency in cmake_dependencies(onnxruntime_root, opencv_dir) for flag in dependency.flags]

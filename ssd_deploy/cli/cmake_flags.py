"""``ssd-cmake-flags``: the CMake flags that build the C++ examples against this Python environment."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..cpp import cmake_dependencies
from . import run_cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ssd-cmake-flags",
        description="Print the CMake flags that point the C++ examples (examples/cpp) at the runtimes installed "
        "in this Python environment, on one line: -DOpenVINO_DIR (the openvino wheel's CMake config), "
        "-DTORCH_ROOT and -DTORCH_CXX11_ABI (the torch wheel's headers and libraries), and -DONNXRUNTIME_ROOT "
        "(plus -DONNXRUNTIME_LIBRARY) when ONNX Runtime headers are given, and -DOpenCV_DIR when an OpenCV 5 build "
        "is given. A runtime that is not found gets no "
        "flag, and CMake skips its program. Build with: "
        "cmake -S examples/cpp -B build/cpp $(ssd-cmake-flags) && cmake --build build/cpp",
        epilog="Paths containing spaces are printed shell-quoted: use eval \"cmake -S examples/cpp -B build/cpp "
        "$(ssd-cmake-flags)\" then.",
    )
    parser.add_argument(
        "--onnxruntime-root",
        type=Path,
        metavar="DIR",
        help="an unpacked ONNX Runtime release (with include/onnxruntime_cxx_api.h; lib/ optional: without it the "
        "onnxruntime wheel's library is used); default: the ONNXRUNTIME_ROOT environment variable. The "
        "onnxruntime wheel has no C++ headers, so without this ssd_detect_onnxruntime is not built",
    )
    parser.add_argument(
        "--opencv-dir",
        type=Path,
        metavar="DIR",
        help="the CMake config folder (lib/cmake/opencv5) of an OpenCV 5 build with its dnn module; default: the "
        "OpenCV_DIR environment variable. The opencv-python wheels have no C++ SDK and OpenCV 4.x reads none of the "
        "exported files, so without this ssd_detect_opencv is not built",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="instead of the flags, print for each example program whether its runtime was found, where, "
        "or why not",
    )
    args = parser.parse_args(argv)
    dependencies = cmake_dependencies(args.onnxruntime_root, args.opencv_dir)
    if args.explain:
        for dependency in dependencies:
            state = "found" if dependency.found else "not found"
            print(f"{dependency.program}: {dependency.name} {state}: {dependency.detail}")
        return 0
    print(" ".join(shlex.quote(flag) for dependency in dependencies for flag in dependency.flags))
    return 0


def entry_point() -> None:
    sys.exit(run_cli(main))

"""The C++ examples (examples/cpp): built with CMake, run on generated images, compared with Python.

References: ``ssd_deploy.runtimes.load(file, runtime).detect(image)`` on the same files and images
(OpenVINO for ssd_detect_openvino, ONNX Runtime for ssd_detect_onnxruntime, TorchScript for
ssd_detect_libtorch, Python's cv2.dnn for ssd_detect_opencv): the same labels, boxes within 1 pixel, scores within 1e-4. The network input
the programs build must equal ``ssd_deploy.pipeline.preprocess``'s exactly (that is what makes
the detections agree). Each program is built once per test session (Ninja when present, -j2).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from ssd_deploy.cli.cmake_flags import main as cmake_flags_main
from ssd_deploy.cpp import cmake_dependencies, cmake_flags, onnxruntime_dependency, opencv_dependency
from ssd_deploy.data.shapes import generate_shapes_dataset
from ssd_deploy.export import ExportOptions, export_model
from ssd_deploy.images import read_image
from ssd_deploy.pipeline import preprocess
from ssd_deploy.runtimes import load

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "cpp"
BOX_ATOL, SCORE_ATOL = 1.0, 1e-4  # pixels; score units

# program -> (exported file it reads, Python runtime it is compared with)
PROGRAMS = {
    "ssd_detect_openvino": ("onnx", "openvino"),
    "ssd_detect_onnxruntime": ("onnx", "onnxruntime"),
    "ssd_detect_libtorch": ("ts", "torchscript"),
    "ssd_detect_opencv": ("onnx", "opencv"),  # built only against an OpenCV 5 C++ SDK (OpenCV_DIR)
}


def _toolchain_problem() -> str | None:
    if shutil.which("cmake") is None:
        return "CMake is not installed (it builds examples/cpp)"
    if not any(shutil.which(name) for name in (os.environ.get("CXX", "c++"), "c++", "g++", "clang++")):
        return "no C++ compiler (c++, g++ or clang++) is installed"
    return None


pytestmark = pytest.mark.skipif(_toolchain_problem() is not None, reason=str(_toolchain_problem()))


def _run(command: list, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, **kwargs)


def _check(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{' '.join(result.args)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="session")
def programs(tmp_path_factory) -> dict[str, Path]:
    """Configure and build examples/cpp with ssd-cmake-flags' flags; the programs that were built."""
    build = tmp_path_factory.mktemp("cpp_build")
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    _check(_run(["cmake", "-S", EXAMPLES, "-B", build, *generator, "-DCMAKE_BUILD_TYPE=Release", *cmake_flags()]))
    _check(_run(["cmake", "--build", build, "--parallel", "2"]))
    return {name: build / name for name in PROGRAMS if (build / name).is_file()}


def _program(programs: dict[str, Path], name: str) -> Path:
    if name not in programs:
        reasons = {dependency.program: dependency.detail for dependency in cmake_dependencies()}
        pytest.skip(f"{name} was not built: {reasons[name]}")
    return programs[name]


@pytest.fixture(scope="session")
def formats(programs) -> str:
    """The image formats the programs were built to read, from --help (PPM/PGM always; PNG and
    JPEG when CMake found libpng and libjpeg)."""
    if not programs:
        return "PPM/PGM"
    text = _check(_run([next(iter(programs.values())), "--help"])).stdout
    return next(line for line in text.splitlines() if line.split()[:1] == ["IMAGE"])  # "  IMAGE   PNG, ... image"


def _readable(image: Path, formats: str, folder: Path) -> Path:
    """``image`` (PNG), or the same pixels as PPM when the programs were built without libpng."""
    if "PNG" in formats:
        return image
    ppm = folder / f"{image.stem}.ppm"
    assert cv2.imwrite(str(ppm), read_image(image))
    return ppm


@pytest.fixture(scope="module")
def files(trained_checkpoint, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cpp_models")
    options = {
        "onnx": ExportOptions(format="onnx", dynamic_batch=True, verify=False),
        "ts": ExportOptions(format="torchscript", dynamic_batch=True, verify=False),
    }
    paths = {name: export_model(trained_checkpoint, folder / f"model.{name}", o).path for name, o in options.items()}
    # A fixed batch of 2, made from the dynamic file in a second rather than exported again: the
    # input's batch dimension pinned to 2 (OpenVINO refuses any other) and the metadata saying so.
    fixed = onnx.load(paths["onnx"])
    fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2
    next(p for p in fixed.metadata_props if p.key == "batch").value = "2"
    paths["fixed"] = folder / "fixed.onnx"
    onnx.save(fixed, paths["fixed"])
    return paths


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    """Generated scenes: smaller and larger than the 128 x 128 input, and not square."""
    folder = tmp_path_factory.mktemp("cpp_images")
    paths = []
    for seed, size, count in [(11, (200, 300), 2), (12, (96, 80), 1)]:
        root = generate_shapes_dataset(folder / f"set{seed}", count, seed=seed, size=size, progress=False)
        paths += sorted((root / "JPEGImages").glob("*.png"))
    return paths


def _detect(program: Path, model: Path, image: Path, *options) -> dict:
    result = _check(_run([program, model, image, *options]))
    return json.loads(result.stdout)


def _compare(record: dict, expected, image: Path) -> tuple[float, float]:
    """Assert same labels, boxes within BOX_ATOL, scores within SCORE_ATOL (as sets: sorted by label,
    score, box); return the largest box and score differences."""
    height, width = read_image(image).shape[:2]
    assert (record["width"], record["height"]) == (width, height)
    found = record["detections"]
    assert len(found) == len(expected), f"{image.name}: {len(found)} detections, Python {len(expected)}"
    actual = sorted(found, key=lambda d: (d["label"], -d["score"], d["box_xyxy"]))
    order = sorted(range(len(expected)), key=lambda i: (int(expected.labels[i]), -float(expected.scores[i]), *expected.boxes[i].tolist()))
    names = expected.names()
    box_diff = score_diff = 0.0
    for detection, i in zip(actual, order):
        assert (detection["label"], detection["class_name"]) == (int(expected.labels[i]), names[i])
        box_diff = max(box_diff, float(np.abs(np.array(detection["box_xyxy"]) - expected.boxes[i]).max()))
        score_diff = max(score_diff, abs(detection["score"] - float(expected.scores[i])))
    assert box_diff <= BOX_ATOL and score_diff <= SCORE_ATOL, (image.name, box_diff, score_diff)
    return box_diff, score_diff


@pytest.mark.parametrize("name", PROGRAMS)
def test_programs_detect_what_python_detects(name, programs, formats, files, images, tmp_path):
    program = _program(programs, name)
    file, runtime = PROGRAMS[name]
    # TorchScript's profiling executor re-optimises the graph on the first runs (seconds each);
    # the C++ program runs it once, unoptimised, which this does too, in a second.
    with load(files[file], runtime=runtime) as detector, torch.jit.optimized_execution(False):
        expected = detector.detect([read_image(path) for path in images])
    differences = []
    for path, found in zip(images, expected):
        readable = _readable(path, formats, tmp_path)
        record = _detect(program, files[file], readable)
        assert record["image"] == str(readable)
        differences.append(_compare(record, found, path))
    assert sum(len(found) for found in expected) > 0
    print(f"{name}: max box difference {max(d[0] for d in differences):.3g} px, max score difference {max(d[1] for d in differences):.3g}")


def test_fixed_batch_file_is_padded_with_blank_images(programs, formats, files, images, tmp_path):
    program = _program(programs, "ssd_detect_openvino")
    with load(files["fixed"], runtime="openvino") as detector:
        expected = detector.detect(read_image(images[0]))
    record = _detect(program, files["fixed"], _readable(images[0], formats, tmp_path))
    _compare(record, expected, images[0])


def _with_resize(model: Path, resize: str, folder: Path) -> Path:
    """A copy of the ONNX file ``model`` whose metadata records the resize method ``resize``."""
    copy = onnx.load(str(model))
    for prop in copy.metadata_props:
        if prop.key == "resize":
            prop.value = json.dumps(resize)
    path = folder / f"{resize}.onnx"
    onnx.save(copy, str(path))
    return path


# torchvision's method resizes float32 values in [0, 1]: the programs compute PyTorch's terms in
# PyTorch's order, but a compiler may fuse a multiply-add, which changes the last bit or two.
FLOAT_RESIZE_ATOL = 4 * float(np.finfo(np.float32).eps)


def _resize_implementation(program: Path) -> str:
    """What runs the "opencv" resize method in ``program``, from --help: "OpenCV <version>
    cv::resize" (CMake found OpenCV) or "built-in port of OpenCV's cv::resize"."""
    text = _check(_run([program, "--help"])).stdout
    line = next(line for line in text.splitlines() if line.startswith("Resize method opencv: "))
    return line.removeprefix("Resize method opencv: ").split(";")[0]


def _assert_input_equals_python(program: Path, model: Path, resize: str, formats: str, scene: np.ndarray, folder: Path) -> None:
    """The network input ``program`` builds equals ``preprocess``'s: bit for bit for OpenCV's
    method, within FLOAT_RESIZE_ATOL for torchvision's; for resized (down, up, 2x), unresized,
    gray, BGRA, 16-bit, JPEG and PPM images (those of the formats the program was built for)."""
    pictures = {
        "down.png": scene,
        "up.png": scene[:37, :53],
        "same.png": scene[:128, :128],
        "half.png": cv2.resize(scene, (256, 256)),
        "gray.png": cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY),
        "bgra.png": cv2.cvtColor(scene, cv2.COLOR_BGR2BGRA),
        "deep.png": scene.astype(np.uint16) * 256 + 100,
        "photo.jpg": scene,
        "plain.ppm": scene,
    }
    kinds = {".png": "PNG", ".jpg": "JPEG", ".ppm": "PPM"}
    for filename, picture in pictures.items():
        if kinds[Path(filename).suffix] not in formats:
            continue
        path = folder / filename
        assert cv2.imwrite(str(path), picture)
        _check(_run([program, model, path, "--dump-input", folder / "input.raw"]))
        expected, _ = preprocess([read_image(path)], (128, 128), resize)
        actual = np.fromfile(folder / "input.raw", dtype=np.float32).reshape(expected.shape)
        atol = FLOAT_RESIZE_ATOL if resize == "torchvision" else 0.0
        differ = np.abs(actual - expected.numpy()) > atol
        assert not differ.any(), f"{filename}: {np.count_nonzero(differ)} values differ by more than {atol}"


@pytest.mark.parametrize("resize", ["opencv", "torchvision"])
def test_network_input_equals_python_preprocessing(resize, programs, formats, files, images, tmp_path):
    """The programs as built here: OpenCV's method by cv::resize when CMake found OpenCV, else by
    the built-in port; torchvision's always by the port of PyTorch's kernel."""
    program = _program(programs, "ssd_detect_openvino")
    model = _with_resize(files["onnx"], resize, tmp_path)
    _assert_input_equals_python(program, model, resize, formats, read_image(images[0]), tmp_path)
    print(f"opencv resize method: {_resize_implementation(program)}")


def test_build_without_optional_libraries_equals_python(programs, formats, files, images, tmp_path):
    """Where the programs use OpenCV's cv::resize, the build without it is made too (as where
    OpenCV is not installed): -DSSD_WITH_OPENCV=OFF, and nlohmann/json's find_package disabled so
    the copy in third_party/ is compiled. Its network input must equal Python's as well, and it
    must refuse metadata that is not JSON."""
    program = _program(programs, "ssd_detect_openvino")
    if not _resize_implementation(program).startswith("OpenCV "):
        pytest.skip(
            "CMake found no OpenCV C++ library (core, imgproc; Debian: libopencv-dev), so the cv::resize path was not "
            "built: the built-in port is what test_network_input_equals_python_preprocessing checked"
        )
    build = tmp_path / "build"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    bare = ["-DSSD_WITH_OPENCV=OFF", "-DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=ON"]
    configured = _check(_run(["cmake", "-S", EXAMPLES, "-B", build, *generator, "-DCMAKE_BUILD_TYPE=Release", *bare, *cmake_flags()]))
    assert "parse JSON with: nlohmann/json from third_party/" in configured.stdout
    _check(_run(["cmake", "--build", build, "--parallel", "2", "--target", "ssd_detect_openvino"]))
    port = build / "ssd_detect_openvino"
    assert _resize_implementation(port) == "built-in port of OpenCV's cv::resize"
    _assert_input_equals_python(port, _with_resize(files["onnx"], "opencv", tmp_path), "opencv", formats, read_image(images[0]), tmp_path)
    metadata = {p.key: p.value for p in onnx.load(files["onnx"], load_external_data=False).metadata_props}
    bad = _tiny_onnx(tmp_path / "bad.onnx", {**metadata, "score_threshold": "1e999"})
    result = _run([port, bad, _readable(images[0], formats, tmp_path)])
    assert result.returncode == 2 and "'score_threshold' is not JSON" in result.stderr, result.stderr


def test_score_option_and_annotated_picture(programs, formats, files, images, tmp_path):
    program = _program(programs, "ssd_detect_openvino")
    image = _readable(images[0], formats, tmp_path)
    annotated = tmp_path / ("annotated.png" if "PNG" in formats else "annotated.ppm")
    everything = _detect(program, files["onnx"], image)["detections"]
    # A threshold halfway across the widest gap between neighbouring scores of this model's own
    # detections: some are kept and some dropped, whatever weights training gave on this CPU.
    scores = sorted({d["score"] for d in everything}, reverse=True)
    assert len(scores) >= 2, f"the model found {len(everything)} detections; the test needs two distinct scores"
    k = max(range(min(len(scores) - 1, 10)), key=lambda i: scores[i] - scores[i + 1])
    threshold = round((scores[k] + scores[k + 1]) / 2, 6)
    above = _detect(program, files["onnx"], image, "--score", str(threshold), "--out", annotated)["detections"]
    assert above == [d for d in everything if d["score"] > threshold]
    assert 0 < len(above) < len(everything)
    picture, original = cv2.imread(str(annotated)), read_image(images[0])
    assert picture.shape == original.shape and np.any(picture != original)
    low = _run([program, files["onnx"], image, "--score", "0.001"])
    assert low.returncode == 2 and "below the" in low.stderr


def _tiny_onnx(path: Path, metadata: dict[str, str] | None) -> Path:
    """A valid ONNX graph (images -> Identity -> out) with the given metadata_props."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["out"])],
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 128, 128])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, 128, 128])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.save(model, path)
    return path


class _NotADetector(torch.nn.Module):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images + 1


@pytest.mark.parametrize("name", PROGRAMS)
def test_bad_input_gives_one_clear_line_and_exit_code(name, programs, formats, files, images, tmp_path):
    program = _program(programs, name)
    file, _ = PROGRAMS[name]
    model, image = files[file], _readable(images[0], formats, tmp_path)
    metadata = {p.key: p.value for p in onnx.load(files["onnx"], load_external_data=False).metadata_props}
    if file == "onnx":
        wrong = [
            (_tiny_onnx(tmp_path / "raw.onnx", {**metadata, "nms": "false"}), "exported without NMS"),
            (_tiny_onnx(tmp_path / "tiny.onnx", metadata), "has no output num_detections, boxes, scores, labels"),
            (_tiny_onnx(tmp_path / "foreign.onnx", None), "no ssd-deploy metadata"),
        ]
    else:
        scripted = torch.jit.script(_NotADetector())
        scripted.save(str(tmp_path / "tiny.ts"), _extra_files={"metadata.json": json.dumps(metadata)})
        scripted.save(str(tmp_path / "foreign.ts"))
        wrong = [(tmp_path / "tiny.ts", "does not return the 4 outputs"), (tmp_path / "foreign.ts", "no ssd-deploy metadata")]
    corrupt = tmp_path / f"corrupt{model.suffix}"
    corrupt.write_bytes(b"not a model")
    cases = [
        ([tmp_path / f"missing{model.suffix}", image], 2, f"missing{model.suffix}: no such file"),
        ([corrupt, image], 2, f"{corrupt}: "),
        ([model, tmp_path / "missing.png"], 1, "missing.png: no such file"),
        ([model, model], 1, "not a readable image"),
        ([model, image, "--device", "nonsense"], 2, "nonsense"),
        ([model], 2, "expected MODEL and IMAGE"),
        *[([path, image], 2, message) for path, message in wrong],
    ]
    for arguments, code, message in cases:
        result = _run([program, *arguments])
        assert result.returncode == code, (arguments, result.returncode, result.stderr)
        assert result.stdout == "", arguments
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and message.lower() in last.lower(), (arguments, result.stderr)


# One value of the {key: JSON string} metadata that is not JSON, though a lenient parser takes it.
INVALID_JSON = {
    "lone surrogate": ("class_names", '["cat\\ud800"]', "surrogate"),
    "leading zero": ("input_size", "[0128, 128]", "unexpected number literal"),
    "raw tab in a string": ("class_names", '["cat\tdog"]', "U+0009"),
    "overflow to infinity": ("score_threshold", "1e999", "overflow"),
}


@pytest.mark.parametrize("name", PROGRAMS)
def test_metadata_that_is_not_strict_json_is_refused(name, programs, formats, files, images, tmp_path):
    """One line, naming the file and the key, with the JSON parser's reason; exit code 2."""
    program = _program(programs, name)
    metadata = {p.key: p.value for p in onnx.load(files["onnx"], load_external_data=False).metadata_props}
    image = _readable(images[0], formats, tmp_path)
    for case, (key, value, reason) in INVALID_JSON.items():
        bad = {**metadata, key: value}
        if PROGRAMS[name][0] == "onnx":
            path = _tiny_onnx(tmp_path / "bad.onnx", bad)
        else:
            path = tmp_path / "bad.ts"
            torch.jit.script(_NotADetector()).save(str(path), _extra_files={"metadata.json": json.dumps(bad)})
        result = _run([program, path, image])
        assert result.returncode == 2 and result.stdout == "", (case, result.returncode, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), (case, result.stderr)
        assert f"'{key}' is not JSON" in lines[0] and reason in lines[0], (case, lines[0])


def test_torchscript_metadata_json_that_is_not_json_is_refused(programs, formats, images, tmp_path):
    program = _program(programs, "ssd_detect_libtorch")
    path = tmp_path / "bad.ts"
    torch.jit.script(_NotADetector()).save(str(path), _extra_files={"metadata.json": '{"contract_version": "1", "nms": "tr\tue"}'})
    result = _run([program, path, _readable(images[0], formats, tmp_path)])
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path}: metadata.json is not JSON (") and "U+0009" in lines[0], lines[0]


def test_class_names_with_escapes_read_back_as_python_wrote_them(programs, formats, files, images, tmp_path):
    """json.dumps escapes non-ASCII (astral characters as surrogate pairs), quotes, backslashes
    and tabs: the programs print the names Python wrote."""
    program = _program(programs, "ssd_detect_openvino")
    model = onnx.load(str(files["onnx"]))
    prop = next(p for p in model.metadata_props if p.key == "class_names")
    count = len(json.loads(prop.value))
    names = ["__background__"] + [f'café 🚀 "{i}"\\\t/ü' for i in range(1, count)]
    prop.value = json.dumps(names)
    path = tmp_path / "names.onnx"
    onnx.save(model, str(path))
    found = _detect(program, path, _readable(images[0], formats, tmp_path))["detections"]
    assert found and all(d["class_name"] == names[d["label"]] for d in found)


def test_help_names_every_option(programs):
    for name, program in programs.items():
        text = _check(_run([program, "--help"])).stdout
        for option in ("MODEL", "IMAGE", "--out", "--device", "--score", "--dump-input"):
            assert option in text, (name, option)


def test_cmake_flags_point_at_the_installed_wheels(capsys):
    assert cmake_flags_main([]) == 0
    printed = capsys.readouterr().out.split()
    pytest.importorskip("openvino")
    openvino_dir = next(flag for flag in printed if flag.startswith("-DOpenVINO_DIR="))
    assert (Path(openvino_dir.split("=", 1)[1]) / "OpenVINOConfig.cmake").is_file()
    torch_root = Path(next(flag for flag in printed if flag.startswith("-DTORCH_ROOT=")).split("=", 1)[1])
    assert (torch_root / "include" / "torch" / "script.h").is_file() and torch_root == Path(torch.__file__).parent
    assert f"-DTORCH_CXX11_ABI={int(torch.compiled_with_cxx11_abi())}" in printed
    assert cmake_flags_main(["--explain"]) == 0
    explained = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in explained] == ["ssd_detect_openvino", "ssd_detect_onnxruntime", "ssd_detect_libtorch", "ssd_detect_opencv"]


def _opencv_config(folder: Path, version: str, modules: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "OpenCVConfig.cmake").write_text("# an OpenCV build's config\n")
    (folder / "OpenCVConfig-version.cmake").write_text(f"set(OpenCV_VERSION {version})\n")
    (folder / "OpenCVModules.cmake").write_text(modules)
    return folder


def test_opencv_dir_must_be_opencv_5_with_dnn(tmp_path, monkeypatch):
    monkeypatch.delenv("OpenCV_DIR", raising=False)
    assert not opencv_dependency().found and "no OpenCV 5 C++ SDK given" in opencv_dependency().detail
    assert "no OpenCVConfig.cmake" in opencv_dependency(tmp_path).detail
    debian = _opencv_config(tmp_path / "opencv4", "4.6.0", "add_library(opencv_dnn SHARED IMPORTED)\n")
    assert not opencv_dependency(debian).found and "OpenCV 4.6.0, which has no NonMaxSuppression layer" in opencv_dependency(debian).detail
    bare = _opencv_config(tmp_path / "bare", "5.0.0", "add_library(opencv_core SHARED IMPORTED)\n")
    assert not opencv_dependency(bare).found and "built without its dnn module" in opencv_dependency(bare).detail
    full = _opencv_config(tmp_path / "full", "5.0.0", "add_library(opencv_core SHARED IMPORTED)\nadd_library(opencv_dnn SHARED IMPORTED)\n")
    monkeypatch.setenv("OpenCV_DIR", str(full))
    assert opencv_dependency().flags == (f"-DOpenCV_DIR={full.resolve()}",)
    assert f"-DOpenCV_DIR={full.resolve()}" in cmake_flags()


def test_onnxruntime_root_with_headers_only_uses_the_wheels_library(tmp_path):
    assert not onnxruntime_dependency(tmp_path).found  # no headers: not found, and says why
    assert "onnxruntime_cxx_api.h" in onnxruntime_dependency(tmp_path).detail
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "onnxruntime_cxx_api.h").write_text("// headers of a release\n")
    dependency = onnxruntime_dependency(tmp_path)
    pytest.importorskip("onnxruntime")
    assert dependency.flags[0] == f"-DONNXRUNTIME_ROOT={tmp_path.resolve()}"
    library = Path(dependency.flags[1].removeprefix("-DONNXRUNTIME_LIBRARY="))
    assert library.name.startswith("libonnxruntime.so") and library.is_file()


def test_readme_shows_how_to_build_and_run():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Use the model from C++") :]
    for text in ("cmake -S examples/cpp -B build/cpp $(ssd-cmake-flags)", "cmake --build build/cpp", "ssd_detect_openvino", '"box_xyxy"'):
        assert text in section, text

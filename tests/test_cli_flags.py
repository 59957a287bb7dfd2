"""One set of flags across the console scripts: the model is --model (--checkpoint an alias), the
device defaults to auto everywhere, progress bars are --progress/--no-progress everywhere."""

from __future__ import annotations

import pytest
import torch

from ssd_deploy.cli import bench, demo, detect, evaluate, export, train
from ssd_deploy.devices import resolve_auto

# (script, argv naming a model, the flag naming it)
MODEL_ARGV = {
    "ssd-detect": (detect.build_parser(), ["image.jpg"]),
    "ssd-eval": (evaluate.build_parser(), ["--data", "voc"]),
    "ssd-export": (export.build_parser(), []),
    "ssd-bench latency": (bench.build_parser(), ["latency"]),
    "ssd-bench parity": (bench.build_parser(), ["parity"]),
}


def _model(script: str, args) -> object:
    return {"ssd-bench latency": lambda: args.model_options[0], "ssd-bench parity": lambda: args.model_option}.get(script, lambda: args.model)()


@pytest.mark.parametrize("script", MODEL_ARGV)
@pytest.mark.parametrize("flag", ["--model", "--checkpoint"])
def test_model_device_and_progress_flags_are_the_same_everywhere(script, flag):
    parser, argv = MODEL_ARGV[script]
    args = parser.parse_args(argv + [flag, "model.pt"])
    assert str(_model(script, args)) == "model.pt"
    assert args.device == "auto"
    out = parser.parse_args(argv + [flag, "model.pt", "--output", "results"])
    assert str(out.output if script == "ssd-export" else out.out) == "results"  # --out, with --output an alias
    if script != "ssd-export":  # an export has no progress bar
        assert args.progress is True
        assert parser.parse_args(argv + [flag, "model.pt", "--no-progress"]).progress is False


def test_train_and_demo_take_the_same_progress_flags():
    parser = train.build_parser()
    assert parser.parse_args([]).progress is None  # not given: the config file's or the default
    assert parser.parse_args(["--progress"]).progress is True
    assert parser.parse_args(["--no-progress"]).progress is False
    assert parser.parse_args(["--progress", "false"]).progress is False  # the config-style spelling still works
    assert parser.parse_args(["--no-amp", "--tensorboard"]).amp is False
    assert demo.build_parser().parse_args(["--no-progress"]).progress is False
    assert train.DEFAULTS.device == "auto"


@pytest.mark.parametrize("cuda", [False, True])
def test_auto_device_is_cuda_when_there_is_one(monkeypatch, cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    expected = "cuda" if cuda else "cpu"
    assert resolve_auto("auto") == resolve_auto("AUTO", "onnxruntime") == expected
    assert resolve_auto("auto", "openvino") == "cpu"  # a CUDA GPU is no OpenVINO device
    assert resolve_auto("auto", "opencv") == "cpu"  # OpenCV DNN runs on the CPU here
    assert resolve_auto("cuda:1") == "cuda:1" and resolve_auto("cpu") == "cpu"
    parser = export.build_parser()
    for argv, device in ((["--format", "onnx"], "cpu"), (["--format", "torchscript"], "cpu"), (["--format", "pt2"], expected),
                         (["--fp16"], expected), (["--format", "pt2", "--device", "cpu"], "cpu")):
        assert export._device(parser.parse_args(["--model", "m.pt", *argv])) == device, argv


def test_format_is_only_an_export_format():
    with pytest.raises(SystemExit):
        bench.build_parser().parse_args(["parity", "model.pt", "--format", "voc"])
    assert bench.build_parser().parse_args(["parity", "model.pt", "--data-format", "voc"]).data_format == "voc"

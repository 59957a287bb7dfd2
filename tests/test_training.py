"""Training: configuration, optimiser and schedule, exact resume (also after Ctrl-C mid-epoch),
DistributedDataParallel on gloo, logs and checkpoints, and the ssd-train / ssd-eval commands."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import signal
import subprocess
import sys

import pytest
import torch

from ssd_deploy.checkpoint import load_checkpoint, save_checkpoint
from ssd_deploy.cli import run_cli
from ssd_deploy.cli.train import OPTIONS, build_parser
from ssd_deploy.cli.train import main as train_main
from ssd_deploy.errors import CheckpointError, ConfigError
from ssd_deploy.models import create_model
from ssd_deploy.training import TrainConfig
from ssd_deploy.training.optim import build_optimizer, lr_factor
from ssd_deploy.training.trainer import train

from helpers import TINY, tiny_config


def test_lr_schedule_warmup_multistep_cosine():
    config = TrainConfig(warmup_epochs=1.0, warmup_factor=0.001, milestones=(0.5, 0.75), gamma=0.1)
    # 10 steps per epoch, 4 epochs = 40 steps: warm-up over steps 0-9, x0.1 from step 20, x0.01 from 30.
    factors = [lr_factor(step, 40, config, 10) for step in range(40)]
    assert factors[0] == pytest.approx(0.001) and factors[5] == pytest.approx(0.001 * 0.5 + 0.5)
    assert factors[10] == factors[19] == 1.0 and factors[20] == pytest.approx(0.1) and factors[30] == pytest.approx(0.01)
    cosine = dataclasses.replace(config, schedule="cosine", warmup_epochs=0.0)
    assert lr_factor(0, 40, cosine, 10) == 1.0 and lr_factor(20, 40, cosine, 10) == pytest.approx(0.5)
    assert lr_factor(40, 40, cosine, 10) == pytest.approx(0.0, abs=1e-12)


def test_sgd_groups_follow_the_paper():
    model = create_model("ssd300_vgg16", num_classes=3)
    optimizer = build_optimizer(model, TrainConfig(arch="ssd300_vgg16"))
    by_id = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    conv = model.head.regression.predictors[0]
    assert by_id[id(conv.weight)]["lr"] == 1e-3 and by_id[id(conv.weight)]["weight_decay"] == 5e-4
    assert by_id[id(conv.bias)]["lr"] == 2e-3 and by_id[id(conv.bias)]["weight_decay"] == 0.0  # lr_mult 2, decay_mult 0
    assert by_id[id(model.backbone.conv4_3_norm.weight)]["weight_decay"] == 0.0
    assert optimizer.defaults["momentum"] == 0.9
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_a_step_the_loss_scaler_skips_changes_nothing(optimizer):
    """With AMP, the first steps overflow (the scale starts at 65536) and the scaler skips them:
    the weights and the optimiser's state (SGD's momentum) must stay as they were. Fused SGD
    advanced its momentum on such steps, and the weights turned NaN at the first real step."""
    model = create_model("ssdlite_mobilenet_v2", num_classes=3, input_size=(64, 64))
    optimizer = build_optimizer(model, TrainConfig(optimizer=optimizer, lr=0.01), loss_scaling=True)
    scaler = torch.amp.GradScaler("cpu")  # the CUDA scaler's logic, runnable here
    before = [p.detach().clone() for p in model.parameters()]
    for step in range(2):
        scaler.scale(torch.ones(()))  # the loss is scaled each step (this creates the scale)
        for p in model.parameters():
            p.grad = torch.full_like(p, float("inf") if step == 0 else 1e-3)
        scaler.step(optimizer)
        scaler.update()
        if step == 0:
            assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
            # SGD keeps no state yet; fused AdamW creates its moments as zeros with step 0
            assert not any(torch.any(v) for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v))
            assert scaler.get_scale() == 32768.0
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before))  # the second step was taken
    assert build_optimizer(model, TrainConfig())._step_supports_amp_scaling  # without a scaler SGD stays fused (3x faster here)


def test_config_file_then_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 3\nbatch_size: 4\nlr: 0.02\ninput_size: 160\n")
    args = build_parser().parse_args(["--config", str(path), "--lr", "0.05"])
    from ssd_deploy.cli.train import config_from_args

    config, given = config_from_args(args)
    assert (config.epochs, config.batch_size, config.lr, config.input_size) == (3, 4, 0.05, (160, 160))
    assert given == {"lr": 0.05}
    path.write_text("epoch: 3\n")
    with pytest.raises(ConfigError, match=r"unknown settings epoch \(did you mean epochs\?\)"):
        TrainConfig.from_file(path)
    with pytest.raises(ConfigError, match="arch custom needs priors"):
        TrainConfig(arch="custom")


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for flags, name, _, _ in OPTIONS:
        assert flags[0] in text
    assert "(default: sgd)" in text and "--resume" in text and "--config" in text


def test_resume_is_exact_after_epoch_and_after_ctrl_c(tiny_data, tmp_path, monkeypatch):
    """2 epochs straight == 1 epoch + resume (extended to 2 epochs) + 1 epoch, bit for bit on CPU;
    and a run interrupted mid-epoch then resumed == the uninterrupted run."""
    # A constant schedule: extending a run from 1 to 2 epochs does not move its milestones.
    constant = dict(schedule="constant")
    straight = train(tiny_config(tiny_data, tmp_path / "straight", epochs=2, **constant))
    assert [row["epoch"] for row in straight.history] == [1, 2]
    first = train(tiny_config(tiny_data, tmp_path / "resumed", epochs=1, **constant))
    after_one = load_checkpoint(first.last_checkpoint)[0].state_dict()
    resumed = train(tiny_config(tiny_data, tmp_path / "resumed", epochs=2, **constant), resume=first.last_checkpoint)
    want = load_checkpoint(straight.last_checkpoint)[0].state_dict()
    got = load_checkpoint(resumed.last_checkpoint)[0].state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert [row["loss"] for row in resumed.history] == [row["loss"] for row in straight.history]
    assert not all(torch.equal(want[k], v) for k, v in after_one.items())  # epoch 2 did train

    # Ctrl-C during the second batch of epoch 2: that step finishes, last.pt holds 2 batches of the
    # epoch, and resuming finishes the run with the uninterrupted run's weights.
    from ssd_deploy.training import trainer as trainer_module

    real_step, calls = trainer_module.MultiBoxLoss.forward, {"n": 0}

    def interrupting_forward(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3 + 2:  # 3 batches per epoch (24 images / 8); the 5th is epoch 2, batch 2
            signal.raise_signal(signal.SIGINT)
        return real_step(self, *args, **kwargs)

    multistep = train(tiny_config(tiny_data, tmp_path / "multistep", epochs=2))  # the default schedule
    want = load_checkpoint(multistep.last_checkpoint)[0].state_dict()
    monkeypatch.setattr(trainer_module.MultiBoxLoss, "forward", interrupting_forward)
    stopped = train(tiny_config(tiny_data, tmp_path / "ctrl_c", epochs=2))
    monkeypatch.setattr(trainer_module.MultiBoxLoss, "forward", real_step)
    assert stopped.interrupted
    data = load_checkpoint(stopped.last_checkpoint)[2]
    assert (data["epoch"], data["iteration"]) == (1, 2)
    finished = train(tiny_config(tiny_data, tmp_path / "ctrl_c", epochs=2), resume=stopped.last_checkpoint)
    got = load_checkpoint(finished.last_checkpoint)[0].state_dict()
    assert all(torch.equal(want[k], got[k]) for k in want)
    assert [row["epoch"] for row in finished.history] == [1, 2]
    assert finished.history[1]["loss"] == pytest.approx(multistep.history[1]["loss"], rel=1e-12)


def test_run_outputs_log_curves_best(tiny_data, tmp_path):
    result = train(tiny_config(tiny_data, tmp_path / "run", epochs=2, eval_every=1))
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(float(r["loss"]) > 0 and float(r["images_per_s"]) > 0 and r["map50"] != "" for r in rows)
    assert (tmp_path / "run" / "curves.png").stat().st_size > 10_000
    assert result.best_checkpoint is not None and result.best_checkpoint.is_file()
    model, names, data = load_checkpoint(result.best_checkpoint)
    assert names[1:] == ["circle", "square", "triangle", "star", "ring"]
    assert {"optimizer", "scheduler", "epoch", "train_config", "history"} <= set(data)
    assert TrainConfig.from_dict(data["train_config"]).input_size == (96, 96)
    assert not list((tmp_path / "run").glob(".*tmp*"))  # atomic writes leave no temporary files


def test_cached_images_train_the_same_weights_reading_each_file_once(tiny_data, tmp_path, monkeypatch):
    """--cache-images (no augmentation): the same weights bit for bit as reading every epoch,
    with each training image decoded once over 2 epochs and their BatchNorm recomputations."""
    from ssd_deploy.data import dataset as dataset_module

    reads: list[str] = []
    real_read = dataset_module.read_image

    def counting_read(path):
        reads.append(str(path))
        return real_read(path)

    monkeypatch.setattr(dataset_module, "read_image", counting_read)
    weights = {}
    training_reads = {}
    for cache in (False, True):
        reads.clear()
        result = train(tiny_config(tiny_data, tmp_path / f"cache-{cache}", epochs=2, augment=False, cache_images=cache, precise_bn_images=16))
        weights[cache] = load_checkpoint(result.last_checkpoint)[0].state_dict()
        training_reads[cache] = [path for path in reads if str(tiny_data / "train") in path]
    assert all(torch.equal(weights[False][key], weights[True][key]) for key in weights[False])
    assert len(training_reads[True]) == len(set(training_reads[True])) == 24  # every image, once
    assert len(training_reads[False]) > 48  # 2 epochs, plus the BatchNorm passes


@pytest.mark.parametrize("changes, problem", [
    (dict(cache_images=True, augment=True), "cache_images keeps resized images, so it needs augment false"),
    (dict(cache_images=True, augment=False, workers=2), "cache_images needs workers 0"),
])
def test_cache_images_needs_a_fixed_transform_in_process(changes, problem):
    with pytest.raises(ConfigError, match=problem):
        TrainConfig(**{**TINY, **changes})


def test_resume_refuses_non_training_checkpoint(tiny_data, tmp_path):
    plain = save_checkpoint(tmp_path / "plain.pt", create_model("ssdlite_mobilenet_v2", num_classes=6, input_size=(96, 96)))
    code = run_cli(train_main, ["--resume", str(plain), "--progress", "false"])
    assert code == 2
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        from ssd_deploy.training.trainer import resume_config

        resume_config(plain, {})


def test_ddp_two_cpu_processes_on_gloo(tiny_data, tmp_path):
    """torchrun with 2 processes (gloo): both train, rank 0 alone writes, and the processes end with
    identical weights (the trainer compares every rank's weights with rank 0's at the end)."""
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "ssd_deploy.cli.train", "--data", str(tiny_data / "train"), "--val", str(tiny_data / "val"),
        "--arch", "ssdlite_mobilenet_v2", "--input-size", "96", "96", "--batch-size", "4", "--epochs", "1",
        "--workers", "0", "--output", str(out), "--progress", "false", "--tensorboard", "false", "--device", "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "distributed: 2 processes (gloo)" in run.stdout
    assert "weights identical on all 2 ranks" in run.stdout
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert len(rows) == 1 and float(rows[0]["loss"]) > 0
    data = load_checkpoint(out / "last.pt")[2]
    assert data["iteration"] == 0 and data["epoch"] == 1


def test_it_learns_shapes(tmp_path):
    """The smallest configuration (SSDLite-MobileNetV2 at 128 px, from scratch) trained for ~1.5
    minutes on 400 generated images: validation mAP@0.5 far above the untrained model's.

    Measured here (seed 0): untrained 0.001 on the validation set; trained 0.016 on the validation
    set (0.021 before the optimiser step was fused: the same maths, other rounding) and over 0.25
    on its own training images. The gap says it memorises 400 images in 250 steps; a much larger
    generated set is what generalises (README: 0.89 after 72,000 image-steps)."""
    from ssd_deploy.training.model import build_training_model
    from ssd_deploy.training.validate import evaluate_detector, model_detector
    from ssd_deploy.data.dataset import load_dataset

    config = TrainConfig(
        data="shapes", shapes_train=400, shapes_val=100, input_size=(128, 128), epochs=10, optimizer="adamw", lr=3e-3,
        weight_decay=1e-4, schedule="cosine", warmup_epochs=0.5, augment=False, eval_every=10, workers=0,
        progress=False, tensorboard=False, output=str(tmp_path / "learn"),
        channels_last=False,  # the layout these numbers were measured with
    )
    result = train(config)
    val = load_dataset(tmp_path / "learn" / "data" / "shapes-val-100-seed1")
    torch.manual_seed(0)
    untrained = build_training_model(config, len(val.class_names))
    untrained_map = evaluate_detector(model_detector(untrained, val.class_names), val, progress=False).map_voc
    trained_map = result.history[-1]["map50"]
    print(f"val mAP@0.5: untrained {untrained_map:.4f}, trained {trained_map:.4f}")
    assert untrained_map < 0.005
    assert trained_map >= 0.012 and trained_map > 4 * untrained_map
    model = load_checkpoint(result.best_checkpoint)[0]
    train_set = load_dataset(tmp_path / "learn" / "data" / "shapes-train-400-seed0")
    assert evaluate_detector(model_detector(model, train_set.class_names), train_set, progress=False).map_voc >= 0.25


def test_ssd_eval_checkpoint_and_onnx_agree(tiny_data, tmp_path, capsys):
    """ssd-eval on a checkpoint (PyTorch) and on its ONNX export (ONNX Runtime) gives the same mAP,
    writes metrics.json and pictures; bad inputs are one-line errors."""
    pytest.importorskip("onnxruntime")
    import json

    from ssd_deploy.cli.evaluate import main as eval_main
    from ssd_deploy.export import ExportOptions, export_model
    from ssd_deploy.postprocess import PostprocessConfig

    result = train(tiny_config(tiny_data, tmp_path / "run", epochs=1))
    onnx_path = tmp_path / "model.onnx"
    # A model trained for 3 steps has near-tied scores, where NMS may keep a different one of two
    # boxes (the export check reports that); mAP over the dataset must still agree.
    export_model(result.last_checkpoint, onnx_path, ExportOptions(format="onnx", dynamic_batch=True, postprocess=PostprocessConfig(), verify=False))
    reports = {}
    for name, model in (("pt", result.last_checkpoint), ("onnx", onnx_path)):
        out = tmp_path / f"eval_{name}"
        assert eval_main(["--model", str(model), "--data", str(tiny_data / "val"), "--out", str(out), "--no-progress", "--draw", "2"]) == 0
        reports[name] = json.loads((out / "metrics.json").read_text())
        assert len(list(out.glob("*.jpg"))) == 2
    text = capsys.readouterr().out
    assert "| circle |" in text and "mAP VOC07" in text
    assert reports["pt"]["runtime"] == "pytorch" and reports["onnx"]["runtime"] == "onnxruntime"
    assert reports["pt"]["images"] == 6 and reports["pt"]["map_voc"] is not None
    for key in ("map_voc07", "map_voc"):
        assert reports["onnx"][key] == pytest.approx(reports["pt"][key], abs=1e-3)
    assert reports["onnx"]["coco"]["AP"] == pytest.approx(reports["pt"]["coco"]["AP"], abs=1e-3)
    assert run_cli(eval_main, ["--model", str(tmp_path / "missing.pt"), "--data", str(tiny_data / "val")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    assert run_cli(eval_main, ["--model", str(result.last_checkpoint), "--data", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_scaler_state_loads_only_when_there_is_one():
    """An enabled scaler (a CUDA run with AMP) raises on the empty state a run without AMP saved;
    only a saved state is restored, and a disabled scaler ignores one."""
    from ssd_deploy.training.trainer import load_scaler_state

    enabled = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    with pytest.raises(RuntimeError, match="state dict is empty"):
        enabled.load_state_dict({})  # why the trainer must not pass it on
    load_scaler_state(enabled, {})
    assert enabled.get_scale() == 2.0**10
    saved = torch.amp.GradScaler("cpu", init_scale=2.0**7, growth_interval=5).state_dict()
    load_scaler_state(enabled, saved)
    assert enabled.get_scale() == 2.0**7 and enabled.get_growth_interval() == 5
    disabled = torch.amp.GradScaler("cpu", enabled=False)
    load_scaler_state(disabled, saved)
    assert disabled.state_dict() == {}


@pytest.mark.parametrize("first_amp, then_amp", [(False, True), (True, False)])
def test_resume_across_amp_on_and_off(first_amp, then_amp, tiny_data, tmp_path, monkeypatch):
    """A checkpoint of a run without AMP resumes with AMP on, and the other way round. An enabled
    CPU GradScaler stands in for the CUDA one: its state and checks are the same."""
    from ssd_deploy.training import trainer as trainer_module

    def scaler_for(amp: bool):
        return lambda device, use_amp: torch.amp.GradScaler("cpu", enabled=amp, init_scale=2.0**8)

    monkeypatch.setattr(trainer_module, "_grad_scaler", scaler_for(first_amp))
    first = train(tiny_config(tiny_data, tmp_path / "run", epochs=1, eval_every=5))
    saved = load_checkpoint(first.last_checkpoint)[2]["scaler"]
    assert bool(saved) == first_amp and (not first_amp or saved["scale"] == 2.0**8)
    monkeypatch.setattr(trainer_module, "_grad_scaler", scaler_for(then_amp))
    resumed = train(tiny_config(tiny_data, tmp_path / "run", epochs=2, eval_every=5), resume=first.last_checkpoint)
    assert [row["epoch"] for row in resumed.history] == [1, 2] and math.isfinite(resumed.history[1]["loss"])
    assert bool(load_checkpoint(resumed.last_checkpoint)[2]["scaler"]) == then_amp


def test_process_group_waits_longer_than_nccls_default(monkeypatch):
    """Rank 0 validates alone while the others wait in barrier(): the group's timeout must outlast
    NCCL's 10-minute default, or its watchdog aborts the run mid-validation."""
    from datetime import timedelta

    from ssd_deploy.training import distributed

    joined = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda **kwargs: joined.update(kwargs))
    monkeypatch.setattr(distributed.dist, "get_rank", lambda: 0)
    monkeypatch.setattr(distributed.dist, "get_world_size", lambda: 2)
    context = distributed.init_distributed("cpu")
    assert context.distributed and joined["backend"] == "gloo"
    assert joined["timeout"] == distributed.PROCESS_GROUP_TIMEOUT > timedelta(minutes=10)
    distributed.init_distributed("cpu", timeout=timedelta(hours=3))
    assert joined["timeout"] == timedelta(hours=3)


def test_ssd_train_on_a_torchvision_classifier_by_name(tiny_data, tmp_path):
    """--arch resnet18: torchvision's classifier tapped at strides 8, 16, 32 trains like a preset
    and its checkpoint records the taps."""
    out = tmp_path / "resnet18"
    code = run_cli(train_main, [
        "--arch", "resnet18", "--data", str(tiny_data / "train"), "--val", str(tiny_data / "val"), "--out", str(out),
        "--input-size", "96", "96", "--batch-size", "8", "--epochs", "1", "--workers", "0", "--no-progress",
        "--no-tensorboard", "--precise-bn-images", "0",
    ])
    assert code == 0
    model, names, _ = load_checkpoint(out / "last.pt")
    assert model.config.arch == "resnet18"
    assert model.config.taps == ("layer2.1.relu_1", "layer3.1.relu_1", "layer4.1.relu_1")
    assert names[1:] == ["circle", "square", "triangle", "star", "ring"]

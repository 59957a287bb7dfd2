"""Checkpoints: atomic writes, safe loading, and one clear error for each bad file."""

from __future__ import annotations

import pytest
import torch

from ssd_deploy.checkpoint import load_checkpoint, save_checkpoint
from ssd_deploy.errors import CheckpointError
from ssd_deploy.files import atomic_write
from ssd_deploy.models import create_model

NAMES = ["__background__", "circle", "square"]


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return create_model("ssdlite_mobilenet_v2", num_classes=3, input_size=(128, 128)).eval()


def test_round_trip_keeps_weights_config_and_names(tmp_path, small_model):
    path = save_checkpoint(tmp_path / "m.pt", small_model, NAMES, epoch=3)
    model, names, data = load_checkpoint(path)
    assert names == NAMES and data["epoch"] == 3 and model.config == small_model.config
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        for ours, theirs in zip(model(x), small_model(x)):
            assert torch.equal(ours, theirs)
    assert not any(".tmp" in p.name for p in tmp_path.iterdir())


def test_failed_write_leaves_previous_file_intact(tmp_path):
    path = tmp_path / "keep.bin"
    path.write_bytes(b"old")

    def explode(tmp):
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(path, explode)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.bin"]


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "nope.pt")


def test_truncated_file(tmp_path, small_model):
    path = save_checkpoint(tmp_path / "m.pt", small_model, NAMES)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="corrupt or truncated") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


class Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_pickled_code_is_never_executed(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "ssd-deploy-checkpoint", "payload": Payload()}, path)
    with pytest.raises(CheckpointError, match="not plain data"):
        load_checkpoint(path)
    assert "pickled code ran" not in capsys.readouterr().out


def test_unknown_dict_is_rejected(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not an ssd-deploy checkpoint"):
        load_checkpoint(path)


def test_expected_architecture_is_checked(tmp_path, small_model):
    path = save_checkpoint(tmp_path / "m.pt", small_model, NAMES)
    with pytest.raises(CheckpointError, match="for architecture 'ssdlite_mobilenet_v2', not 'ssd300_vgg16'"):
        load_checkpoint(path, expected_arch="ssd300_vgg16")


def test_weights_for_another_architecture_are_rejected(tmp_path, small_model):
    path = save_checkpoint(tmp_path / "m.pt", small_model, NAMES)
    data = torch.load(path, weights_only=True)
    data["model_config"]["arch"] = "ssdlite_mobilenet_v3"
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="weights do not fit architecture 'ssdlite_mobilenet_v3'"):
        load_checkpoint(path)


def test_torchvision_state_dict_is_accepted(tmp_path):
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    torch.manual_seed(0)
    tv = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=91)
    path = tmp_path / "tv.pth"
    torch.save(tv.state_dict(), path)
    model, names, _ = load_checkpoint(path)
    assert model.config.arch == "ssdlite_mobilenet_v3" and model.config.num_classes == 91
    assert names[1] == "person" and len(names) == 91


def test_checkpoint_file_is_plain_data(tmp_path, small_model):
    path = save_checkpoint(tmp_path / "m.pt", small_model, NAMES)
    # weights_only loading succeeds, i.e. nothing but tensors and builtin containers inside.
    data = torch.load(path, weights_only=True)
    assert data["format"] == "ssd-deploy-checkpoint" and data["class_names"] == NAMES

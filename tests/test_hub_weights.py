"""torchvision's COCO weights by name from the torch hub cache, without downloading: the name finds
the file torchvision saved there, gives the same model as the file's path, and a missing file is
one error saying where it looked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ssd_deploy
from ssd_deploy.data.shapes import render_scene
from ssd_deploy.errors import SSDDeployError
from ssd_deploy.export import ExportOptions, export_model
from ssd_deploy.models.hub import hub_checkpoints, resolve_model
from ssd_deploy.models.informative import informative_init

NAME = "ssdlite320_mobilenet_v3_large"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # a directory set by torch.hub.set_dir would win
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_a_name_finds_the_cached_weights(hub, tmp_path, monkeypatch):
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    assert hub_checkpoints() == hub
    with pytest.raises(SSDDeployError, match=rf"{NAME}: no such file, .*looked for {hub}/{NAME}_coco-\*\.pth"):
        ssd_deploy.load(NAME)
    torch.manual_seed(0)
    model = informative_init(ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=91))
    hub.mkdir(parents=True)
    cached = hub / f"{NAME}_coco-a79551df.pth"  # torchvision's own file name
    torch.save(model.state_dict(), cached)
    assert resolve_model(NAME) == cached and resolve_model(tmp_path) == tmp_path  # a path stays a path
    image = render_scene(np.random.default_rng(0), (240, 320)).image
    by_name, by_path = ssd_deploy.load(NAME)(image), ssd_deploy.load(cached)(image)
    np.testing.assert_array_equal(by_name.boxes, by_path.boxes)
    np.testing.assert_array_equal(by_name.scores, by_path.scores)
    monkeypatch.chdir(tmp_path)  # an export of a name is written here, never into the cache
    result = export_model(NAME, options=ExportOptions(format="onnx", verify=False))
    assert result.path == tmp_path / f"{NAME}.onnx" and result.path.is_file()
    assert sorted(p.name for p in hub.iterdir()) == [cached.name]

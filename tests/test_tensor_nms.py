"""The plain-tensor NMS inside TorchScript files returns what torchvision's batched_nms returns."""

from __future__ import annotations

import warnings

import pytest
import torch
from torchvision.ops import batched_nms
from torchvision.ops.boxes import _batched_nms_vanilla

from ssd_deploy.postprocess.tensor_nms import batched_nms_tensor


def _random_case(seed: int, num: int, groups: int, tied: bool):
    generator = torch.Generator().manual_seed(seed)
    centre = torch.rand(num, 2, generator=generator)
    half = 0.02 + 0.2 * torch.rand(num, 2, generator=generator)
    boxes = torch.cat((centre - half, centre + half), dim=1)
    scores = torch.rand(num, generator=generator)
    if tied:  # five distinct values: many exact ties among overlapping boxes
        scores = (scores * 4).round() / 4
    labels = torch.randint(0, groups, (num,), generator=generator)
    return boxes, scores, labels


def _assert_same_result(ours: torch.Tensor, theirs: torch.Tensor, scores: torch.Tensor) -> None:
    """Same kept boxes, both by decreasing score. batched_nms orders equal scores with an unstable
    sort, so among ties only the set is defined; without ties the order must match exactly."""
    assert sorted(ours.tolist()) == sorted(theirs.tolist())
    assert torch.equal(scores[ours], scores[theirs])
    assert (scores[ours][1:] <= scores[ours][:-1]).all()


@pytest.mark.parametrize("seed", range(40))
def test_random_cases_match_torchvision(seed):
    num = [0, 1, 2, 17, 300, 1500][seed % 6]
    boxes, scores, labels = _random_case(seed, num, groups=1 + seed % 5, tied=seed % 2 == 1)
    iou = [0.3, 0.45, 0.5, 0.7][seed % 4]
    ours = batched_nms_tensor(boxes, scores, labels, iou)
    for reference in (batched_nms, _batched_nms_vanilla):
        _assert_same_result(ours, reference(boxes, scores, labels, iou), scores)
    if seed % 2 == 0 and num:  # no ties: identical order
        assert torch.equal(ours, batched_nms(boxes, scores, labels, iou))


def test_identical_boxes_keep_the_first_of_each_group():
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5]]).repeat(6, 1)
    scores = torch.tensor([0.5, 0.9, 0.9, 0.9, 0.2, 0.9])
    labels = torch.tensor([0, 0, 1, 0, 1, 1])
    ours = batched_nms_tensor(boxes, scores, labels, 0.5)
    assert ours.tolist() == [1, 2]  # the earliest of each group's best (ties kept in input order)
    _assert_same_result(ours, batched_nms(boxes, scores, labels, 0.5), scores)


def test_empty_input():
    ours = batched_nms_tensor(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5)
    assert ours.shape == (0,) and ours.dtype == torch.int64


def test_chains_longer_than_one_round_resolve_greedily():
    # Each box overlaps the next one only (IoU 0.2): greedy keeps 0, 2, 4, which takes several
    # rounds of the fixed-point iteration to settle (2 is kept only once 1 is suppressed).
    boxes = torch.tensor([[i * 0.1, 0.0, i * 0.1 + 0.15, 0.1] for i in range(6)])
    scores = torch.linspace(1.0, 0.5, 6)
    labels = torch.zeros(6, dtype=torch.int64)
    ours = batched_nms_tensor(boxes, scores, labels, 0.15)
    assert ours.tolist() == batched_nms(boxes, scores, labels, 0.15).tolist() == [0, 2, 4]


@pytest.mark.parametrize("block_size", [1, 7, 64])
def test_blocks_do_not_change_the_result(block_size):
    boxes, scores, labels = _random_case(3, 400, groups=3, tied=True)
    whole = batched_nms_tensor(boxes, scores, labels, 0.45)
    assert torch.equal(batched_nms_tensor(boxes, scores, labels, 0.45, block_size=block_size), whole)


def test_scripted_function_equals_eager():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(batched_nms_tensor)
    assert "torchvision" not in str(scripted.graph)
    boxes, scores, labels = _random_case(5, 700, groups=4, tied=True)
    assert torch.equal(scripted(boxes, scores, labels, 0.45, 512), batched_nms_tensor(boxes, scores, labels, 0.45))

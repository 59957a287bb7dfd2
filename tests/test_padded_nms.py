"""The eager CPU kernel of ssd_deploy::grouped_nms keeps, bit for bit, what torchvision.ops.nms keeps on each group alone."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import nms
from torchvision.ops.boxes import _batched_nms_coordinate_trick

from ssd_deploy.postprocess import padded_nms
from ssd_deploy.postprocess.grouped_nms import grouped_nms
from ssd_deploy.postprocess.padded_nms import padded_grouped_nms

IOU = 0.45


def near_tie_groups(seed: int, num_images: int = 2, groups: int = 91, k: int = 80, iou: float = IOU):
    """Candidate lists as Selection builds them (boxes [N, G, k, 4], scores [N, G, k] by decreasing
    score, empty slots -1), with 0 ... k candidates per group, so every bucket and the large-group
    path are used. Half the boxes are the previous box of their group shifted so that their IoU
    is the threshold give or take a few float32 rounding steps: decisions on a knife edge."""
    generator = torch.Generator().manual_seed(seed)
    size = 0.02 + 0.3 * torch.rand(num_images, groups, k, 2, generator=generator)
    corner = torch.rand(num_images, groups, k, 2, generator=generator) * (1 - size)
    boxes = torch.cat((corner, corner + size), dim=-1)
    chained = torch.rand(num_images, groups, k, generator=generator) < 0.5
    wobble = 1 + 1e-7 * torch.randint(-4, 5, (num_images, groups, k), generator=generator)
    for j in range(1, k):
        previous = boxes[:, :, j - 1]
        width = previous[..., 2] - previous[..., 0]
        shift = width * (1 - iou) / (1 + iou) * wobble[:, :, j]
        shifted = previous + torch.stack((shift, torch.zeros_like(shift), shift, torch.zeros_like(shift)), dim=-1)
        boxes[:, :, j] = torch.where(chained[:, :, j, None], shifted, boxes[:, :, j])
    scores = torch.rand(num_images, groups, k, generator=generator).sort(dim=2, descending=True)[0]
    counts = torch.randint(0, k + 1, (num_images, groups, 1), generator=generator)
    scores = torch.where(torch.arange(k) < counts, scores * 0.9 + 0.1, torch.full_like(scores, -1.0))
    return boxes, scores


def reference_mask(boxes: torch.Tensor, scores: torch.Tensor, iou: float, threshold: float) -> torch.Tensor:
    """torchvision.ops.nms on each (image, group) alone: the definition of grouped NMS."""
    keep = torch.zeros(scores.shape, dtype=torch.bool)
    for image in range(scores.shape[0]):
        for group in range(scores.shape[1]):
            (index,) = (scores[image, group] > threshold).nonzero(as_tuple=True)
            keep[image, group, index[nms(boxes[image, group, index], scores[image, group, index], iou)]] = True
    return keep


@pytest.mark.parametrize("seed", range(4))
def test_equals_torchvision_nms_per_group_on_near_ties(seed):
    boxes, scores = near_tie_groups(seed)
    expected = reference_mask(boxes, scores, IOU, 0.05)
    assert torch.equal(padded_grouped_nms(boxes, scores, IOU, 0.05), expected)
    assert torch.equal(grouped_nms(boxes, scores, IOU, 0.05), expected)  # the operator's CPU kernel
    counts = (scores > 0.05).sum(dim=2)
    assert (counts == 1).any() and ((counts > 4) & (counts <= 16)).any() and (counts > 64).any()
    assert 0 < int(expected.sum()) < int(counts.sum())


def test_near_ties_are_real():
    # The cases above decide IoUs within rounding of the threshold: shifting boxes by class, as
    # torchvision's batched_nms does for small inputs, changes some decisions, this kernel none.
    boxes, scores = near_tie_groups(seed=0)
    flipped = 0
    for image in range(scores.shape[0]):
        group, index = (scores[image] > 0.05).nonzero(as_tuple=True)
        shifted = _batched_nms_coordinate_trick(boxes[image, group, index], scores[image, group, index], group, IOU)
        mask = torch.zeros(scores.shape[1:], dtype=torch.bool)
        mask[group[shifted], index[shifted]] = True
        flipped += int((mask != reference_mask(boxes[image : image + 1], scores[image : image + 1], IOU, 0.05)[0]).sum())
    assert flipped > 0


def test_unsorted_slots_and_tied_scores():
    # Slots in any order, scores in five values: groups are taken by decreasing score, equal
    # scores in slot order, as torchvision's stable sort takes them.
    boxes, scores = near_tie_groups(seed=5, k=40)
    generator = torch.Generator().manual_seed(5)
    permutation = torch.rand(scores.shape, generator=generator).argsort(dim=2)
    scores = (scores.gather(2, permutation) * 4).round() / 4
    boxes = boxes.gather(2, permutation.unsqueeze(3).expand(-1, -1, -1, 4))
    expected = reference_mask(boxes, scores, IOU, 0.2)
    assert torch.equal(padded_grouped_nms(boxes, scores, IOU, 0.2), expected)


def test_long_suppression_chains_finish_with_torchvision(monkeypatch):
    # Each box overlaps the next (IoU 0.54) but not the one after (0.25): greedy keeps every
    # other box, which the iteration settles only one box per round.
    side, step = 0.05, 0.015
    chain = torch.tensor([[i * step, 0.1, i * step + side, 0.1 + side] for i in range(60)])
    boxes = chain.reshape(1, 1, 60, 4)
    scores = torch.linspace(0.9, 0.3, 60).reshape(1, 1, 60)
    finished = []
    original = padded_nms._nms_each_row
    monkeypatch.setattr(padded_nms, "_nms_each_row", lambda *args: finished.append(1) or original(*args))
    keep = padded_grouped_nms(boxes, scores, IOU, 0.1)
    assert finished and torch.equal(keep, reference_mask(boxes, scores, IOU, 0.1))
    assert keep[0, 0].tolist() == [i % 2 == 0 for i in range(60)]


@pytest.mark.parametrize("threshold", [0.45, 0.6, 0.5])
def test_threshold_is_compared_as_torchvision_compares_it(threshold):
    # torchvision compares the float32 IoU with a double threshold; float32(0.6) is above 0.6, so
    # an IoU of exactly float32(0.6) is suppressed at 0.6 (and float32(0.45), below 0.45, is not).
    at = torch.tensor(threshold, dtype=torch.float32)
    iou = torch.stack((torch.nextafter(at, torch.tensor(0.0)), at, torch.nextafter(at, torch.tensor(1.0))))
    assert padded_nms._suppresses(iou, threshold).tolist() == (iou.double() > threshold).tolist()


def test_empty_and_single_candidates():
    boxes, scores = near_tie_groups(seed=6, num_images=1, groups=3, k=3)
    scores[0, 0] = -1.0
    scores[0, 1, 1:] = -1.0
    expected = reference_mask(boxes, scores, IOU, 0.05)
    assert torch.equal(padded_grouped_nms(boxes, scores, IOU, 0.05), expected)
    assert expected[0, 1].tolist() == [True, False, False] and not expected[0, 0].any()

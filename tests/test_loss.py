"""MultiBoxLoss and matching: equality with torchvision's SSD loss, hard negative count, empty images."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.models.detection import ssd300_vgg16
from torchvision.ops import box_convert, box_iou

from ssd_deploy.loss import LossConfig, MultiBoxLoss
from ssd_deploy.matching import match_priors
from ssd_deploy.models import build_model
from ssd_deploy.models.torchvision_compat import torchvision_config

NUM_CLASSES = 5  # background included
IMAGE_SIZE = 300
FEATURE_MAPS = ((38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1))


@pytest.fixture(scope="module")
def tv_ssd300():
    # compute_loss, the matcher and the prior generator hold no weights: build on the meta device
    # so that VGG's 100M-parameter classifier is not initialised for nothing.
    with torch.device("meta"):
        return ssd300_vgg16(weights=None, weights_backbone=None, num_classes=NUM_CLASSES)


@pytest.fixture(scope="module")
def priors():
    model = build_model(torchvision_config("ssd300_vgg16", num_classes=NUM_CLASSES))
    assert model.config.input_size == (IMAGE_SIZE, IMAGE_SIZE)
    assert model.config.priors.feature_maps == FEATURE_MAPS
    return model.priors


@pytest.fixture(scope="module")
def anchors(tv_ssd300, torchvision_anchors):
    """torchvision's priors, Tensor[P, 4] xyxy pixels."""
    return torchvision_anchors(tv_ssd300.anchor_generator, (IMAGE_SIZE, IMAGE_SIZE), FEATURE_MAPS)


def _targets_pixels(generator: torch.Generator, counts: list[int]) -> list[dict[str, torch.Tensor]]:
    """Random objects in pixels; per image ``count`` boxes, including small ones no prior fits."""
    targets = []
    for count in counts:
        xy = torch.rand(count, 2, generator=generator) * 250
        wh = 4 + torch.rand(count, 2, generator=generator) * 150
        boxes = torch.cat((xy, (xy + wh).clamp(max=IMAGE_SIZE)), dim=1)
        labels = torch.randint(1, NUM_CLASSES, (count,), generator=generator)
        targets.append({"boxes": boxes, "labels": labels})
    return targets


def _torchvision_matched_idxs(tv, targets, anchors):
    """As torchvision's SSD.forward does in training."""
    matched = []
    for target in targets:
        if target["boxes"].numel() == 0:
            matched.append(torch.full((anchors.shape[0],), -1, dtype=torch.int64))
        else:
            matched.append(tv.proposal_matcher(box_iou(target["boxes"], anchors)))
    return matched


def _as_fractions(targets):
    return [{"boxes": t["boxes"] / IMAGE_SIZE, "labels": t["labels"]} for t in targets]


@pytest.mark.parametrize("counts", [[3, 0, 7], [1, 12], [0, 5]], ids=["with_empty", "two_images", "empty_first"])
def test_loss_equals_torchvision_compute_loss(tv_ssd300, priors, anchors, counts):
    generator = torch.Generator().manual_seed(sum(counts))
    targets = _targets_pixels(generator, counts)
    num_priors = priors.shape[0]
    loc = torch.randn(len(counts), num_priors, 4, generator=generator)
    logits = torch.randn(len(counts), num_priors, NUM_CLASSES, generator=generator) * 2

    matched_idxs = _torchvision_matched_idxs(tv_ssd300, targets, anchors)
    expected = tv_ssd300.compute_loss(
        targets, {"bbox_regression": loc, "cls_logits": logits}, [anchors] * len(counts), matched_idxs
    )
    ours = MultiBoxLoss(priors)(loc, logits, _as_fractions(targets))

    num_positive = sum(int((m >= 0).sum()) for m in matched_idxs)
    assert num_positive > sum(counts)  # several priors per object: a non-trivial match
    assert abs(ours["loc"].item() - expected["bbox_regression"].item()) <= 1e-5
    assert abs(ours["cls"].item() - expected["classification"].item()) <= 1e-5
    assert abs(ours["total"].item() - (ours["loc"] + ours["cls"]).item()) <= 1e-6


def test_matching_equals_torchvision_ssd_matcher(tv_ssd300, priors, anchors):
    generator = torch.Generator().manual_seed(7)
    targets = _targets_pixels(generator, [4, 0, 9])
    matched_idxs = _torchvision_matched_idxs(tv_ssd300, targets, anchors)
    fractions = _as_fractions(targets)
    boxes, labels = match_priors([t["boxes"] for t in fractions], [t["labels"] for t in fractions], priors)
    assert boxes.shape == (3, priors.shape[0], 4) and labels.shape == (3, priors.shape[0])
    assert labels.dtype == torch.int64
    for image, (target, matched) in enumerate(zip(fractions, matched_idxs)):
        positive = matched >= 0
        expected_labels = torch.zeros_like(labels[image])
        expected_labels[positive] = target["labels"][matched[positive]]
        assert torch.equal(labels[image], expected_labels)
        assert torch.equal(boxes[image][positive], target["boxes"][matched[positive]])
        # Background priors hold a finite placeholder box.
        assert torch.isfinite(boxes[image]).all()


def test_every_ground_truth_gets_a_prior(priors):
    # Tiny boxes (2% of the image) overlap no prior with IoU >= 0.5; they must still be matched.
    gt = torch.tensor([[0.10, 0.10, 0.12, 0.12], [0.50, 0.70, 0.52, 0.73], [0.2, 0.3, 0.8, 0.9]])
    labels = torch.tensor([1, 2, 3])
    best_iou = box_iou(gt, box_convert(priors, "cxcywh", "xyxy")).max(dim=1).values
    assert (best_iou[:2] < 0.5).all()
    boxes, matched = match_priors([gt, gt[:0]], [labels, labels[:0]], priors)
    for g in range(3):
        hits = (matched[0] == labels[g]) & (boxes[0] == gt[g]).all(dim=1)
        assert hits.sum().item() >= 1
    assert (matched[1] == 0).all()  # the empty image is all background


@pytest.mark.parametrize("ratio", [3, 1])
def test_hard_negatives_are_ratio_times_positives_per_image(priors, ratio):
    # With all logits 0 every prior's cross-entropy is log(C), so the confidence loss counts the
    # selected priors: (positives + ratio * positives) * log(C) / positives. An image without
    # objects adds no negatives.
    gt = torch.tensor([[0.1, 0.1, 0.4, 0.5], [0.5, 0.5, 0.9, 0.8]])
    targets = [
        {"boxes": gt, "labels": torch.tensor([1, 2])},
        {"boxes": gt[:0], "labels": torch.zeros(0, dtype=torch.int64)},
        {"boxes": gt[1:], "labels": torch.tensor([4])},
    ]
    num_priors = priors.shape[0]
    loss = MultiBoxLoss(priors, LossConfig(negatives_per_positive=ratio))
    logits = torch.zeros(3, num_priors, NUM_CLASSES)
    result = loss(torch.zeros(3, num_priors, 4), logits, targets)
    assert result["cls"].item() == pytest.approx((1 + ratio) * math.log(NUM_CLASSES), rel=1e-6)


def test_hard_negatives_are_the_highest_loss_negatives(priors):
    gt = torch.tensor([[0.3, 0.3, 0.6, 0.7]])
    targets = [{"boxes": gt, "labels": torch.tensor([2])}]
    _, matched = match_priors([gt], [targets[0]["labels"]], priors)
    positive = matched[0] > 0
    num_positive = int(positive.sum())
    assert num_positive >= 2
    # Logits 0 everywhere (loss log C), except 3 * positives + 5 negatives that confidently
    # predict class 1, each with its own (larger) loss.
    negatives = torch.nonzero(~positive).squeeze(1)
    chosen = negatives[torch.randperm(negatives.numel(), generator=torch.Generator().manual_seed(0))]
    chosen = chosen[: 3 * num_positive + 5]
    logits = torch.zeros(1, priors.shape[0], NUM_CLASSES)
    logits[0, chosen, 1] = torch.linspace(2.0, 6.0, chosen.numel())
    cross_entropy = torch.nn.functional.cross_entropy(logits[0], matched[0], reduction="none")
    hardest = cross_entropy[chosen].sort(descending=True).values[: 3 * num_positive]
    expected = (cross_entropy[positive].sum() + hardest.sum()) / num_positive
    result = MultiBoxLoss(priors)(torch.zeros(1, priors.shape[0], 4), logits, targets)
    assert result["cls"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_all_empty_batch_gives_zero_finite_loss_and_gradients(priors):
    num_priors = priors.shape[0]
    loc = torch.randn(2, num_priors, 4, requires_grad=True)
    logits = torch.randn(2, num_priors, NUM_CLASSES, requires_grad=True)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    result = MultiBoxLoss(priors)(loc, logits, [empty, empty])
    for name in ("loc", "cls", "total"):
        assert torch.isfinite(result[name]).all()
        assert result[name].item() == 0.0  # no positives, hence no hard negatives either
    result["total"].backward()
    assert torch.isfinite(loc.grad).all() and torch.isfinite(logits.grad).all()


def test_loss_gradients_are_finite_with_objects(priors):
    generator = torch.Generator().manual_seed(11)
    targets = _as_fractions(_targets_pixels(generator, [2, 0]))
    loc = torch.randn(2, priors.shape[0], 4, generator=generator).requires_grad_()
    logits = torch.randn(2, priors.shape[0], NUM_CLASSES, generator=generator).requires_grad_()
    result = MultiBoxLoss(priors, LossConfig(loc_weight=2.0))(loc, logits, targets)
    assert result["total"].item() == pytest.approx(2.0 * result["loc"].item() + result["cls"].item(), rel=1e-6)
    result["total"].backward()
    assert torch.isfinite(loc.grad).all() and torch.isfinite(logits.grad).all()
    assert loc.grad[1].abs().max().item() == 0.0  # the empty image has no localisation target
    assert loc.grad[0].abs().max().item() > 0.0

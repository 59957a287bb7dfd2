"""MultiBoxLoss: localisation (smooth L1) plus confidence (cross-entropy with hard negative mining).

SSD paper, section 2.2 "Training objective" and "Hard negative mining". Both terms are divided by
the number of positive priors in the batch (at least 1), as in the paper and torchvision.

Optionally the confidence term is the sigmoid focal loss (Lin et al. 2017, "Focal Loss for Dense
Object Detection"; torchvision's ``sigmoid_focal_loss``) over every prior, with no hard negative
mining, as the fastai lesson trains its SSD. Such models score classes with a sigmoid
(``ModelConfig.score_function = "sigmoid"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from .box_coder import SSD_VARIANCES, Variances, encode
from .matching import match_priors


@dataclass(frozen=True)
class LossConfig:
    """Hyper-parameters of :class:`MultiBoxLoss` (the paper's values by default)."""

    iou_threshold: float = 0.5
    negatives_per_positive: int = 3
    loc_weight: float = 1.0  # the paper's alpha
    classification: str = "softmax"  # "softmax" (hard negative mining) or "focal" (sigmoid focal loss)
    focal_alpha: float = 0.25  # RetinaNet's values
    focal_gamma: float = 2.0

    def __post_init__(self) -> None:
        if self.classification not in ("softmax", "focal"):
            raise ValueError(f"LossConfig: classification={self.classification!r}. Note: expected 'softmax' or 'focal'")


class MultiBoxLoss(torch.nn.Module):
    """SSD's training loss over a batch, with no Python loop over priors or images.

    Ground-truth boxes must have positive width and height (the data pipeline drops the others).
    """

    def __init__(self, priors: Tensor, config: LossConfig = LossConfig(), variances: Variances = SSD_VARIANCES):
        super().__init__()
        self.register_buffer("priors", priors, persistent=False)
        self.config = config
        self.variances = variances

    def forward(self, loc: Tensor, logits: Tensor, targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Compute the loss.

        Args:
            loc: Tensor[N, P, 4] predicted offsets.
            logits: Tensor[N, P, C] class logits, C including background at index 0.
            targets: per image, ``{"boxes": Tensor[G, 4] xyxy fractions, "labels": Tensor[G] int64}``;
                G may be 0 (the image then only contributes negatives).

        Returns:
            ``{"loc": ..., "cls": ..., "total": loc_weight * loc + cls}``, scalar tensors.
        """
        matched_boxes, matched_labels = match_priors(
            [t["boxes"] for t in targets], [t["labels"] for t in targets], self.priors, self.config.iou_threshold
        )
        positive = matched_labels > 0  # [N, P]
        num_positive = positive.sum(dim=1, keepdim=True)  # [N, 1]
        normaliser = num_positive.sum().clamp(min=1).to(loc.dtype)

        target_offsets = encode(matched_boxes, self.priors, self.variances)  # [N, P, 4]
        loc_loss = F.smooth_l1_loss(loc[positive], target_offsets[positive], reduction="sum")

        if self.config.classification == "focal":
            cls_total = self._focal(logits, matched_labels)
        else:
            cls_total = self._hard_negative_cross_entropy(logits, matched_labels, positive, num_positive)

        loc_term = loc_loss / normaliser
        cls_term = cls_total / normaliser
        return {"loc": loc_term, "cls": cls_term, "total": self.config.loc_weight * loc_term + cls_term}

    def _focal(self, logits: Tensor, matched_labels: Tensor) -> Tensor:
        """Sum of the sigmoid focal loss over every prior and foreground class (background priors
        have all-zero targets; the background logit is unused)."""
        num_classes = logits.shape[-1]
        targets = F.one_hot(matched_labels, num_classes)[..., 1:].to(logits.dtype)  # [N, P, C-1]
        return sigmoid_focal_loss(
            logits[..., 1:], targets, alpha=self.config.focal_alpha, gamma=self.config.focal_gamma, reduction="sum"
        )

    def _hard_negative_cross_entropy(
        self, logits: Tensor, matched_labels: Tensor, positive: Tensor, num_positive: Tensor
    ) -> Tensor:
        """Cross-entropy of the positives plus the hardest negatives, 3 per positive per image."""
        num_classes = logits.shape[-1]
        cls_loss = F.cross_entropy(
            logits.reshape(-1, num_classes), matched_labels.reshape(-1), reduction="none"
        ).reshape(matched_labels.shape)  # [N, P]
        # Hard negatives: per image, the negatives with the largest loss, 3 per positive.
        negative_loss = cls_loss.detach().masked_fill(positive, -float("inf"))
        rank = negative_loss.argsort(dim=1, descending=True).argsort(dim=1)  # rank of each prior
        hard_negative = (rank < self.config.negatives_per_positive * num_positive) & ~positive
        return cls_loss[positive].sum() + cls_loss[hard_negative].sum()

"""Selection: decoded boxes and class probabilities to the padded detections of each image.

    scores [N, P, C], boxes [N, P, 4]
      -> candidates: per image and foreground class, the best ``topk_candidates`` priors
         (optionally only those among the image's best ``pre_nms_topk`` over all classes)
      -> class-aware NMS within each (image, class) group (the graph's NMS backend, :mod:`.nms`)
      -> the best ``max_detections`` kept, by decreasing score, zero-padded (:class:`PaddedDetections`)

Every shape is static but the batch, so exporters need no data-dependent sizes. ONNX graphs (the
``onnx`` NMS backend) keep the pre-selected candidates as one list per image instead of per-class
slots (:meth:`Selection._compact`, :mod:`.candidate_nms`): the same candidates, NMS decisions and
detections, with the work sized by ``pre_nms_topk`` rather than ``classes x topk_candidates``.

Why pre-selection is safe. Greedy NMS decides a candidate from better-scoring candidates of its
own class only, and the output is the best kept candidates over all classes. So NMS over the
best ``pre_nms_topk`` candidates of an image (a prefix of them by score) keeps exactly the
candidates the full NMS keeps in that prefix, and those are the best of all kept candidates: the
result is the first detections of the exact result, and is the whole exact result when the
prefix holds all candidates above the threshold or at least ``max_detections`` survive NMS in
it. What it saves: with 91 classes at score 0.01 an untrained or weak model puts all 400 priors
of every class into NMS (36,400 boxes), most of which cannot reach the output.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .config import PaddedDetections, PostprocessConfig
from .candidate_nms import candidate_nms
from .index_div import index_div
from .nms import nms_backend


class Selection(nn.Module):
    """Candidates, NMS, best ``max_detections``: ``(boxes [N, P, 4] xyxy, scores [N, P, C])`` ->
    :class:`PaddedDetections`, sorted by decreasing score within each image.

    The settings are plain attributes (TorchScript does not take dataclasses); ``backend`` names
    the NMS for the graph being built (:data:`~ssd_deploy.postprocess.nms.NMS_BACKENDS`).
    """

    def __init__(self, config: PostprocessConfig = PostprocessConfig(), backend: str = "operator") -> None:
        super().__init__()
        self.nms = nms_backend(backend)
        # Backends that take one candidate list per image (ONNX graphs) skip the per-class slots.
        self.compact = bool(getattr(self.nms, "compact", False))
        self.score_threshold = float(config.score_threshold)
        self.iou_threshold = float(config.iou_threshold)
        self.max_detections = int(config.max_detections)
        self.topk_candidates = int(config.topk_candidates)
        self.pre_nms_topk = int(config.pre_nms_topk)
        # The float32 just below the threshold as float32 scores compare with it (runtimes whose
        # NMS keeps scores equal to the threshold, as OpenVINO's, then skip the raised scores too).
        threshold = torch.tensor(self.score_threshold, dtype=torch.float32)
        self.below_threshold = float(torch.nextafter(threshold, torch.tensor(float("-inf"))))

    def forward(self, boxes: Tensor, scores: Tensor) -> PaddedDetections:
        num_images, num_priors, num_classes = scores.size(0), scores.size(1), scores.size(2)
        groups = num_classes - 1
        pre_selected = self.pre_nms_topk > 0 and self.pre_nms_topk < num_priors * groups
        if pre_selected:
            foreground = scores[:, :, 1:]
            size = self.pre_nms_topk
            if not torch.jit.is_scripting():
                size = self._eager_pre_selection_size(foreground)
                if size == 0:  # no candidate in any image (a scene without objects at a deployment threshold)
                    return self._no_detections(boxes, scores)
                # One list of candidates per image when the backend takes it (ONNX graphs), or in
                # eager PyTorch when it is no longer than the per-class slots.
                if self.compact or (size <= min(self.topk_candidates, num_priors) and self._eager()):
                    return self._compact(boxes, scores, size)
            top_scores, top_prior = self._pre_selected(self._floored(foreground, size), size)
        else:
            top_scores, top_prior = self._per_class(scores)
        k = top_scores.size(2)
        # Boxes of each candidate: [N, G, k, 4]. Rows of the flattened boxes (one Gather of whole
        # rows), not a gather with the index expanded to 4 columns, which costs more than NMS.
        first_row = torch.arange(num_images, device=boxes.device).reshape(num_images, 1, 1) * num_priors
        rows = (top_prior + first_row).reshape(-1)
        top_boxes = boxes.reshape(num_images * num_priors, 4).index_select(0, rows).reshape(num_images, groups, k, 4)
        keep = self.nms(top_boxes, top_scores, self.iou_threshold, self.score_threshold)
        return self._best_kept(top_boxes, top_scores, keep)

    def _floored(self, foreground: Tensor, size: int) -> Tensor:
        """``foreground`` scores [N, P, G] (no background, or a background scored 0, which is
        never a candidate) with every pair that can be neither a candidate nor among
        its image's best ``size`` pairs raised to one floor below all of those: the best ``size``
        pairs keep their exact values and order, and the pre-selection's top-k runs faster.

        Why it is faster: a top-k keeps its best ``size`` so far and reorders them for each pair that
        beats the worst of them (ONNX Runtime's heap; about ``size * ln(pairs / size)`` times on
        scores in random order, most of a graph's post-processing at score 0.01). Pairs equal to the
        floor never do. The floor is the higher of
        - just under the score threshold: those pairs cannot be candidates either way;
        - 2 % under the ``size``-th best of the priors' best scores (when there are ``size`` priors):
          ``size`` pairs score at least that, so the image's ``size``-th best pair does too and every
          pair under it is out. 2 % is strictly under it in float32, float16 and bfloat16 (over two
          units in the last place of bfloat16), so no raised pair ties with a pair of the best ``size``.
        """
        num_images, num_priors = foreground.size(0), foreground.size(1)
        floor = torch.full((num_images, 1, 1), self.below_threshold, dtype=foreground.dtype, device=foreground.device)
        if size <= num_priors:
            prior_best = foreground.amax(dim=2)
            bound = prior_best.topk(num_priors - size + 1, dim=1, largest=False, sorted=False)[0].amax(dim=1).reshape(num_images, 1, 1)
            floor = self._floor(bound)
        return torch.maximum(foreground, floor)

    def _floor(self, bound: Tensor) -> Tensor:
        """:meth:`_floored`'s floor for the ``size``-th best of the priors' best scores ``bound``
        (any shape): 2 % under it, or just under the score threshold when that is higher."""
        return torch.maximum(bound * 0.98, torch.full_like(bound, self.below_threshold))

    def _per_class(self, scores: Tensor) -> tuple[Tensor, Tensor]:
        """Per image and foreground class, the best k priors: scores and prior indices [N, G, k]."""
        k = min(self.topk_candidates, scores.size(1))
        top_scores, top_prior = scores[:, :, 1:].transpose(1, 2).topk(k, dim=2)
        return top_scores, top_prior

    def _top_pairs(self, floored: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor]:
        """The image's best ``size`` (prior, class) pairs of ``floored`` [N, P, G], by decreasing
        score: scores, prior indices and 0-based labels, [N, size]."""
        num_images, num_priors, groups = floored.shape
        if torch.jit.is_scripting():
            best, index = floored.reshape(num_images, num_priors * groups).topk(size, dim=1)
        else:
            best, index = self._topk(floored, size)
        prior = self._divide(index, groups)
        return best, prior, index - prior * groups

    def _rank(self, label: Tensor, groups: int) -> Tensor:
        """Each pair's rank within its class [N, size], from labels [N, size] in ``[0, groups)`` of
        pairs by decreasing score: the per-class slot of :meth:`_pre_selected`.

        In graphs, a one-hot [N, size, G] written by one scatter (cheaper in ONNX Runtime than
        comparing every pair with every class), counted down the pairs (ONNX Runtime's CumSum is
        several times slower along the last axis) and read at each pair. Counted in float32
        (exact: at most pre_nms_topk), which PyTorch and ONNX Runtime cumulate faster than
        integers. A runtime computing it in fp16 counts exactly to 2048 and then stays there,
        which still compares right with any cap k <= 2048 (400 by default)."""
        if not torch.jit.is_scripting():
            if self._eager():
                return self._eager_rank(label)
        num_images, size = label.shape
        slot = torch.arange(size, device=label.device) * groups + label
        one_hot = torch.zeros((num_images, size * groups), dtype=torch.float32, device=label.device).scatter(1, slot, 1.0)
        count = one_hot.reshape(num_images, size, groups).cumsum(dim=1).reshape(num_images, size * groups)
        return count.gather(1, slot).to(label.dtype) - 1

    def _within_cap(self, label: Tensor, cap: int) -> Tensor:
        """Bool [N, size]: whether fewer than ``cap`` pairs of the pair's class come before it,
        from labels [N, size] of pairs by decreasing score (the per-class ``topk_candidates``).

        In graphs, the pairs sorted by (label, place), a stable sort by label: a pair has ``cap``
        better pairs of its class exactly when the pair ``cap`` places before it in that order has
        its label. A sort of ``size`` keys and a few [N, size] operations, where the rank
        (:meth:`_rank`) counts a one-hot of ``size x G`` (182,000 for COCO; OpenVINO runs that
        CumSum in a reference kernel, about a tenth of its post-processing)."""
        num_images, size = label.shape
        if not torch.jit.is_scripting():
            if self._eager():
                return self._eager_rank(label) < cap
        if cap >= size:
            return torch.ones_like(label, dtype=torch.bool)
        key = label * size + torch.arange(size, device=label.device)
        order = key.topk(size, dim=1, largest=False)[1]
        sorted_label = label.gather(1, order)
        full = torch.cat([torch.zeros((num_images, cap), dtype=torch.bool, device=label.device), sorted_label[:, cap:] == sorted_label[:, : size - cap]], dim=1)
        return torch.zeros_like(full).scatter(1, order, full).logical_not()

    @torch.jit.unused
    def _topk(self, floored: Tensor, size: int) -> tuple[Tensor, Tensor]:
        """``floored.reshape(N, P * G).topk(size, dim=1)``: values and pair indices [N, size]. In
        eager PyTorch, over each image's pairs above its lowest value only: after :meth:`_floored`
        a few thousand of 291,060 for COCO, and PyTorch's top-k costs several times a comparison
        per pair. When fewer than ``size`` pairs are above it, the rest are pairs at the lowest
        value (first by index; which of tied pairs a top-k returns is unspecified either way).
        ``floored`` may be strided (a slice of the scores): read in place, never copied."""
        num_images, num_priors, groups = floored.shape
        if not self._eager():
            return floored.reshape(num_images, num_priors * groups).topk(size, dim=1)
        values, indices = [], []
        for image, low in zip(floored, floored.amin(dim=(1, 2))):
            above = (image > low).nonzero()
            if above.size(0) >= size:
                best, at = image[above[:, 0], above[:, 1]].topk(size)
                pairs = above[at]
            else:
                best, at = image[above[:, 0], above[:, 1]].sort(descending=True)
                # The first `size` pairs hold at least size - above pairs at the lowest value.
                fill = (image[: (size + groups - 1) // groups] == low).nonzero()[: size - above.size(0)]
                best, pairs = torch.cat([best, image[fill[:, 0], fill[:, 1]]]), torch.cat([above[at], fill])
            values.append(best)
            indices.append(pairs[:, 0] * groups + pairs[:, 1])
        return torch.stack(values), torch.stack(indices)

    @torch.jit.unused
    def _top_pairs_of_best_priors(self, foreground: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`_top_pairs` of :meth:`_floored` scores [N, P, C] for graphs, over the pairs of the
        image's best ``size`` priors (by their best score) only: scores, prior indices and labels
        (columns), [N, size], by decreasing score.

        Why those priors hold the best ``size`` pairs: ``size`` pairs score at least the
        ``size``-th best prior's best score ``b`` (each of those priors has one), so the
        image's ``size``-th best pair scores at least ``b``, and a prior whose best is under
        ``b`` has no pair that good. The pair top-k, most of a graph's post-processing, then runs
        over ``size x C`` pairs instead of ``P x C`` (2000 of 3234 priors for SSDLite320, of 8732
        for SSD300). Which of pairs tied at the same score come first is unspecified, as in any top-k."""
        num_images, num_priors, groups = foreground.shape
        best_of_prior, rows = foreground.amax(dim=2).topk(size, dim=1, sorted=False)
        first_row = torch.arange(num_images, device=foreground.device).reshape(num_images, 1) * num_priors
        pairs = foreground.reshape(num_images * num_priors, groups).index_select(0, (rows + first_row).reshape(-1))
        floor = self._floor(best_of_prior.amin(dim=1, keepdim=True))  # b is the least of the best priors' scores
        best, index = torch.maximum(pairs.reshape(num_images, size * groups), floor).topk(size, dim=1)
        row = self._divide(index, groups)
        return best, rows.gather(1, row), index - row * groups

    @torch.jit.unused
    def _eager_rank(self, label: Tensor) -> Tensor:
        """Each pair's rank within its class, from labels [N, size] of pairs by decreasing score:
        a stable sort by label keeps each class's pairs in score order, so a pair's rank is its
        place in its class's run. In eager PyTorch several times cheaper than the one-hot count
        the graphs hold (which is all static shapes and standard ONNX operators)."""
        sorted_label, order = torch.sort(label, dim=1, stable=True)
        run_start = torch.searchsorted(sorted_label, sorted_label)  # leftmost place of each label
        rank_sorted = torch.arange(label.size(1), device=label.device) - run_start
        return torch.empty_like(label).scatter_(1, order, rank_sorted)

    def _pre_selected(self, floored: Tensor, size: int) -> tuple[Tensor, Tensor]:
        """:meth:`_per_class`'s layout holding only candidates among the image's best ``size``
        (``pre_nms_topk``) (prior, class) pairs; empty slots score below the threshold."""
        num_images, num_priors, groups = floored.shape
        best, prior, label = self._top_pairs(floored, size)
        rank = self._rank(label, groups)
        k = min(self.topk_candidates, num_priors, self.pre_nms_topk)
        # Pairs past the cap go to one spare slot at the end, cut off below (their values collide there).
        slot = torch.where(rank < k, label * k + rank, torch.full_like(label, groups * k))
        slot_scores = torch.full((num_images, groups * k + 1), -1.0, dtype=floored.dtype, device=floored.device)
        slot_scores = slot_scores.scatter(1, slot, best)
        slot_prior = torch.zeros((num_images, groups * k + 1), dtype=prior.dtype, device=prior.device).scatter(1, slot, prior)
        return slot_scores[:, : groups * k].reshape(num_images, groups, k), slot_prior[:, : groups * k].reshape(num_images, groups, k)

    @torch.jit.unused
    def _compact(self, boxes: Tensor, scores: Tensor, size: int) -> PaddedDetections:
        """The pre-selection as one list of ``size`` candidates per image (prior, label, score;
        past each class's ``topk_candidates`` scored -1), NMS within each label on it, and the
        best kept: the candidates, NMS decisions and detections of the slot layout, without
        spreading the candidates into ``G * k`` slots (:mod:`.candidate_nms`).

        Scores [N, P, C] keep their background column, multiplied by 0: it then never holds a
        candidate (scores must pass a threshold >= 0), and in ONNX Runtime a multiply costs a
        fraction of slicing the column off (a strided copy of [N, P, C - 1]). Labels are columns."""
        num_images, num_priors, groups = scores.shape
        background_out = torch.cat([torch.zeros(1, dtype=scores.dtype, device=scores.device), torch.ones(groups - 1, dtype=scores.dtype, device=scores.device)])
        foreground = scores * background_out
        if self._eager() or size >= num_priors:
            best, prior, label = self._top_pairs(self._floored(foreground, size), size)
        else:
            best, prior, label = self._top_pairs_of_best_priors(foreground, size)
        k = min(self.topk_candidates, num_priors, self.pre_nms_topk)
        capped = torch.where(self._within_cap(label, k), best, torch.full_like(best, -1.0))
        first_row = torch.arange(num_images, device=boxes.device).reshape(num_images, 1) * num_priors
        rows = (prior + first_row).reshape(-1)
        candidate_boxes = boxes.reshape(num_images * num_priors, 4).index_select(0, rows).reshape(num_images, size, 4)
        keep = candidate_nms(candidate_boxes, capped, label, groups, self.iou_threshold, self.score_threshold)
        return self._best_kept(candidate_boxes.unsqueeze(1), capped.unsqueeze(1), keep.unsqueeze(1), (label - 1).unsqueeze(1))

    def _divide(self, index: Tensor, divisor: int) -> Tensor:
        """``index // divisor`` for indices (>= 0), in integers in every kind of graph; ONNX graphs
        (the ``onnx`` backend) get one integer ``Div`` that every ONNX consumer runs exactly
        (:mod:`.index_div`)."""
        if self.compact and not torch.jit.is_scripting():
            return _onnx_index_div(index, divisor)
        return index // divisor

    @torch.jit.unused
    def _eager(self) -> bool:
        """Whether this call runs eagerly, not traced, compiled or exported into a graph."""
        return not (torch.jit.is_tracing() or torch.compiler.is_compiling())

    @torch.jit.unused
    def _eager_pre_selection_size(self, foreground: Tensor) -> int:
        """How many pairs the pre-selection's top-k takes: ``pre_nms_topk``, or in eager PyTorch
        the most candidates of an image when that is fewer, 0 when no image has one (the pairs past
        them can never be candidates; a smaller top-k and rank count cost less, much less at high
        thresholds).
        Graphs being traced, compiled or exported keep the static size."""
        if not self._eager():
            return self.pre_nms_topk
        # Counted image by image: count_nonzero over given dims converts the whole mask to integers first.
        most = max((int(torch.count_nonzero(image > self.score_threshold)) for image in foreground), default=0)
        return min(self.pre_nms_topk, most)

    @torch.jit.unused
    def _no_detections(self, boxes: Tensor, scores: Tensor) -> PaddedDetections:
        """The padded output of a batch without candidates: every row zero."""
        num_images, k = boxes.size(0), self.max_detections
        none = torch.zeros(num_images, dtype=torch.int32, device=boxes.device)
        labels = torch.zeros((num_images, k), dtype=torch.int32, device=boxes.device)
        return PaddedDetections(none, boxes.new_zeros((num_images, k, 4)), scores.new_zeros((num_images, k)), labels)

    def _best_kept(self, top_boxes: Tensor, top_scores: Tensor, keep: Tensor, group_labels: Optional[Tensor] = None) -> PaddedDetections:
        """The best max_detections kept candidates of each image, by decreasing score, padded: a
        fixed-size top-k over all candidates with the dropped ones scored -1 (scores are >= 0).
        Candidates [N, G, k]: group g holds class g + 1, unless ``group_labels`` [N, G, k] (0-based)
        says otherwise."""
        num_images, groups, k = top_scores.shape
        keep = keep.reshape(num_images, groups * k)
        dropped = torch.full_like(keep, -1.0, dtype=top_scores.dtype)
        ranked = torch.where(keep, top_scores.reshape(num_images, groups * k), dropped)
        best_scores, best = ranked.topk(min(self.max_detections, groups * k), dim=1)
        valid = keep.gather(1, best)
        out_scores = torch.where(valid, best_scores, torch.zeros_like(best_scores))
        best_boxes = top_boxes.reshape(num_images, groups * k, 4).gather(1, best.unsqueeze(2).expand(-1, -1, 4))
        out_boxes = torch.where(valid.unsqueeze(2), best_boxes, torch.zeros_like(best_boxes))
        if group_labels is None:
            labels = self._divide(best, k) + 1
        else:
            labels = group_labels.reshape(num_images, groups * k).gather(1, best) + 1
        out_labels = torch.where(valid, labels, torch.zeros_like(labels)).to(torch.int32)
        num_detections = valid.sum(dim=1).to(torch.int32)
        missing = self.max_detections - best.size(1)
        if missing > 0:  # fewer candidates in all than K: pad (static shapes, so exporters fold it)
            out_boxes = torch.nn.functional.pad(out_boxes, [0, 0, 0, missing])
            out_scores = torch.nn.functional.pad(out_scores, [0, missing])
            out_labels = torch.nn.functional.pad(out_labels, [0, missing])
        return PaddedDetections(num_detections, out_boxes, out_scores, out_labels)


@torch.jit.unused
def _onnx_index_div(index: Tensor, divisor: int) -> Tensor:
    """:func:`~ssd_deploy.postprocess.index_div.index_div`, kept out of TorchScript."""
    return index_div(index, divisor)


def select_detections(
    boxes: Tensor, scores: Tensor, config: PostprocessConfig = PostprocessConfig(), backend: str = "operator"
) -> PaddedDetections:
    """Candidates, class-aware NMS and the best K per image, batched (see :class:`Selection`).

    Args:
        boxes: Tensor[N, P, 4] decoded xyxy boxes in [0, 1]. scores: Tensor[N, P, C] probabilities,
            column 0 background.
    """
    return Selection(config, backend)(boxes, scores)

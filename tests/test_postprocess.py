"""Post-processing: batched select_detections against a plain per-image torchvision reference."""

from __future__ import annotations

import warnings

import onnx
import pytest
import torch
from torchvision.ops import batched_nms, box_iou, nms

from ssd_deploy.export.onnx import CUSTOM_TRANSLATIONS
from ssd_deploy.postprocess import (
    NMS_BACKENDS,
    PaddedDetections,
    PostprocessConfig,
    Selection,
    decode_predictions,
    select_detections,
)
from ssd_deploy.postprocess.grouped_nms import grouped_nms, offset_nms_mask
from ssd_deploy.postprocess.nms import TensorNms

NUM_CLASSES = 4  # background included
NUM_PRIORS = 300


def reference_detections(boxes: torch.Tensor, scores: torch.Tensor, config: PostprocessConfig):
    """One image, written as torchvision's SSD.postprocess_detections: per class threshold and
    top-k, class-aware NMS, the best K. Returns (boxes [D, 4], scores [D], labels [D])."""
    all_boxes, all_scores, all_labels = [], [], []
    for label in range(1, scores.shape[1]):
        score = scores[:, label]
        keep = score > config.score_threshold
        score, box = score[keep], boxes[keep]
        score, index = score.topk(min(config.topk_candidates, score.numel()))
        all_boxes.append(box[index])
        all_scores.append(score)
        all_labels.append(torch.full_like(index, label))
    all_boxes, all_scores, all_labels = torch.cat(all_boxes), torch.cat(all_scores), torch.cat(all_labels)
    keep = batched_nms(all_boxes, all_scores, all_labels, config.iou_threshold)[: config.max_detections]
    return all_boxes[keep], all_scores[keep], all_labels[keep]


def _inputs(seed: int, num_images: int, num_priors: int = NUM_PRIORS, sharpness: float = 3.0):
    """Clustered boxes (so NMS has work to do) and softmax scores, like decode_predictions' output."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.rand(num_images, 12, 2, generator=generator)  # 12 clusters per image
    cluster = torch.randint(0, 12, (num_images, num_priors), generator=generator)
    centre = torch.gather(centres, 1, cluster[..., None].expand(-1, -1, 2))
    centre = centre + 0.03 * torch.randn(num_images, num_priors, 2, generator=generator)
    half = 0.05 + 0.1 * torch.rand(num_images, num_priors, 2, generator=generator)
    boxes = torch.cat((centre - half, centre + half), dim=-1).clamp(0.0, 1.0)
    logits = sharpness * torch.randn(num_images, num_priors, NUM_CLASSES, generator=generator)
    return boxes, torch.softmax(logits, dim=-1)


def _image(detections: PaddedDetections, i: int):
    n = int(detections.num_detections[i])
    return detections.boxes[i, :n], detections.scores[i, :n], detections.labels[i, :n]


def _assert_zero_padding(detections: PaddedDetections) -> None:
    for i, n in enumerate(detections.num_detections.tolist()):
        assert (detections.boxes[i, n:] == 0).all()
        assert (detections.scores[i, n:] == 0).all()
        assert (detections.labels[i, n:] == 0).all()


CONFIG = PostprocessConfig(score_threshold=0.2, iou_threshold=0.45, max_detections=100, topk_candidates=50)


@pytest.mark.parametrize(
    "config, binding",
    [
        (CONFIG, "topk"),
        (PostprocessConfig(score_threshold=0.05, iou_threshold=0.6, max_detections=40, topk_candidates=80), "max"),
        # The best 300 of the 900 (prior, class) pairs enter NMS, and more than 40 survive: exact.
        (PostprocessConfig(score_threshold=0.05, iou_threshold=0.6, max_detections=40, topk_candidates=80, pre_nms_topk=300), "max"),
    ],
    ids=["topk_binds", "max_detections_binds", "pre_selection_binds"],
)
def test_select_detections_equals_per_image_reference(config, binding, assert_same_detections):
    boxes, scores = _inputs(seed=0, num_images=3)
    detections = select_detections(boxes, scores, config)
    assert detections.boxes.shape == (3, config.max_detections, 4)
    assert detections.scores.shape == detections.labels.shape == (3, config.max_detections)
    for i in range(3):
        expected = reference_detections(boxes[i], scores[i], config)
        # Non-trivial: the limit under test binds, NMS removed candidates, something is left.
        above_threshold = (scores[i, :, 1:] > config.score_threshold).sum(dim=0)
        if binding == "topk":
            assert (above_threshold > config.topk_candidates).all()
            assert 10 <= expected[1].numel() < config.max_detections
        else:
            assert expected[1].numel() == config.max_detections
        assert expected[1].numel() < above_threshold.clamp(max=config.topk_candidates).sum()
        assert_same_detections(_image(detections, i), expected, box_atol=0.0, score_atol=0.0)
    _assert_zero_padding(detections)


def test_output_dtypes_and_score_order():
    boxes, scores = _inputs(seed=1, num_images=2)
    detections = select_detections(boxes, scores, CONFIG)
    assert isinstance(detections, PaddedDetections)
    assert detections.num_detections.dtype == torch.int32
    assert detections.labels.dtype == torch.int32
    assert detections.boxes.dtype == detections.scores.dtype == torch.float32
    assert detections.num_detections.shape == (2,)
    for i in range(2):
        _, image_scores, image_labels = _image(detections, i)
        assert image_scores.numel() > 0
        assert (image_scores[:-1] >= image_scores[1:]).all()  # decreasing score within the image
        assert (image_scores > CONFIG.score_threshold).all()
        assert ((image_labels >= 1) & (image_labels < NUM_CLASSES)).all()


@pytest.mark.parametrize("pre_nms_topk", [0, 100], ids=["all_candidates", "pre_selected"])
def test_all_scores_below_threshold_gives_no_detections(pre_nms_topk):
    # Pre-selected, eager PyTorch returns the empty output without selecting anything.
    boxes, scores = _inputs(seed=2, num_images=2, sharpness=0.1)  # scores close to 1/4
    assert scores[..., 1:].max().item() < 0.5
    detections = select_detections(boxes, scores, PostprocessConfig(score_threshold=0.5, max_detections=10, pre_nms_topk=pre_nms_topk))
    some = select_detections(boxes, scores, PostprocessConfig(score_threshold=0.2, max_detections=10, pre_nms_topk=pre_nms_topk))
    assert detections.num_detections.tolist() == [0, 0] and (some.num_detections > 0).all()
    assert [(t.shape, t.dtype) for t in detections] == [(t.shape, t.dtype) for t in some]
    _assert_zero_padding(detections)


def test_one_empty_image_in_a_batch():
    boxes, scores = _inputs(seed=3, num_images=3)
    scores[1] = torch.tensor([0.97, 0.01, 0.01, 0.01])  # image 1: background everywhere
    detections = select_detections(boxes, scores, CONFIG)
    counts = detections.num_detections.tolist()
    assert counts[1] == 0 and counts[0] > 0 and counts[2] > 0
    _assert_zero_padding(detections)


def test_more_candidates_than_k_gives_exactly_k_best():
    boxes, scores = _inputs(seed=4, num_images=2)
    config = PostprocessConfig(score_threshold=0.01, iou_threshold=0.45, max_detections=5, topk_candidates=100)
    uncapped = PostprocessConfig(score_threshold=0.01, iou_threshold=0.45, max_detections=1000, topk_candidates=100)
    detections = select_detections(boxes, scores, config)
    assert detections.num_detections.tolist() == [5, 5]
    everything = select_detections(boxes, scores, uncapped)
    assert (everything.num_detections > 5).all()
    for i in range(2):
        assert torch.equal(detections.scores[i], everything.scores[i, :5])
        assert torch.equal(detections.labels[i], everything.labels[i, :5])
        assert torch.equal(detections.boxes[i], everything.boxes[i, :5])


def test_batch_equals_each_image_alone(assert_same_detections):
    # Three images with different content: many objects, few objects, one sharp object.
    boxes_a, scores_a = _inputs(seed=5, num_images=1)
    boxes_b, scores_b = _inputs(seed=6, num_images=1, sharpness=1.0)
    boxes_c, scores_c = _inputs(seed=7, num_images=1, sharpness=0.1)
    scores_c[0, 17] = torch.tensor([0.0, 0.0, 0.9, 0.1])
    boxes, scores = torch.cat((boxes_a, boxes_b, boxes_c)), torch.cat((scores_a, scores_b, scores_c))
    batched = select_detections(boxes, scores, CONFIG)
    counts = batched.num_detections.tolist()
    assert len(set(counts)) == 3  # really different content
    for i in range(3):
        alone = select_detections(boxes[i : i + 1], scores[i : i + 1], CONFIG)
        assert alone.num_detections.tolist() == [counts[i]]
        assert_same_detections(_image(batched, i), _image(alone, 0), box_atol=0.0, score_atol=0.0)


def test_decode_predictions_clips_boxes_and_returns_probabilities():
    generator = torch.Generator().manual_seed(8)
    priors = torch.tensor([[0.05, 0.5, 0.2, 0.2], [0.5, 0.5, 0.3, 0.3], [0.9, 0.9, 0.4, 0.1]])
    loc = 3 * torch.randn(2, 3, 4, generator=generator)
    logits = torch.randn(2, 3, NUM_CLASSES, generator=generator)
    boxes, scores = decode_predictions(loc, logits, priors)
    assert boxes.shape == (2, 3, 4) and scores.shape == (2, 3, NUM_CLASSES)
    assert boxes.min().item() >= 0.0 and boxes.max().item() <= 1.0
    assert (boxes[..., 0] == 0).any()  # the first prior sticks out to the left: clipped
    assert (scores.sum(dim=-1) - 1).abs().max().item() <= 1e-6


def test_nms_decision_does_not_depend_on_position_in_batch():
    # Eight identical images, each with two small boxes (2% of the image side, ~6 px at 300) of
    # the last of 91 classes whose IoU is 0.597, 0.003 below the NMS threshold: both must be kept
    # in every image, as torchvision's per-image batched_nms keeps them (its IoU error is ~3e-4).
    num_images, num_classes, side, iou = 8, 91, 0.02, 0.597
    shift = side * (1 - iou) / (1 + iou)
    first = torch.tensor([0.4, 0.4, 0.4 + side, 0.4 + side])
    pair = torch.stack((first, first + torch.tensor([shift, 0.0, shift, 0.0])))
    exact_iou = box_iou(pair[:1], pair[1:]).item()
    assert abs(exact_iou - iou) <= 1e-5
    boxes = pair.expand(num_images, 2, 4).contiguous()
    scores = torch.zeros(num_images, 2, num_classes)
    scores[..., 0] = 0.1
    scores[:, 0, -1], scores[:, 1, -1] = 0.9, 0.8
    config = PostprocessConfig(score_threshold=0.5, iou_threshold=0.6, max_detections=10, topk_candidates=10)
    alone = select_detections(boxes[:1], scores[:1], config)
    reference = batched_nms(pair, scores[0, :, -1], torch.full((2,), num_classes - 1), config.iou_threshold)
    assert alone.num_detections.tolist() == [reference.numel()] == [2]
    assert select_detections(boxes, scores, config).num_detections.tolist() == [2] * num_images


def _grouped_candidates(seed: int, num_images: int = 3, groups: int = 5, k: int = 60):
    """Per-class candidate lists as Selection builds them: boxes [N, G, k, 4], scores [N, G, k]."""
    boxes, scores = _inputs(seed, num_images, num_priors=k * groups)
    return boxes.reshape(num_images, groups, k, 4), scores[..., 1].reshape(num_images, groups, k).contiguous()


def _reference_mask(boxes: torch.Tensor, scores: torch.Tensor, iou: float, threshold: float) -> torch.Tensor:
    """torchvision.ops.nms on each (image, group) alone: the definition of grouped NMS."""
    keep = torch.zeros(scores.shape, dtype=torch.bool)
    for image in range(scores.shape[0]):
        for group in range(scores.shape[1]):
            (index,) = (scores[image, group] > threshold).nonzero(as_tuple=True)
            kept = nms(boxes[image, group, index], scores[image, group, index], iou)
            keep[image, group, index[kept]] = True
    return keep


def test_every_grouped_nms_implementation_keeps_what_per_group_nms_keeps():
    # The eager operator (ONNX files carry its NonMaxSuppression translation), the torchvision::nms
    # form of AOTInductor packages and the plain-tensor NMS of TorchScript files.
    boxes, scores = _grouped_candidates(seed=11)
    expected = _reference_mask(boxes, scores, 0.45, 0.2)
    assert 20 < int(expected.sum()) < int((scores > 0.2).sum())  # NMS removed some, kept many
    assert torch.equal(grouped_nms(boxes, scores, 0.45, 0.2), expected)
    assert torch.equal(offset_nms_mask(boxes, scores, 0.45, 0.2), expected)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated; LibTorch still loads it
        scripted = torch.jit.script(TensorNms())
    assert torch.equal(scripted(boxes, scores, 0.45, 0.2), expected)


class _Select(torch.nn.Module):
    def __init__(self, config: PostprocessConfig, backend: str = "operator") -> None:
        super().__init__()
        self.select = Selection(config, backend)

    def forward(self, boxes: torch.Tensor, scores: torch.Tensor):
        return tuple(self.select(boxes, scores))


def _export_selection(path, config: PostprocessConfig, backend: str, boxes, scores) -> None:
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            _Select(config, backend), (boxes, scores), dynamo=True, dynamic_shapes=({0: batch}, {0: batch}),
            custom_translation_table=CUSTOM_TRANSLATIONS, verbose=False,
        )
    program.save(str(path))


@pytest.mark.parametrize("backend", ["operator", "onnx"])
@pytest.mark.parametrize("pre_nms_topk", [0, 200], ids=["all_candidates", "pre_selected"])
def test_onnx_translation_of_grouped_nms_matches_eager(tmp_path, pre_nms_topk, backend):
    """The exported selection (one NonMaxSuppression over images x classes, or with the ``onnx``
    backend and pre-selection over one candidate list per image) against eager PyTorch's slot
    layout, run by ONNX Runtime: identical detections, bit for bit and in the same order."""
    onnxruntime = pytest.importorskip("onnxruntime")
    boxes, scores = _inputs(seed=12, num_images=3)
    # A cap of 60 per class: G * k = 180 slots, a size no other tensor of this graph has.
    config = PostprocessConfig(score_threshold=0.2, iou_threshold=0.45, max_detections=100, topk_candidates=60, pre_nms_topk=pre_nms_topk)
    path = tmp_path / "select.onnx"
    _export_selection(path, config, backend, boxes, scores)
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph
    assert [node.op_type for node in graph.node].count("NonMaxSuppression") == 1
    if backend == "onnx" and pre_nms_topk:  # no per-class slots: no tensor of G * k (+ 1 spare) slots
        slots = (NUM_CLASSES - 1) * config.topk_candidates
        dims = {d.dim_value for v in graph.value_info for d in v.type.tensor_type.shape.dim}
        assert not dims & {slots, slots + 1}
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    for count in (3, 1):  # the batch is free
        got = session.run(None, {names[0]: boxes[:count].numpy(), names[1]: scores[:count].numpy()})
        expected = select_detections(boxes[:count], scores[:count], config)
        assert expected.num_detections.min() > 10
        for ours, theirs in zip(expected, got):
            assert torch.equal(ours, torch.from_numpy(theirs))


@pytest.mark.parametrize("backend", ["operator", "onnx"])
def test_exported_index_arithmetic_stays_integer(tmp_path, backend):
    """Prior and label indices are divided as integers in the exported graph. An integer cast to
    float (torch.div with a rounding mode exports as Cast, Div, Floor) is computed in fp16 by
    OpenVINO on CPUs with native fp16 and by TensorRT's FP16 flag, where integers past 2048 round:
    on such a CPU OpenVINO FP16 stopped with "indices values of GatherElement exceed data size"."""
    boxes, scores = _inputs(seed=14, num_images=2)
    config = PostprocessConfig(score_threshold=0.2, max_detections=100, topk_candidates=50, pre_nms_topk=200)
    path = tmp_path / "select.onnx"
    _export_selection(path, config, backend, boxes, scores)
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input, *graph.output]}
    integers = (onnx.TensorProto.INT32, onnx.TensorProto.INT64)
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE)
    to_float = [node.name for node in graph.node if node.op_type == "Cast" and types.get(node.input[0]) in integers
                and next(a.i for a in node.attribute if a.name == "to") in floats]
    assert to_float == []
    assert "Floor" not in [node.op_type for node in graph.node]


@pytest.mark.parametrize("threshold", [0.0, 0.2])
def test_candidate_nms_translation_in_openvino_at_any_threshold(tmp_path, threshold):
    """OpenVINO's NMS keeps scores equal to its threshold (>=): at threshold 0 the other classes'
    entries of a candidate (scored -1, not 0) must still never select it."""
    ov = pytest.importorskip("openvino")
    boxes, scores = _inputs(seed=13, num_images=2)
    config = PostprocessConfig(score_threshold=threshold, iou_threshold=0.45, max_detections=100, topk_candidates=50, pre_nms_topk=200)
    path = tmp_path / "select.onnx"
    _export_selection(path, config, "onnx", boxes, scores)
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got = compiled([boxes.numpy(), scores.numpy()])
    expected = select_detections(boxes, scores, config)
    assert expected.num_detections.min() > 10
    for i, ours in enumerate(expected):
        assert torch.equal(ours, torch.from_numpy(got[compiled.outputs[i]]))


def _prefix_of(short: PaddedDetections, full: PaddedDetections) -> bool:
    """Whether each image's detections in ``short`` are the first ones of ``full`` (bit for bit)."""
    for i, n in enumerate(short.num_detections.tolist()):
        for a, b in zip(_image(short, i), _image(full, i)):
            if not torch.equal(a, b[:n]):
                return False
    return True


def test_pre_selection_gives_the_first_detections_of_the_exact_result():
    # Boxes in 3 tight clusters, so NMS removes most candidates: among the best 60 pairs fewer
    # than max_detections survive, and the result is then a shorter prefix of the exact one.
    boxes, scores = _inputs(seed=21, num_images=2, num_priors=400, sharpness=1.0)
    jitter = 0.001 * torch.rand(2, 400, 4, generator=torch.Generator().manual_seed(21))
    boxes = boxes[:, :3].repeat(1, 134, 1)[:, :400] + jitter
    exact = select_detections(boxes, scores, PostprocessConfig(0.05, 0.45, 100, 200, pre_nms_topk=0))
    counts = {}
    for pre_nms_topk in (5, 60, 1200):
        short = select_detections(boxes, scores, PostprocessConfig(0.05, 0.45, 100, 200, pre_nms_topk=pre_nms_topk))
        assert _prefix_of(short, exact), pre_nms_topk
        counts[pre_nms_topk] = short.num_detections
    assert (exact.num_detections >= 6).all()
    assert (1 <= counts[5]).all() and (counts[5] < exact.num_detections).all()  # truncated: a shorter prefix
    assert torch.equal(counts[60], exact.num_detections) and torch.equal(counts[1200], exact.num_detections)


def _best_pairs(scores: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The best ``size`` (prior, class) pairs of scores [N, P, G] in a total order: decreasing score,
    then increasing index (ONNX Runtime's top-k order), as values and flat indices [N, size]."""
    flat = scores.reshape(scores.size(0), -1)
    values, index = torch.sort(flat, dim=1, descending=True, stable=True)
    return values[:, :size], index[:, :size]


@pytest.mark.parametrize("case", ["spread", "one_class_per_prior", "ties"])
def test_floor_keeps_the_best_pairs_and_their_order(case):
    # The pre-selection raises every pair that cannot be among an image's best `size` to one floor
    # (Selection._floored): the best `size` pairs, their values and their order must not change,
    # even when the bound equals the size-th best pair (one class per prior) or scores tie.
    generator = torch.Generator().manual_seed(26)
    logits = 3.0 * torch.randn(2, 300, NUM_CLASSES, generator=generator)
    if case == "one_class_per_prior":  # every prior's best class far ahead: the best pairs are priors' bests
        logits[torch.arange(2)[:, None], torch.arange(300), torch.randint(1, NUM_CLASSES, (2, 300), generator=generator)] += 12.0
    scores = torch.softmax(logits, dim=-1)
    if case == "ties":
        scores = (scores * 64).round() / 64
    foreground = scores[:, :, 1:]
    raised = 0
    for size in (1, 50, 200, 300, 600):
        selection = Selection(PostprocessConfig(score_threshold=0.01, pre_nms_topk=size))
        floored = selection._floored(foreground, size)
        plain = foreground.clamp(min=selection.below_threshold)  # the threshold's floor alone
        for ours, theirs in zip(_best_pairs(floored, size), _best_pairs(plain, size)):
            assert torch.equal(ours, theirs), size
        assert (floored >= plain).all()
        raised += int((floored > plain).sum())
    assert raised > 1000  # the floor did raise pairs above the threshold's floor


@pytest.mark.parametrize("case", ["spread", "few_above_the_floor", "ties"])
def test_eager_top_pairs_are_the_top_k_of_every_pair(case):
    # Eager PyTorch takes an image's best pairs from those above its lowest value only
    # (Selection._topk): the same values as a top-k over every pair, and pairs holding them.
    generator = torch.Generator().manual_seed(27)
    scores = torch.softmax(3.0 * torch.randn(3, 300, NUM_CLASSES, generator=generator), dim=-1)
    if case == "ties":
        scores = (scores * 64).round() / 64
    foreground = scores[:, :, 1:]  # strided, as in Selection
    selection = Selection(PostprocessConfig(score_threshold=0.01))
    for size in (1, 50, 600, 300 * (NUM_CLASSES - 1)):
        floored = selection._floored(foreground, size)
        if case == "few_above_the_floor":  # image 1: 20 pairs above the rest, fewer than most sizes
            floored[1] = torch.where(floored[1] > floored[1].flatten().kthvalue(floored[1].numel() - 20).values, floored[1], 0.001)
        values, index = selection._topk(floored, size)
        expected = floored.reshape(3, -1).topk(size, dim=1).values
        assert torch.equal(values, expected), size
        assert torch.equal(floored.reshape(3, -1).gather(1, index), values), size
        assert all(len(set(row.tolist())) == size for row in index)  # distinct pairs
        if case == "spread":  # distinct values above the floor: the same pairs, in the same order
            above = values > floored.reshape(3, -1).amin(dim=1, keepdim=True)
            assert torch.equal(index[above], floored.reshape(3, -1).topk(size, dim=1).indices[above]), size


def test_pre_selection_keeps_the_per_class_cap(assert_same_detections):
    # Class 3 holds the best score of every prior: the best 150 pairs are all of class 3 but only
    # its best 20 (topk_candidates) may enter NMS, as in torchvision's per-class selection.
    boxes, scores = _inputs(seed=22, num_images=2, sharpness=1.0)
    scores[..., 3] += 1.0
    config = PostprocessConfig(score_threshold=0.05, iou_threshold=0.45, max_detections=10, topk_candidates=20, pre_nms_topk=150)
    detections = select_detections(boxes, scores, config)
    for i in range(2):
        expected = reference_detections(boxes[i], scores[i], config)
        assert expected[1].numel() == 10 and set(expected[2].tolist()) == {3}
        assert_same_detections(_image(detections, i), expected, box_atol=0.0, score_atol=0.0)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_exported_pre_selection_keeps_the_per_class_cap(tmp_path, runtime, assert_same_detections):
    """The ONNX graph's cap (a stable sort of the pre-selected pairs by label, each compared with
    the pair ``topk_candidates`` places before it) where it binds: class 3 holds about half of the
    image's best 150 pairs, and its best 20 (``topk_candidates``) share one box, so NMS keeps one
    of them; its next pairs, on boxes of their own, would be kept next were they not past the cap.
    The runtime's detections equal eager PyTorch's bit for bit, and torchvision's selection."""
    pytest.importorskip(runtime)
    generator = torch.Generator().manual_seed(24)
    centre = torch.rand(2, NUM_PRIORS, 2, generator=generator)
    boxes = torch.cat((centre - 0.01, centre + 0.01), dim=-1)  # small: few overlap
    logits = torch.randn(2, NUM_PRIORS, NUM_CLASSES, generator=generator)
    logits[..., 3] += 1.5
    scores = torch.softmax(logits, dim=-1)
    config = PostprocessConfig(score_threshold=0.05, iou_threshold=0.45, max_detections=10, topk_candidates=20, pre_nms_topk=150)
    for i in range(2):
        best_of_class = scores[i, :, 3].topk(config.topk_candidates).indices
        boxes[i, best_of_class] = boxes[i, best_of_class[0]].clone()
        best_pairs = scores[i, :, 1:].reshape(-1).topk(config.pre_nms_topk).indices
        assert (best_pairs % (NUM_CLASSES - 1) == 2).sum() > 3 * config.topk_candidates
    path = tmp_path / "select.onnx"
    _export_selection(path, config, "onnx", boxes, scores)
    if runtime == "onnxruntime":
        import onnxruntime
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {i.name: x.numpy() for i, x in zip(session.get_inputs(), (boxes, scores))})
    else:
        import openvino
        compiled = openvino.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        outputs = compiled([boxes.numpy(), scores.numpy()])
        got = [outputs[output] for output in compiled.outputs]
    expected = select_detections(boxes, scores, config)
    for ours, theirs in zip(expected, got):
        assert torch.equal(ours, torch.from_numpy(theirs))
    for i in range(2):
        reference = reference_detections(boxes[i], scores[i], config)
        assert (reference[2] == 3).sum() == 1
        assert_same_detections(_image(expected, i), reference, box_atol=0.0, score_atol=0.0)


@pytest.mark.parametrize("pre_nms_topk", [0, 300], ids=["all_candidates", "pre_selected"])
def test_every_nms_backend_selects_the_same_detections(pre_nms_topk):
    boxes, scores = _inputs(seed=23, num_images=3)
    config = PostprocessConfig(score_threshold=0.05, iou_threshold=0.5, max_detections=60, topk_candidates=80, pre_nms_topk=pre_nms_topk)
    expected = Selection(config, "operator")(boxes, scores)
    assert (expected.num_detections > 20).all()
    for backend in NMS_BACKENDS:
        selection = Selection(config, backend)
        if backend == "tensor":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                selection = torch.jit.script(selection)
        for ours, theirs in zip(expected, selection(boxes, scores)):
            assert torch.equal(ours, theirs), backend


def test_postprocess_config_refuses_negative_settings():
    with pytest.raises(ValueError, match="score_threshold"):
        PostprocessConfig(score_threshold=-0.1)
    with pytest.raises(ValueError, match="pre_nms_topk"):
        PostprocessConfig(pre_nms_topk=-1)
    assert PostprocessConfig(pre_nms_topk=50).exact == PostprocessConfig(pre_nms_topk=0)


@pytest.mark.parametrize("threshold", [0.3, 0.6, 0.95, 0.9999])
def test_eager_pre_selection_takes_no_more_than_the_candidates(threshold, monkeypatch):
    # Eager PyTorch sizes the pre-selection's top-k by the most candidates of an image; the
    # static size of exported graphs selects the same detections, and both equal the exact result.
    boxes, scores = _inputs(seed=24, num_images=3, sharpness=2.0)
    config = PostprocessConfig(score_threshold=threshold, iou_threshold=0.45, max_detections=50, topk_candidates=80, pre_nms_topk=600)
    selection = Selection(config)
    floored = scores[:, :, 1:].clamp(min=selection.below_threshold)
    most = int((scores[:, :, 1:] > threshold).sum(dim=(1, 2)).max())
    assert selection._eager_pre_selection_size(floored) == most < 600
    eager = selection(boxes, scores)
    monkeypatch.setattr(Selection, "_eager_pre_selection_size", lambda self, floored: self.pre_nms_topk)
    for ours, theirs in zip(eager, selection(boxes, scores)):
        assert torch.equal(ours, theirs)
    for ours, theirs in zip(eager, select_detections(boxes, scores, config.exact)):
        assert torch.equal(ours, theirs)


def test_many_classes_with_near_ties_equal_the_exact_reference(assert_same_detections):
    # 91 classes, boxes chained at IoUs within rounding of the threshold: the eager operator's
    # selection, with and without pre-selection, against per-image torchvision batched_nms.
    from test_padded_nms import near_tie_groups

    chained, _ = near_tie_groups(seed=25, num_images=2, groups=1, k=600)
    boxes = chained.reshape(2, 600, 4)
    generator = torch.Generator().manual_seed(25)
    scores = torch.softmax(4.0 * torch.randn(2, 600, 91, generator=generator), dim=-1)
    config = PostprocessConfig(score_threshold=0.01, iou_threshold=0.45, max_detections=200, topk_candidates=100, pre_nms_topk=0)
    exact = select_detections(boxes, scores, config)
    pre_selected = select_detections(boxes, scores, PostprocessConfig(0.01, 0.45, 200, 100, pre_nms_topk=3000))
    for i in range(2):
        expected = reference_detections(boxes[i], scores[i], config)
        assert expected[1].numel() == 200
        assert_same_detections(_image(exact, i), expected, box_atol=0.0, score_atol=0.0)
        assert_same_detections(_image(pre_selected, i), expected, box_atol=0.0, score_atol=0.0)

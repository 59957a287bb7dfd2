"""Evaluation: VOC AP against a reference transcription of the devkit algorithm and hand-computed
answers; COCO numbers against pycocotools' own COCOeval run directly on the same data."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ssd_deploy.errors import ConfigError, DatasetError
from ssd_deploy.evaluation import COCO_STAT_NAMES, evaluate_detections, write_result_json
from ssd_deploy.pipeline import Detections

NAMES = ["__background__", "cat", "dog", "bird"]


# ---------------------------------------------------------------------------------------------
# Reference: py-faster-rcnn's lib/datasets/voc_eval.py (voc_eval, voc_ap; Ross Girshick, MIT),
# kept loop for loop, adapted to our conventions:
#   - continuous coordinates: no "+ 1." in widths, heights and areas;
#   - a match needs ovmax >= ovthresh, as the MATLAB devkit's VOCevaldet.m (py-faster-rcnn: >);
#   - the 11 recall thresholds are exact tenths, np.arange(11) / 10 (py-faster-rcnn's
#     np.arange(0., 1.1, 0.1) holds 0.30000000000000004, so recall 3/10 would miss "0.3");
#   - a stable sort of confidences, so tied scores keep the input order (image order);
#   - Python data instead of annotation and detection files.
# ---------------------------------------------------------------------------------------------
def reference_voc_ap(rec, prec, use_07_metric=False):
    if use_07_metric:
        ap = 0.0
        for t in np.arange(11) / 10:
            if np.sum(rec >= t) == 0:
                p = 0
            else:
                p = np.max(prec[rec >= t])
            ap = ap + p / 11.0
    else:
        mrec = np.concatenate(([0.0], rec, [1.0]))
        mpre = np.concatenate(([0.0], prec, [0.0]))
        for i in range(mpre.size - 1, 0, -1):
            mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
        i = np.where(mrec[1:] != mrec[:-1])[0]
        ap = np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])
    return ap


def reference_voc_eval(recs, detections, classname, ovthresh=0.5, use_07_metric=False):
    """recs: {image_id: [{"name", "bbox" xyxy, "difficult"}]}; detections: [(image_id, confidence, bbox)]
    of ``classname``. Returns (rec, prec, ap)."""
    class_recs = {}
    npos = 0
    for imagename in recs:
        R = [obj for obj in recs[imagename] if obj["name"] == classname]
        bbox = np.array([x["bbox"] for x in R], dtype=np.float64).reshape(-1, 4)
        difficult = np.array([x["difficult"] for x in R]).astype(bool)
        det = [False] * len(R)
        npos = npos + sum(~difficult)
        class_recs[imagename] = {"bbox": bbox, "difficult": difficult, "det": det}

    image_ids = [x[0] for x in detections]
    confidence = np.array([x[1] for x in detections], dtype=np.float64)
    BB = np.array([x[2] for x in detections], dtype=np.float64).reshape(-1, 4)
    sorted_ind = np.argsort(-confidence, kind="stable")
    BB = BB[sorted_ind, :]
    image_ids = [image_ids[x] for x in sorted_ind]

    nd = len(image_ids)
    tp = np.zeros(nd)
    fp = np.zeros(nd)
    for d in range(nd):
        R = class_recs[image_ids[d]]
        bb = BB[d, :].astype(float)
        ovmax = -np.inf
        BBGT = R["bbox"].astype(float)
        if BBGT.size > 0:
            ixmin = np.maximum(BBGT[:, 0], bb[0])
            iymin = np.maximum(BBGT[:, 1], bb[1])
            ixmax = np.minimum(BBGT[:, 2], bb[2])
            iymax = np.minimum(BBGT[:, 3], bb[3])
            iw = np.maximum(ixmax - ixmin, 0.0)
            ih = np.maximum(iymax - iymin, 0.0)
            inters = iw * ih
            uni = (bb[2] - bb[0]) * (bb[3] - bb[1]) + (BBGT[:, 2] - BBGT[:, 0]) * (BBGT[:, 3] - BBGT[:, 1]) - inters
            overlaps = inters / uni
            ovmax = np.max(overlaps)
            jmax = np.argmax(overlaps)
        if ovmax >= ovthresh:
            if not R["difficult"][jmax]:
                if not R["det"][jmax]:
                    tp[d] = 1.0
                    R["det"][jmax] = 1
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0

    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    ap = reference_voc_ap(rec, prec, use_07_metric)
    return rec, prec, ap


def reference_aps(predictions, ground_truths, num_classes):
    """{label: (ap_07, ap)} of the reference, for the classes with non-difficult ground truth."""
    recs = {
        i: [
            {"name": int(label), "bbox": box.tolist(), "difficult": bool(d)}
            for box, label, d in zip(gt["boxes"], gt["labels"], gt["difficult"])
        ]
        for i, gt in enumerate(ground_truths)
    }
    out = {}
    for label in range(1, num_classes):
        npos = sum(1 for objects in recs.values() for o in objects if o["name"] == label and not o["difficult"])
        if npos == 0:
            continue
        dets = [
            (i, float(s), b.tolist())
            for i, p in enumerate(predictions)
            for b, s, l in zip(p.boxes, p.scores, p.labels)
            if l == label
        ]
        out[label] = (reference_voc_eval(recs, dets, label, use_07_metric=True)[2], reference_voc_eval(recs, dets, label)[2])
    return out


# ---------------------------------------------------------------------------------------------
# Direct pycocotools run, built here independently of ssd_deploy.evaluation.coco.
# ---------------------------------------------------------------------------------------------
def direct_cocoeval(predictions, ground_truths, class_names) -> COCOeval:
    annotations = []
    for i, gt in enumerate(ground_truths):
        for box, label, difficult in zip(gt["boxes"], gt["labels"], gt["difficult"]):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": int(label),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": int(difficult),
                }
            )
    results = [
        {"image_id": i, "category_id": int(label), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)}
        for i, p in enumerate(predictions)
        for (x1, y1, x2, y2), score, label in zip(p.boxes.astype(float).tolist(), p.scores, p.labels)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt_coco = COCO()
        gt_coco.dataset = {
            "images": [{"id": i} for i in range(len(ground_truths))],
            "categories": [{"id": k, "name": n} for k, n in enumerate(class_names) if k],
            "annotations": annotations,
        }
        gt_coco.createIndex()
        evaluator = COCOeval(gt_coco, gt_coco.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def assert_coco_equal(result, evaluator: COCOeval) -> None:
    """Exact equality of the 12 summary numbers (-1 <-> None) and of each class's AP."""
    expected = {name: (None if v < 0 else float(v)) for name, v in zip(COCO_STAT_NAMES, evaluator.stats)}
    assert result.coco == expected
    precision = evaluator.eval["precision"][:, :, :, 0, -1]  # area "all", maxDets 100
    for row in result.per_class:
        p = precision[:, :, evaluator.params.catIds.index(row.label)]
        p = p[p > -1]
        assert row.ap_coco == (float(np.mean(p)) if p.size else None), row.name


# ---------------------------------------------------------------------------------------------
# Building cases
# ---------------------------------------------------------------------------------------------
def target(boxes, labels, difficult=None):
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    difficult = np.zeros(len(boxes), bool) if difficult is None else np.asarray(difficult, bool)
    return {"boxes": boxes, "labels": np.asarray(labels, np.int64).reshape(-1), "difficult": difficult}


def dets(boxes, scores, labels):
    """Detections (Detections requires decreasing scores; evaluation must not rely on it, so they are sorted here)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32)
    order = np.argsort(-scores, kind="stable")
    return Detections(boxes[order], scores[order], np.asarray(labels, np.int64).reshape(-1)[order], NAMES)


def random_case(rng, num_images_max=6, ties=False):
    """Objects of 3 classes (20% difficult), 0-2 jittered detections each (some of the wrong class),
    clutter, and sometimes images without objects."""
    predictions, ground_truths = [], []
    for _ in range(int(rng.integers(1, num_images_max + 1))):
        g = int(rng.integers(0, 6))
        xy = rng.uniform(0, 80, (g, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(4, 40, (g, 2))], axis=1)
        labels = rng.integers(1, len(NAMES), g)
        ground_truths.append(target(boxes, labels, rng.random(g) < 0.2))
        det_boxes, det_labels = [], []
        for box, label in zip(boxes, labels):
            size = np.r_[box[2:] - box[:2], box[2:] - box[:2]]
            for _ in range(int(rng.integers(0, 3))):
                jittered = box + rng.normal(0, 0.15, 4) * size
                det_boxes.append(np.r_[np.minimum(jittered[:2], jittered[2:] - 1), np.maximum(jittered[2:], jittered[:2] + 1)])
                det_labels.append(label if rng.random() > 0.1 else rng.integers(1, len(NAMES)))
        for _ in range(int(rng.integers(0, 3))):
            xy = rng.uniform(0, 90, 2)
            det_boxes.append(np.r_[xy, xy + rng.uniform(4, 30, 2)])
            det_labels.append(rng.integers(1, len(NAMES)))
        scores = rng.random(len(det_boxes))
        if ties:
            scores = np.round(scores, 1)
        predictions.append(dets(det_boxes, scores, det_labels))
    return predictions, ground_truths


def row(result, name):
    return next(r for r in result.per_class if r.name == name)


# ---------------------------------------------------------------------------------------------
# VOC: hand-computed cases
# ---------------------------------------------------------------------------------------------
def test_voc_hand_computed_difficult_duplicate_and_image_without_objects():
    ground_truths = [
        target([[0, 0, 10, 10], [50, 50, 60, 60]], [1, 1], [False, True]),  # A, and D (difficult)
        target([[0, 0, 20, 20]], [1]),  # B
        target([], []),  # no objects
    ]
    predictions = [
        dets([[0, 0, 10, 10], [0, 0, 10, 11], [50, 50, 60, 60]], [0.9, 0.8, 0.7], [1, 1, 1]),  # A: TP, duplicate FP (IoU 100/110), D: ignored
        dets([[0, 0, 20, 20], [30, 30, 40, 40]], [0.5, 0.4], [1, 1]),  # B: TP, then no overlap: FP
        dets([[0, 0, 5, 5]], [0.6], [1]),  # image without objects: FP
    ]
    # Ranked without the ignored 0.7: TP .9, FP .8, FP .6, TP .5, FP .4; 2 objects count (D is difficult).
    # precision 1, 1/2, 1/3, 2/4, 2/5 at recall .5, .5, .5, 1, 1.
    # all-point: recall 0 -> .5 at envelope 1, .5 -> 1 at envelope max(1/2, 2/5) = 1/2: .5 + .25 = 0.75.
    # 11-point: t = 0 ... .5 (6 thresholds) best precision 1, t = .6 ... 1 (5) best 1/2: (6 + 2.5) / 11.
    result = evaluate_detections(predictions, ground_truths, NAMES)
    cat = row(result, "cat")
    assert (cat.num_gt, cat.num_difficult, cat.num_det) == (2, 1, 6)
    assert cat.ap_voc == pytest.approx(0.75, abs=1e-12)
    assert cat.ap_voc07 == pytest.approx(8.5 / 11, abs=1e-12)
    reference = reference_aps(predictions, ground_truths, len(NAMES))
    assert reference[1] == pytest.approx((8.5 / 11, 0.75), abs=1e-12)
    # dog and bird have no ground truth: None, and left out of the means.
    assert row(result, "dog").ap_voc is None and row(result, "bird").ap_voc07 is None
    assert result.map_voc == pytest.approx(0.75, abs=1e-12) and result.map_voc07 == pytest.approx(8.5 / 11, abs=1e-12)


def test_voc_hand_computed_recall_of_exact_tenths():
    # 10 objects in a row; TP, TP, TP, FP, TP: recall .1 .2 .3 .3 .4, precision 1 1 1 3/4 4/5.
    objects = [[20 * k, 0, 20 * k + 10, 10] for k in range(10)]
    ground_truths = [target(objects, [2] * 10)]
    boxes = [objects[0], objects[1], objects[2], [300, 300, 310, 310], objects[3]]
    predictions = [dets(boxes, [0.9, 0.8, 0.7, 0.6, 0.5], [2] * 5)]
    # all-point: .3 of recall at envelope 1, then .1 at 4/5: 0.38.
    # 11-point: recall 3/10 reaches the threshold 0.3, so t = 0, .1, .2, .3 give 1, t = .4 gives 4/5,
    # t >= .5 give 0: 4.8 / 11 (py-faster-rcnn's float thresholds would give 4.6 / 11).
    dog = row(evaluate_detections(predictions, ground_truths, NAMES), "dog")
    assert dog.ap_voc == pytest.approx(0.38, abs=1e-12)
    assert dog.ap_voc07 == pytest.approx(4.8 / 11, abs=1e-12)
    assert reference_aps(predictions, ground_truths, len(NAMES))[2] == pytest.approx((4.8 / 11, 0.38), abs=1e-12)


def test_duplicates_are_false_positives():
    ground_truths = [target([[0, 0, 10, 10], [20, 0, 30, 10]], [1, 1])]
    with_duplicate = [dets([[0, 0, 10, 10], [0, 0, 10, 11], [20, 0, 30, 10]], [0.9, 0.8, 0.7], [1, 1, 1])]
    without = [dets([[0, 0, 10, 10], [20, 0, 30, 10]], [0.9, 0.7], [1, 1])]
    # TP, FP (same object), TP: precision 1, 1/2, 2/3 at recall .5, .5, 1.
    # all-point .5 * 1 + .5 * 2/3; 11-point (6 * 1 + 5 * 2/3) / 11.
    cat = row(evaluate_detections(with_duplicate, ground_truths, NAMES), "cat")
    assert cat.ap_voc == pytest.approx(0.5 + 1 / 3, abs=1e-12)
    assert cat.ap_voc07 == pytest.approx((6 + 10 / 3) / 11, abs=1e-12)
    assert row(evaluate_detections(without, ground_truths, NAMES), "cat").ap_voc == 1.0


def test_difficult_objects_are_neither_tp_nor_fp():
    ground_truths = [target([[0, 0, 10, 10], [40, 40, 60, 60]], [1, 1], [False, True])]
    # Two detections of the difficult object rank first (the second would be a duplicate FP on an
    # ordinary object); both are ignored, so precision stays 1.
    predictions = [dets([[40, 40, 60, 60], [40, 40, 60, 61], [0, 0, 10, 10]], [0.9, 0.8, 0.7], [1, 1, 1])]
    result = evaluate_detections(predictions, ground_truths, NAMES, metrics=("voc07", "voc"))
    cat = row(result, "cat")
    assert (cat.num_gt, cat.num_difficult, cat.ap_voc07, cat.ap_voc) == (1, 1, 1.0, 1.0)
    # Not difficult, the same detections give TP, FP (duplicate), TP: precision 1, 1/2, 2/3 at
    # recall .5, .5, 1, so AP .5 * 1 + .5 * 2/3.
    plain = [target([[0, 0, 10, 10], [40, 40, 60, 60]], [1, 1])]
    assert row(evaluate_detections(predictions, plain, NAMES), "cat").ap_voc == pytest.approx(0.5 + 1 / 3, abs=1e-12)


def test_a_detection_claims_its_largest_iou_object_even_if_taken():
    # The devkit's rule: the second detection's best object (IoU 100/105) is taken, so it is a FP
    # although it overlaps the unmatched second object (IoU 105/120) enough. AP: TP at recall .5
    # with precision 1, nothing more: 0.5.
    ground_truths = [target([[0, 0, 10, 10], [0, 0, 10, 12]], [1, 1])]
    predictions = [dets([[0, 0, 10, 10], [0, 0, 10, 10.5]], [0.9, 0.8], [1, 1])]
    cat = row(evaluate_detections(predictions, ground_truths, NAMES, metrics=("voc",)), "cat")
    assert cat.ap_voc == pytest.approx(0.5, abs=1e-12)
    assert reference_aps(predictions, ground_truths, len(NAMES))[1][1] == pytest.approx(0.5, abs=1e-12)


def test_iou_of_exactly_one_half_is_a_match():
    ground_truths = [target([[0, 0, 10, 20]], [3])]
    predictions = [dets([[0, 0, 10, 10]], [0.5], [3])]  # intersection 100, union 200
    assert row(evaluate_detections(predictions, ground_truths, NAMES, metrics=("voc",)), "bird").ap_voc == 1.0


def test_class_without_detections_counts_zero_and_class_without_ground_truth_is_left_out():
    ground_truths = [target([[0, 0, 10, 10], [20, 20, 30, 30]], [1, 2])]
    # cat found, dog never detected, a bird detection where there are no birds.
    predictions = [dets([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8], [1, 3])]
    result = evaluate_detections(predictions, ground_truths, NAMES)
    rows = [(r.name, r.num_gt, r.num_det, r.ap_voc) for r in result.per_class]
    assert rows == [("cat", 1, 1, 1.0), ("dog", 1, 0, 0.0), ("bird", 0, 1, None)]
    assert result.map_voc == 0.5 and result.map_voc07 == 0.5  # (1 + 0) / 2: bird is not averaged
    assert row(result, "dog").ap_coco == 0.0 and row(result, "bird").ap_coco is None


def test_perfect_predictions_give_one():
    rng = np.random.default_rng(3)
    ground_truths, predictions = [], []
    for _ in range(4):
        xy = rng.uniform(0, 300, (3, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(10, 150, (3, 2))], axis=1)
        labels = rng.integers(1, len(NAMES), 3)
        ground_truths.append(target(boxes, labels, [False, False, True]))  # the difficult one is not detected
        predictions.append(dets(boxes[:2], rng.random(2), labels[:2]))
    result = evaluate_detections(predictions, ground_truths, NAMES)
    assert result.map_voc07 == 1.0 and result.map_voc == 1.0
    assert result.coco["AP"] == pytest.approx(1.0, abs=1e-12) and result.coco["AR100"] == 1.0
    assert all(r.ap_coco == pytest.approx(1.0, abs=1e-12) for r in result.per_class if r.num_gt)


def test_no_detections_at_all():
    ground_truths = [target([[0, 0, 10, 10]], [1]), target([], [])]
    predictions = [dets([], [], []), dets([], [], [])]
    result = evaluate_detections(predictions, ground_truths, NAMES)
    assert (result.map_voc07, result.map_voc, result.coco["AP"], row(result, "cat").ap_coco) == (0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("ties", [False, True])
def test_voc_matches_reference_on_random_cases(ties):
    rng = np.random.default_rng(7 + ties)
    checked = 0
    for _ in range(20):
        predictions, ground_truths = random_case(rng, ties=ties)
        result = evaluate_detections(predictions, ground_truths, NAMES, metrics=("voc07", "voc"))
        reference = reference_aps(predictions, ground_truths, len(NAMES))
        for r in result.per_class:
            if r.label in reference:
                assert (r.ap_voc07, r.ap_voc) == pytest.approx(reference[r.label], abs=1e-12)
                checked += 1
            else:
                assert r.ap_voc07 is None and r.ap_voc is None and r.num_gt == 0
    assert checked >= 30  # most classes of most trials have ground truth


# ---------------------------------------------------------------------------------------------
# COCO
# ---------------------------------------------------------------------------------------------
def test_coco_equals_direct_cocoeval_on_random_cases():
    rng = np.random.default_rng(11)
    for _ in range(5):
        predictions, ground_truths = random_case(rng, num_images_max=8)
        if not sum(len(p) for p in predictions):
            continue
        result = evaluate_detections(predictions, ground_truths, NAMES)
        assert_coco_equal(result, direct_cocoeval(predictions, ground_truths, NAMES))


def test_coco_equals_direct_cocoeval_with_all_area_ranges():
    # Objects small (< 32²), medium and large, so APs, APm and APl are all measured.
    sizes = [8, 20, 50, 120, 200]
    ground_truths = [target([[10, 10, 10 + s, 10 + s] for s in sizes], [1, 2, 1, 3, 2], [False, False, False, False, True])]
    boxes = [[11, 10, 10 + s, 12 + s] for s in sizes] + [[300, 300, 340, 340]]
    predictions = [dets(boxes, [0.9, 0.2, 0.8, 0.6, 0.5, 0.7], [1, 2, 1, 3, 2, 1])]
    result = evaluate_detections(predictions, ground_truths, NAMES)
    assert all(result.coco[k] is not None for k in ("APs", "APm", "APl"))
    assert_coco_equal(result, direct_cocoeval(predictions, ground_truths, NAMES))


def test_difficult_is_a_coco_crowd():
    # A small detection inside a large difficult box: IoU 0.04, so VOC calls it a FP; COCO's crowd
    # overlap is intersection / detection area = 1, so COCO ignores it.
    ground_truths = [target([[0, 0, 100, 100], [200, 200, 220, 220]], [1, 1], [True, False])]
    predictions = [dets([[10, 10, 30, 30], [200, 200, 220, 220]], [0.9, 0.5], [1, 1])]
    cat = row(evaluate_detections(predictions, ground_truths, NAMES), "cat")
    assert cat.ap_voc == pytest.approx(0.5, abs=1e-12)  # FP then TP: precision 1/2 at recall 1
    assert cat.ap_coco == pytest.approx(1.0, abs=1e-12)


def test_pycocotools_output_is_silenced_unless_verbose(capsys):
    ground_truths = [target([[0, 0, 10, 10]], [1])]
    predictions = [dets([[0, 0, 10, 10]], [0.9], [1])]
    evaluate_detections(predictions, ground_truths, NAMES)
    assert capsys.readouterr().out == ""
    evaluate_detections(predictions, ground_truths, NAMES, verbose=True)
    assert "Average Precision" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Result, JSON, errors
# ---------------------------------------------------------------------------------------------
def test_table_and_json(tmp_path):
    ground_truths = [target([[0, 0, 10, 10], [20, 20, 30, 30]], [1, 2])]
    predictions = [dets([[0, 0, 10, 10]], [0.9], [1])]
    result = evaluate_detections(predictions, ground_truths, NAMES)
    lines = result.table().splitlines()
    assert lines[0] == "| class | GT | difficult | detections | AP VOC07 | AP VOC | AP COCO |"
    assert "| cat | 1 | 0 | 1 | 1.0000 | 1.0000 | 1.0000 |" in lines
    assert "| bird | 0 | 0 | 0 | - | - | - |" in lines
    assert "mAP VOC07 0.5000" in lines[-1] and "mAP VOC 0.5000" in lines[-1]

    path = write_result_json(result, tmp_path / "eval" / "metrics.json")
    data = json.loads(path.read_text())
    assert data == json.loads(json.dumps(result.to_dict()))
    assert data["per_class"][2]["ap_voc"] is None and data["coco"]["APm"] is None  # null, not NaN
    assert data["map_voc"] == 0.5 and [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_metrics_subset():
    ground_truths = [target([[0, 0, 10, 10]], [1])]
    result = evaluate_detections([dets([[0, 0, 10, 10]], [0.9], [1])], ground_truths, NAMES, metrics=("voc",))
    assert result.map_voc == 1.0 and result.map_voc07 is None and result.coco == {}
    assert row(result, "cat").ap_coco is None and "AP COCO" not in result.table() and "AP VOC07" not in result.table()


def test_bad_inputs_raise_clear_errors():
    ground_truths = [target([[0, 0, 10, 10]], [1])]
    ok = [dets([[0, 0, 10, 10]], [0.9], [1])]
    with pytest.raises(ConfigError, match="1 predictions for 2 ground truths"):
        evaluate_detections(ok, ground_truths * 2, NAMES)
    with pytest.raises(ConfigError, match="unknown metrics.*map"):
        evaluate_detections(ok, ground_truths, NAMES, metrics=("voc", "map"))
    with pytest.raises(ConfigError, match="image 0: label 4 outside 1 ... 3"):
        evaluate_detections([dets([[0, 0, 10, 10]], [0.9], [4])], ground_truths, NAMES)
    with pytest.raises(DatasetError, match="ground truth of image 0: label 0 outside"):
        evaluate_detections(ok, [target([[0, 0, 10, 10]], [0])], NAMES)
    with pytest.raises(DatasetError, match="boxes of shape"):
        evaluate_detections(ok, [{"boxes": np.zeros((2, 4)), "labels": np.ones(1, np.int64)}], NAMES)


def test_without_pycocotools_voc_metrics_still_work_and_coco_says_what_is_missing(monkeypatch):
    """The GPU check's machine has no pycocotools: training validation and the benchmarks report
    VOC metrics there, and asking for COCO's names the missing package."""
    import subprocess
    import sys

    from ssd_deploy.evaluation import available_metrics

    monkeypatch.setitem(sys.modules, "pycocotools", None)
    assert available_metrics() == ("voc07", "voc") and available_metrics(("voc07", "coco")) == ("voc07",)
    predictions = [Detections(np.array([[0, 0, 10, 10]], np.float32), np.array([0.9], np.float32), np.array([1]))]
    truths = [{"boxes": np.array([[0, 0, 10, 10]], np.float32), "labels": np.array([1])}]
    result = evaluate_detections(predictions, truths, ["__background__", "a"], metrics=available_metrics())
    assert result.map_voc07 == pytest.approx(1.0) and result.coco == {}
    with pytest.raises(ConfigError, match="pycocotools is not installed. Note: pip install pycocotools"):
        evaluate_detections(predictions, truths, ["__background__", "a"], metrics=("voc07", "coco"))
    blocked = "import sys\nfor name in ('pycocotools', 'openvino', 'nncf', 'tensorrt'): sys.modules[name] = None\n"
    imports = "import ssd_deploy.bench, ssd_deploy.cli.bench, ssd_deploy.training.trainer, ssd_deploy.evaluation"
    run = subprocess.run([sys.executable, "-c", blocked + imports], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]

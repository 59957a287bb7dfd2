"""Training augmentation and evaluation resizing: invariants over many random draws, each step
checked against a hand computation, and the exact pixels of inference pre-processing."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.ops import box_iou
from torchvision.transforms import v2

from ssd_deploy.data.shapes import render_scene
from ssd_deploy.data.transforms import RGB_MEAN_255, BatchedIoUCrop, EvalTransform, TrainTransform, collate
from ssd_deploy.errors import ConfigError, DatasetError
from ssd_deploy.images import to_bgr_uint8
from ssd_deploy.pipeline import preprocess

DRAWS = 200
OFF = dict(photometric=False, expand=False, crop=False, flip=False)  # every random step off

# Label -> BGR colour of its box region; background is grey, the zoom-out fill another grey.
LABEL_BGR = {1: (0, 0, 255), 2: (0, 255, 0), 3: (255, 0, 0), 4: (0, 255, 255), 5: (255, 0, 255)}


def make_target(boxes, labels, difficult=None, path="scene.png") -> dict:
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    labels = np.asarray(labels, dtype=np.int64)
    difficult = np.zeros(len(labels), bool) if difficult is None else np.asarray(difficult, bool)
    return {"boxes": boxes, "labels": labels, "difficult": difficult, "image_id": 7, "path": path, "orig_size": (0, 0)}


def shapes_sample(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, dict]:
    scene = render_scene(rng, size)
    return scene.image, make_target(scene.boxes, scene.labels)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Transforms run in single-threaded DataLoader workers; on these small images extra
    intra-op threads only add contention when the machine is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def scenes() -> list[tuple[np.ndarray, dict]]:
    """Shapes scenes of the two sizes the draws alternate between (rendering costs ~20 ms)."""
    rng = np.random.default_rng(4)
    return [shapes_sample(rng, (320, 320) if i % 2 else (375, 500)) for i in range(12)]


def colour_scene(rng: np.random.Generator, size=(375, 500)) -> tuple[np.ndarray, dict]:
    """One box per label, each filled with its label's colour, in separate cells of a 2 x 3 grid."""
    height, width = size
    image = np.full((height, width, 3), 128, np.uint8)
    cells = rng.permutation(6)[: len(LABEL_BGR)]
    boxes = []
    for label, cell in zip(LABEL_BGR, cells):
        cell_h, cell_w = height // 2, width // 3
        y0, x0 = (cell // 3) * cell_h, (cell % 3) * cell_w
        h, w = rng.integers(cell_h // 4, cell_h), rng.integers(cell_w // 4, cell_w)
        y, x = y0 + rng.integers(0, cell_h - h + 1), x0 + rng.integers(0, cell_w - w + 1)
        image[y : y + h, x : x + w] = LABEL_BGR[label]
        boxes.append([x, y, x + w, y + h])
    return image, make_target(boxes, list(LABEL_BGR))


def to_bgr_image(tensor: torch.Tensor) -> np.ndarray:
    """float RGB [3, H, W] in [0, 1] (k / 255 values) -> BGR uint8 H x W x 3, exactly."""
    return np.ascontiguousarray((tensor * 255).round().byte().permute(1, 2, 0).numpy()[:, :, ::-1])


def canvas_to_bgr(canvas: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(canvas.permute(1, 2, 0).numpy()[:, :, ::-1])


# ---------------------------------------------------------------- exact pixels of inference


@pytest.mark.parametrize("image_size", [(320, 320), (375, 500), (300, 300), (97, 613)])
@pytest.mark.parametrize("input_size", [(300, 300), (512, 384)])
def test_eval_transform_equals_pipeline_preprocess(image_size, input_size):
    image, target = shapes_sample(np.random.default_rng(1), image_size)
    tensor, out = EvalTransform(input_size)(image, target)
    assert torch.equal(tensor, preprocess([image], input_size)[0][0])
    height, width = image_size
    expected = target["boxes"] / np.array([width, height, width, height], np.float32)
    assert torch.equal(out["boxes"], torch.from_numpy(expected))
    assert torch.equal(out["labels"], torch.from_numpy(target["labels"]))


def test_train_transform_without_augmentation_equals_preprocess():
    rng = np.random.default_rng(2)
    for size in [(320, 320), (375, 500), (300, 300)]:
        image, target = shapes_sample(rng, size)
        tensor, out = TrainTransform((300, 300), **OFF)(image, target)
        assert torch.equal(tensor, preprocess([image], (300, 300))[0][0])
        assert torch.allclose(out["boxes"], EvalTransform((300, 300))(image, target)[1]["boxes"])


def test_train_output_is_preprocess_of_the_augmented_image(scenes):
    """The final resize (per colour plane) gives exactly preprocess's bytes for every canvas the
    augmentation makes: zoomed, cropped (strided views), flipped."""
    transform = TrainTransform((300, 300))
    for seed in range(60):
        image, target = scenes[seed % len(scenes)]
        torch.manual_seed(seed)
        canvas, sample = transform.augment(image, target)
        torch.manual_seed(seed)
        tensor, out = transform(image, target)
        assert torch.equal(tensor, preprocess([canvas_to_bgr(canvas)], (300, 300))[0][0])
        height, width = canvas.shape[-2:]
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        assert torch.allclose(out["boxes"], sample["boxes"].as_subclass(torch.Tensor) / scale)


# ---------------------------------------------------------------- invariants over random draws


def test_outputs_are_valid_over_random_draws(scenes):
    transform = TrainTransform((300, 300))
    torch.manual_seed(0)
    num_boxes = 0
    for i in range(DRAWS):
        image, target = scenes[i % len(scenes)]
        tensor, out = transform(image, target)
        assert tensor.shape == (3, 300, 300) and tensor.dtype == torch.float32
        assert 0.0 <= tensor.min() and tensor.max() <= 1.0
        boxes, labels = out["boxes"], out["labels"]
        assert boxes.dtype == torch.float32 and boxes.shape == (len(labels), 4)
        assert labels.dtype == torch.int64 and out["difficult"].dtype == torch.bool
        assert ((boxes >= 0) & (boxes <= 1)).all()
        assert ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()
        assert set(labels.tolist()) <= set(target["labels"].tolist())
        assert (out["image_id"], out["path"], out["orig_size"]) == (7, "scene.png", (0, 0))
        num_boxes += len(labels)
    assert num_boxes > DRAWS  # the draws kept boxes to check


def test_labels_stay_with_their_boxes():
    """Each box region has its label's colour; after zoom, crop, flip and resize the pixel at a
    kept box's centre must still show that label's colour."""
    transform = TrainTransform((300, 300), photometric=False)
    rng = np.random.default_rng(5)
    torch.manual_seed(0)
    checked = 0
    for _ in range(DRAWS):
        image, target = colour_scene(rng)
        tensor, out = transform(image, target)
        for box, label in zip((out["boxes"] * 300).tolist(), out["labels"].tolist()):
            x1, y1, x2, y2 = box
            if min(x2 - x1, y2 - y1) < 10:  # too small for its centre pixel to be unblended
                continue
            rgb = (tensor[:, int((y1 + y2) / 2), int((x1 + x2) / 2)] * 255).round()
            assert rgb.tolist() == list(LABEL_BGR[label][::-1]), (box, label, rgb)
            checked += 1
    assert checked > 2 * DRAWS


def test_deterministic_under_manual_seed(scenes):
    transform = TrainTransform((300, 300))
    image, target = scenes[0]
    outputs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        outputs.append([transform(image, target) for _ in range(10)])
    for (a, ta), (b, tb), (c, _) in zip(*outputs):
        assert torch.equal(a, b) and torch.equal(ta["boxes"], tb["boxes"]) and torch.equal(ta["labels"], tb["labels"])
    assert any(not torch.equal(a, c) for (a, _), (c, _) in zip(outputs[0], outputs[2]))


def test_transform_survives_pickling_for_dataloader_workers(scenes):
    transform = TrainTransform((300, 300))
    copy = pickle.loads(pickle.dumps(transform))
    image, target = scenes[1]
    torch.manual_seed(3)
    expected = transform(image, target)
    torch.manual_seed(3)
    actual = copy(image, target)
    assert torch.equal(actual[0], expected[0]) and torch.equal(actual[1]["boxes"], expected[1]["boxes"])


# ---------------------------------------------------------------- each geometric step


def test_flip_mirrors_image_and_boxes_and_twice_is_identity():
    transform = TrainTransform((300, 300), **{**OFF, "flip": True})
    image, target = shapes_sample(np.random.default_rng(7), (300, 300))
    plain, plain_target = EvalTransform((300, 300))(image, target)
    x1, y1, x2, y2 = plain_target["boxes"].unbind(1)
    mirrored_boxes = torch.stack([1 - x2, y1, 1 - x1, y2], dim=1)
    torch.manual_seed(0)
    flips = 0
    for _ in range(DRAWS):
        tensor, out = transform(image, target)
        if torch.equal(tensor, plain):
            assert torch.equal(out["boxes"], plain_target["boxes"])
        else:
            assert torch.equal(tensor, plain.flip(-1))
            assert torch.allclose(out["boxes"], mirrored_boxes, atol=1e-6)
            flipped, flipped_target = tensor, out
            flips += 1
    assert 0.35 * DRAWS < flips < 0.65 * DRAWS  # p = 0.5
    # Flip the flipped sample again: the original comes back.
    again = make_target(flipped_target["boxes"].numpy() * 300, flipped_target["labels"].numpy())
    for seed in range(20):
        torch.manual_seed(seed)
        tensor, out = transform(to_bgr_image(flipped), again)
        if not torch.equal(tensor, flipped):
            break
    assert torch.equal(tensor, plain)
    assert torch.allclose(out["boxes"], plain_target["boxes"], atol=1e-4)
    assert torch.equal(out["labels"], plain_target["labels"])


@pytest.mark.parametrize("fill", [RGB_MEAN_255, (10.0, 200.0, 30.4)])
def test_zoom_out_places_image_on_a_canvas_of_fill(fill):
    transform = TrainTransform((300, 300), fill=fill, **{**OFF, "expand": True})
    height, width, colour = 60, 80, (7, 9, 11)  # BGR
    image = np.full((height, width, 3), colour, np.uint8)
    target = make_target([[0, 0, width, height]], [1])
    fill_rgb = torch.tensor([round(v) for v in fill], dtype=torch.uint8)
    torch.manual_seed(0)
    zooms = 0
    for _ in range(DRAWS):
        canvas, sample = transform.augment(image, target)
        canvas_h, canvas_w = canvas.shape[-2:]
        assert 1.0 <= canvas_w / width <= 4.0 and 1.0 <= canvas_h / height <= 4.0
        x1, y1, x2, y2 = (int(v) for v in sample["boxes"][0].tolist())
        assert (x2 - x1, y2 - y1) == (width, height)  # the box moved with the image
        inside = torch.zeros(canvas_h, canvas_w, dtype=torch.bool)
        inside[y1:y2, x1:x2] = True
        assert (canvas[:, inside] == torch.tensor(colour[::-1], dtype=torch.uint8)[:, None]).all()
        assert (canvas[:, ~inside] == fill_rgb[:, None]).all()
        zooms += (canvas_h, canvas_w) != (height, width)
    assert 0.35 * DRAWS < zooms < 0.65 * DRAWS  # p = 0.5


def test_crop_keeps_exactly_the_boxes_whose_centre_is_inside():
    """The image encodes its own coordinates (R = x, G = y), so each crop's window can be read
    off its top-left pixel and the kept boxes recomputed by hand."""
    height, width = 240, 256
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.stack([np.zeros_like(xs), ys, xs], axis=2).astype(np.uint8)  # BGR: B=0, G=y, R=x
    boxes = np.array(
        [[10, 10, 60, 50], [100, 20, 130, 90], [180, 30, 250, 70], [20, 120, 90, 230], [120, 130, 150, 160],
         [200, 150, 240, 235], [60, 60, 200, 200], [0, 200, 30, 240]],
        dtype=np.float32,
    )
    labels = np.arange(1, len(boxes) + 1)
    target = make_target(boxes, labels)
    transform = TrainTransform((300, 300), **{**OFF, "crop": True})
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    torch.manual_seed(0)
    crops = dropped_overlapping = 0
    for _ in range(DRAWS):
        canvas, sample = transform.augment(image, target)
        crop_h, crop_w = canvas.shape[-2:]
        left, top = int(canvas[0, 0, 0]), int(canvas[1, 0, 0])
        assert canvas[0, 0, -1] == left + crop_w - 1 and canvas[1, -1, 0] == top + crop_h - 1
        if (crop_h, crop_w) != (height, width):
            crops += 1
            assert 0.3 * width <= crop_w and 0.3 * height <= crop_h and 0.5 <= crop_w / crop_h <= 2.0
        right, bottom = left + crop_w, top + crop_h
        keep = (left < centres[:, 0]) & (centres[:, 0] < right) & (top < centres[:, 1]) & (centres[:, 1] < bottom)
        assert keep.any()  # a crop always keeps an object
        expected = boxes[keep].copy()
        expected[:, 0::2] = expected[:, 0::2].clip(left, right) - left
        expected[:, 1::2] = expected[:, 1::2].clip(top, bottom) - top
        assert torch.equal(sample["labels"], torch.from_numpy(labels[keep]))
        assert torch.equal(sample["boxes"].as_subclass(torch.Tensor), torch.from_numpy(expected))
        overlaps = (boxes[:, 0] < right) & (boxes[:, 2] > left) & (boxes[:, 1] < bottom) & (boxes[:, 3] > top)
        dropped_overlapping += int((overlaps & ~keep).sum())
    assert crops > 0.5 * DRAWS and dropped_overlapping > 0  # the rule was exercised


def test_crop_patch_satisfies_its_minimum_iou():
    canvas = tv_tensors.Image(torch.zeros(3, 200, 300, dtype=torch.uint8))
    boxes = tv_tensors.BoundingBoxes(
        torch.tensor([[40.0, 30.0, 140.0, 110.0], [200.0, 120.0, 260.0, 190.0]]), format="XYXY", canvas_size=(200, 300)
    )
    crop = BatchedIoUCrop(sampler_options=[0.7])
    torch.manual_seed(0)
    for _ in range(DRAWS):
        params = crop.make_params([canvas, boxes])
        left, top, width, height = params["left"], params["top"], params["width"], params["height"]
        patch = torch.tensor([[left, top, left + width, top + height]], dtype=torch.float32)
        inside = params["is_within_crop_area"]
        assert inside.any() and box_iou(boxes[inside], patch).max() >= 0.7
        assert 0.5 <= width / height <= 2.0 and 90 <= width <= 300 and 60 <= height <= 200


def test_crop_draws_like_torchvision_random_iou_crop():
    """Testing the trials in one batch keeps torchvision's distribution of patches."""
    canvas = tv_tensors.Image(torch.zeros(3, 200, 300, dtype=torch.uint8))
    boxes = tv_tensors.BoundingBoxes(
        torch.tensor([[40.0, 30.0, 140.0, 110.0], [200.0, 120.0, 260.0, 190.0]]), format="XYXY", canvas_size=(200, 300)
    )

    def patch_stats(crop) -> torch.Tensor:
        torch.manual_seed(0)
        rows = []
        for _ in range(DRAWS):
            p = crop.make_params([canvas, boxes]) or {"left": 0, "top": 0, "width": 300, "height": 200}
            rows.append([p["width"] * p["height"] / 60000, (p["left"] + p["width"] / 2) / 300, (p["top"] + p["height"] / 2) / 200])
        rows = torch.tensor(rows)
        return torch.cat([rows.mean(0), rows.std(0)])

    ours, theirs = patch_stats(BatchedIoUCrop()), patch_stats(v2.RandomIoUCrop())
    assert (ours - theirs).abs().max() < 0.04, (ours, theirs)


# ---------------------------------------------------------------- targets


def test_difficult_boxes_dropped_in_training_and_kept_in_evaluation():
    image, _ = shapes_sample(np.random.default_rng(8), (320, 320))
    target = make_target([[10, 10, 100, 100], [150, 150, 300, 300], [50, 200, 120, 300]], [1, 2, 3], [False, True, False])
    _, out = TrainTransform((300, 300), **OFF)(image, target)
    assert out["labels"].tolist() == [1, 3] and not out["difficult"].any()
    _, out = TrainTransform((300, 300), keep_difficult=True, **OFF)(image, target)
    assert out["labels"].tolist() == [1, 2, 3] and out["difficult"].tolist() == [False, True, False]
    _, out = EvalTransform((300, 300))(image, target)
    assert out["labels"].tolist() == [1, 2, 3] and out["difficult"].tolist() == [False, True, False]
    transform = TrainTransform((300, 300))
    torch.manual_seed(0)
    assert all(2 not in transform(image, target)[1]["labels"].tolist() for _ in range(50))


@pytest.mark.parametrize("case", ["no boxes", "only difficult boxes"])
def test_images_without_objects_are_valid_samples(case):
    image, _ = shapes_sample(np.random.default_rng(9), (375, 500))
    target = make_target(np.zeros((0, 4)), []) if case == "no boxes" else make_target([[10, 10, 50, 50]], [1], [True])
    torch.manual_seed(0)
    for transform in (TrainTransform((300, 300)), EvalTransform((300, 300))):
        for _ in range(20):
            tensor, out = transform(image, target)
            assert tensor.shape == (3, 300, 300)
            if isinstance(transform, TrainTransform):
                assert out["boxes"].shape == (0, 4) and out["labels"].shape == (0,) and out["difficult"].shape == (0,)
            assert out["boxes"].dtype == torch.float32 and out["labels"].dtype == torch.int64
    # torchvision's RandomIoUCrop would spin until it draws "no crop"; ours keeps the image whole.
    canvas, _ = TrainTransform((300, 300), **{**OFF, "crop": True}).augment(image, target)
    assert np.array_equal(canvas_to_bgr(canvas), image)


def test_gray_and_bgra_images_are_converted():
    image, target = shapes_sample(np.random.default_rng(10), (320, 320))
    for odd in (image[:, :, 1], np.dstack([image, np.full(image.shape[:2], 9, np.uint8)])):
        for transform in (TrainTransform((300, 300), **OFF), EvalTransform((300, 300))):
            assert torch.equal(transform(odd, target)[0], transform(to_bgr_uint8(odd), target)[0])


def test_collate_stacks_images_and_lists_targets(scenes):
    transform = TrainTransform((300, 300))
    batch = [transform(image, target) for image, target in scenes[:4]]
    images, targets = collate(batch)
    assert images.shape == (4, 3, 300, 300)
    assert [t["boxes"].shape for t in targets] == [t["boxes"].shape for _, t in batch]


def test_malformed_targets_and_settings_are_reported():
    image = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(DatasetError, match=r"scene\.png: target boxes have shape \(3,\)"):
        EvalTransform((300, 300))(image, {"boxes": np.zeros(3), "labels": np.zeros(1), "path": "scene.png"})
    with pytest.raises(DatasetError, match="one label and one difficult flag per box"):
        TrainTransform((300, 300))(image, make_target([[0, 0, 5, 5]], [1]) | {"labels": np.array([1, 2])})
    with pytest.raises(ConfigError, match="fill"):
        TrainTransform((300, 300), fill=(0, 0, 300))
    with pytest.raises(ConfigError, match="max_expand"):
        TrainTransform((300, 300), max_expand=0.5)
    with pytest.raises(ConfigError, match="input_size"):
        EvalTransform((300, 0))

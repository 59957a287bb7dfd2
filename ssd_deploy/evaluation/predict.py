"""``predict_dataset``: a detector's detections on every image of a dataset, with its ground truth.

What training's validation, ``ssd-eval`` and the parity benchmark feed to
:func:`~ssd_deploy.evaluation.evaluate_detections`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from ..pipeline import Detections

if TYPE_CHECKING:  # evaluation is below runtimes: it only calls the detector it is given
    from ..runtimes import Detector


def predict_dataset(
    detector: Detector, dataset: Any, batch_size: int = 16, progress: bool = True, desc: str = "eval"
) -> tuple[list[Detections], list[dict[str, Any]]]:
    """Detections and ground truth of every image of ``dataset`` (a DetectionDataset without a
    transform: raw BGR images and targets in pixels), in dataset order."""
    predictions: list[Detections] = []
    ground_truths: list[dict[str, Any]] = []
    indices = range(len(dataset))
    bar = tqdm(total=len(dataset), desc=desc, unit="img", disable=not progress, leave=False)
    seen: set = set()
    for start in range(0, len(dataset), batch_size):
        samples = [dataset[i] for i in indices[start : start + batch_size]]
        bar.update(len(samples))
        # An image that fails to decode is replaced by the next readable one (and reported by the
        # dataset); count every image once.
        unique = []
        for image, target in samples:
            if target["image_id"] not in seen:
                seen.add(target["image_id"])
                unique.append((image, target))
        samples = unique
        if not samples:  # the whole batch was replacements of images already seen
            continue
        predictions += detector.detect([image for image, _ in samples])
        ground_truths += [target for _, target in samples]
    bar.close()
    return predictions, ground_truths

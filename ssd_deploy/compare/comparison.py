"""The outcome of comparing two runs: what was compared, the measured differences, the problems."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .tolerances import Tolerances


@dataclass
class Comparison:
    """Outcome of comparing two runs. ``problems`` lists each disagreement, one line each."""

    kind: str  # "detections", "decoded" or "recall" (see :mod:`.recall`)
    tolerances: Tolerances
    images: int = 0
    matched: int = 0
    excused: int = 0
    max_box_diff: float = 0.0
    max_score_diff: float = 0.0
    min_iou: float = 1.0
    problems: list[str] = field(default_factory=list)
    compared: int = 0  # "recall": confident detections looked for (matched of them were found)
    excuse_example: str = ""  # the first excused detection and what differed, for messages

    @property
    def ok(self) -> bool:
        return not self.problems

    def merge(self, other: Comparison) -> Comparison:
        """Combine the comparisons of two batches."""
        return Comparison(
            self.kind,
            self.tolerances,
            self.images + other.images,
            self.matched + other.matched,
            self.excused + other.excused,
            max(self.max_box_diff, other.max_box_diff),
            max(self.max_score_diff, other.max_score_diff),
            min(self.min_iou, other.min_iou),
            self.problems + other.problems,
            self.compared + other.compared,
            self.excuse_example or other.excuse_example,
        )

    def summary(self) -> str:
        """One line with the measured differences."""
        text = f"{self.images} images, "
        if self.kind == "recall":
            return text + f"found {self.matched} of {self.compared} confident detections of each run in the other"
        if self.kind == "detections":
            text += f"{self.matched} detections matched ({self.excused} excused: near a threshold or NMS near-tie), min IoU {self.min_iou:.6f}, "
        return text + f"max box diff {self.max_box_diff:.2e}, max score diff {self.max_score_diff:.2e}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data

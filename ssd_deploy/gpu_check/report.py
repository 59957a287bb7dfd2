"""The check outcomes and the report: passed, failed or skipped with the reason, written as
Markdown and JSON; :func:`run_check` turns whatever a check raises into its result."""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable


class SkipCheck(Exception):
    """Raised inside a check that cannot run here; its message is the reason."""


class CheckFailed(Exception):
    """Raised inside a check whose result is wrong; its message says how, ``numbers`` what was measured."""

    def __init__(self, message: str, numbers: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.numbers = numbers or {}


@dataclass
class CheckResult:
    """One check: ``status`` passed, failed or skipped; ``reason`` why (failed, skipped); ``numbers``
    what it measured (milliseconds, differences, counts); ``seconds`` its wall time."""

    name: str
    status: str
    seconds: float = 0.0
    reason: str = ""
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass
class GpuCheckReport:
    """The machine's facts and every check's result, written as Markdown and JSON."""

    machine: dict[str, Any]
    results: list[CheckResult] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {status: sum(r.status == status for r in self.results) for status in ("passed", "failed", "skipped")}

    def markdown(self) -> str:
        counts = self.counts()
        lines = ["# GPU check", "", f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped.", ""]
        lines += [f"- {key}: {value}" for key, value in self.machine.items()]
        lines += ["", "| check | status | seconds | reason / numbers |", "|---|---|---|---|"]
        for result in self.results:
            detail = result.reason or _short_numbers(result.numbers)
            lines.append(f"| {result.name} | {result.status} | {result.seconds:.1f} | {detail.replace('|', '/')} |")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {"machine": self.machine, "counts": self.counts(), "results": [asdict(r) for r in self.results]}

    def write(self, out: Path) -> dict[str, Path]:
        out.mkdir(parents=True, exist_ok=True)
        paths = {"md": out / "gpu_check.md", "json": out / "gpu_check.json"}
        paths["md"].write_text(self.markdown())
        paths["json"].write_text(json.dumps(self.to_dict(), indent=2, default=str))
        return paths


def _short_numbers(numbers: dict[str, Any], limit: int = 300) -> str:
    text = ", ".join(f"{k}={_round(v)}" for k, v in numbers.items() if not isinstance(v, (list, dict)))
    return text[:limit]


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def run_check(name: str, check: Callable[[], dict[str, Any]], deadline: float) -> CheckResult:
    """Run ``check`` (returns its numbers) unless the time budget is spent; never raises."""
    if time.monotonic() > deadline:
        return CheckResult(name, "skipped", reason="time budget spent (--budget-s) before it started")
    started = time.monotonic()
    try:
        numbers = check()
        return CheckResult(name, "passed", time.monotonic() - started, numbers=numbers)
    except SkipCheck as skip:
        return CheckResult(name, "skipped", time.monotonic() - started, reason=str(skip))
    except CheckFailed as failure:
        return CheckResult(name, "failed", time.monotonic() - started, reason=str(failure), numbers=failure.numbers)
    except Exception as error:  # noqa: BLE001 - a failed check is a result, the others still run
        where = traceback.extract_tb(error.__traceback__)[-1]
        reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:400] if str(error).strip() else ''} "
        reason += f"({Path(where.filename).name}:{where.lineno})"
        return CheckResult(name, "failed", time.monotonic() - started, reason=reason)

"""Console scripts. Each is a thin layer over library functions."""

from __future__ import annotations

import sys
from typing import Callable

from ..errors import SSDDeployError


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run ``main``; expected errors print one line (no traceback) and give exit code 2."""
    try:
        return main(argv)
    except SSDDeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

"""Exceptions a user can cause, each with a message of one shape: where | what happened."""

from __future__ import annotations


class SSDDeployError(Exception):
    """Base class for every error ssd-deploy raises on purpose.

    Command-line tools print these as one line (no traceback) and exit non-zero.
    """


class ImageReadError(SSDDeployError):
    """An image file is missing, unreadable, truncated or of an unsupported kind."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class CheckpointError(SSDDeployError):
    """A checkpoint is missing, corrupt, of an unknown kind or for another model."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(SSDDeployError, ValueError):
    """A model, prior or post-processing configuration is inconsistent."""


class ExportError(SSDDeployError):
    """An export failed, did not verify, or an exported file is missing, foreign or malformed."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class RuntimeUnavailableError(SSDDeployError):
    """A runtime, device or precision was asked for that this machine or file cannot provide."""

    def __init__(self, runtime: str, problem: str) -> None:
        self.runtime = runtime
        self.problem = problem
        super().__init__(f"runtime {runtime}: {problem}")

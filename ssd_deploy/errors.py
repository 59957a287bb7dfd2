"""Exceptions a user can cause, each with a message of one shape: where | what happened."""

from __future__ import annotations


class SSDDeployError(Exception):
    """Base class for every error ssd-deploy raises on purpose.

    Command-line tools print these as one line (no traceback) and exit non-zero.
    """


class LocatedError(SSDDeployError):
    """An error about one thing (a file, a runtime): the message is ``<where>: <problem>``."""

    def __init__(self, where: object, problem: str) -> None:
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")

    @property
    def path(self) -> str:
        """The file the error is about (``where``)."""
        return self.where


class ImageReadError(LocatedError):
    """An image file is missing, unreadable, truncated or of an unsupported kind."""


class CheckpointError(LocatedError):
    """A checkpoint is missing, corrupt, of an unknown kind or for another model."""


class ConfigError(SSDDeployError, ValueError):
    """A model, prior or post-processing configuration is inconsistent."""


class ExportError(LocatedError):
    """An export failed, did not verify, or an exported file is missing, foreign or malformed."""


class RuntimeUnavailableError(LocatedError):
    """A runtime, device or precision was asked for that this machine or file cannot provide.

    The message starts with the model file when one was being loaded: ``<path>: runtime <name>: <problem>``.
    """

    def __init__(self, runtime: str, problem: str, path: object = None) -> None:
        self.runtime = runtime
        super().__init__(f"{path}: runtime {runtime}" if path is not None else f"runtime {runtime}", problem)


class DatasetError(LocatedError):
    """A dataset is missing, malformed, or holds bad images or annotations."""

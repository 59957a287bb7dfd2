"""The package version (one place: pyproject.toml reads it, exported files record it)."""

__version__ = "0.1.0"

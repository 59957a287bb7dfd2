"""Shared check for loading torchvision ImageNet classifier weights into an SSD backbone."""

from __future__ import annotations


def check_backbone_load(missing: list[str], unexpected: list[str], expected_missing_prefixes: tuple[str, ...]) -> None:
    """Raise if ``load_state_dict(strict=False)`` left out anything but the SSD-only layers."""
    missing = [k for k in missing if not k.startswith(expected_missing_prefixes)]
    if missing or unexpected:
        raise ValueError(f"backbone weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")

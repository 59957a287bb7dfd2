"""SSD detectors: presets, the composed model and torchvision compatibility."""

from .config import ModelConfig
from .registry import build_model, create_model, feature_map_sizes, get_arch, list_architectures, make_config
from .ssd import SSD

__all__ = [
    "SSD",
    "ModelConfig",
    "build_model",
    "create_model",
    "feature_map_sizes",
    "get_arch",
    "list_architectures",
    "make_config",
]

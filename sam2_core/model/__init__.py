"""The SAM 2 / SAM 2.1 network, written module by module as the architecture has it."""

from .configs import CONFIGS, DEFAULT_MODEL, ModelConfig, get_config
from .sam2 import SAM2

__all__ = ["CONFIGS", "DEFAULT_MODEL", "ModelConfig", "SAM2", "get_config"]

"""The eight official SAM 2 / SAM 2.1 configurations.

Every configuration shares the heads, the memory attention and the memory encoder; they
differ in the size of the Hiera image encoder. SAM 2.1 adds two parameters over SAM 2
(a "no object" embedding for the spatial memory and a projection of the object pointers'
temporal encoding) and encodes the signed distance in time of each object pointer.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class HieraConfig:
    embed_dim: int = 96
    num_heads: int = 1
    stages: tuple[int, ...] = (2, 3, 16, 3)
    global_attention_blocks: tuple[int, ...] = (12, 16, 20)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    background_pos_size: tuple[int, int] = (14, 14)

    @property
    def channels(self) -> list[int]:
        """Channels of the four stages, highest resolution first."""
        return [self.embed_dim * 2**i for i in range(len(self.stages))]


@dataclass(frozen=True)
class ModelConfig:
    name: str
    hiera: HieraConfig
    sam2_1: bool  # SAM 2.1 parameters and behaviour
    image_size: int = 1024
    d_model: int = 256  # the transformer width shared by all heads
    mem_dim: int = 64  # the memory encoder's output width
    num_maskmem: int = 7  # the conditioning frame + 6 previous frames
    memory_attention_layers: int = 4
    max_obj_ptrs: int = 16
    # the SAM heads read the stride-4 and stride-8 features too
    backbone_stride: int = 16

    @property
    def version(self) -> str:
        return "2.1" if self.sam2_1 else "2"

    @property
    def embedding_size(self) -> int:
        return self.image_size // self.backbone_stride


_TINY = HieraConfig(96, 1, (1, 2, 7, 2), (5, 7, 9), background_pos_size=(7, 7))
_SMALL = HieraConfig(96, 1, (1, 2, 11, 2), (7, 10, 13), background_pos_size=(7, 7))
_BASE_PLUS = HieraConfig(112, 2)
_LARGE = HieraConfig(144, 2, (2, 6, 36, 4), (23, 33, 43), (8, 4, 16, 8), (7, 7))

SIZES = {"tiny": _TINY, "small": _SMALL, "base_plus": _BASE_PLUS, "large": _LARGE}

CONFIGS: dict[str, ModelConfig] = {}
for _size, _hiera in SIZES.items():
    for _prefix, _is_2_1 in (("sam2", False), ("sam2.1", True)):
        _name = f"{_prefix}_hiera_{_size}"
        CONFIGS[_name] = ModelConfig(_name, _hiera, _is_2_1)

DEFAULT_MODEL = "sam2.1_hiera_tiny"


def get_config(name: str) -> ModelConfig:
    """The configuration for an official model name; a clear error for any other."""
    try:
        return CONFIGS[name]
    except KeyError:
        close = difflib.get_close_matches(name, CONFIGS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown model {name!r}.{hint} Models: {', '.join(CONFIGS)}."
        ) from None

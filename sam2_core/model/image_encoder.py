"""The image encoder: the Hiera trunk and a feature-pyramid neck that brings every level
to the model width and adds a top-down path into the stride-16 level."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .configs import ModelConfig
from .hiera import Hiera
from .position_encoding import SinePositionEncoding


@dataclass
class ImageFeatures:
    """One image's features, highest resolution first: strides 4, 8, 16.

    `levels[0]` and `levels[1]` are already projected for the mask decoder (widths
    d_model/8 and d_model/4); `levels[2]` is the d_model-wide embedding the heads and the
    memory read. `pos` holds the sine position encodings of the same maps."""

    levels: list[torch.Tensor]
    pos: list[torch.Tensor]

    @property
    def embedding(self) -> torch.Tensor:
        return self.levels[-1]

    @property
    def high_res(self) -> list[torch.Tensor]:
        return self.levels[:-1]


class FpnNeck(nn.Module):
    # levels that receive the upsampled coarser level; the finer two use the trunk alone
    TOP_DOWN_LEVELS = (2, 3)

    def __init__(self, d_model: int, trunk_channels: list[int]):
        super().__init__()
        # convs[0] takes the coarsest level
        self.convs = nn.ModuleList()
        for channels in reversed(trunk_channels):
            lateral = nn.Sequential()
            lateral.add_module("conv", nn.Conv2d(channels, d_model, kernel_size=1))
            self.convs.append(lateral)
        self.position_encoding = SinePositionEncoding(d_model)

    def forward(self, xs: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        n = len(xs)
        out: list[torch.Tensor] = [None] * n
        pos: list[torch.Tensor] = [None] * n
        previous = None
        for i in reversed(range(n)):  # coarse to fine
            lateral = self.convs[n - 1 - i](xs[i])
            if i in self.TOP_DOWN_LEVELS and previous is not None:
                up = F.interpolate(previous.float(), scale_factor=2.0, mode="nearest")
                previous = lateral + up
            else:
                previous = lateral
            out[i] = previous
            pos[i] = self.position_encoding(previous).to(previous.dtype)
        return out, pos


class ImageEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.trunk = Hiera(cfg.hiera)
        self.neck = FpnNeck(cfg.d_model, cfg.hiera.channels)

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(B, 3, 1024, 1024) normalised images -> the stride 4, 8 and 16 maps and their
        position encodings (the stride-32 level only feeds the top-down path)."""
        levels, pos = self.neck(self.trunk(images))
        return levels[:-1], pos[:-1]

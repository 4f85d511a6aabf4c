"""The memory encoder: a frame's predicted mask is downsampled to the feature grid, fused
with the frame's image embedding by two ConvNeXt blocks, and compressed to mem_dim
channels. The result is one frame's spatial memory."""

from __future__ import annotations

import torch
from torch import nn

from .common import LayerNorm2d
from .position_encoding import SinePositionEncoding


class MaskDownSampler(nn.Module):
    """Four stride-2 convolutions (1 -> 4 -> 16 -> 64 -> 256 channels), then a 1x1 conv."""

    def __init__(self, embed_dim: int = 256, num_layers: int = 4):
        super().__init__()
        self.encoder = nn.Sequential()
        chans = 1
        for _ in range(num_layers):
            self.encoder.append(nn.Conv2d(chans, chans * 4, kernel_size=3, stride=2, padding=1))
            self.encoder.append(LayerNorm2d(chans * 4))
            self.encoder.append(nn.GELU())
            chans *= 4
        self.encoder.append(nn.Conv2d(chans, embed_dim, kernel_size=1))

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(mask)


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise 7x7 conv, LayerNorm, pointwise MLP, layer scale, residual."""

    def __init__(self, dim: int = 256):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(y)))
        return x + y.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    def __init__(self, dim: int = 256, num_layers: int = 2):
        super().__init__()
        self.layers = nn.ModuleList(CXBlock(dim) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    def __init__(self, d_model: int = 256, mem_dim: int = 64):
        super().__init__()
        self.mask_downsampler = MaskDownSampler(d_model)
        self.pix_feat_proj = nn.Conv2d(d_model, d_model, kernel_size=1)
        self.fuser = Fuser(d_model)
        self.out_proj = nn.Conv2d(d_model, mem_dim, kernel_size=1)
        self.position_encoding = SinePositionEncoding(mem_dim)

    def forward(self, image_embedding: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image_embedding (B, C, 64, 64); mask (B, 1, 1024, 1024), already scaled for the
        encoder. Returns the memory (B, mem_dim, 64, 64) and its position encoding."""
        x = self.pix_feat_proj(image_embedding) + self.mask_downsampler(mask)
        x = self.out_proj(self.fuser(x))
        return x, self.position_encoding(x).to(x.dtype)

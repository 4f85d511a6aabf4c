"""Hiera, the hierarchical vision transformer that is SAM 2's image encoder trunk
(Ryali et al. 2023), with windowed absolute position embeddings (Bolya et al. 2023).

Four stages; each later stage halves the resolution (by max-pooling the queries of its
first block) and doubles the channels and heads. Blocks attend inside windows, except a
few blocks that attend globally. Feature maps are kept channels-last (B, H, W, C).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import MLP
from .configs import HieraConfig


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, H, W, C) -> (B * windows, window, window, C), zero-padding H and W up to a
    multiple of the window. Returns the padded size too."""
    b, h, w, c = x.shape
    pad_h, pad_w = (-h) % window, (-w) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c), (hp, wp)


def window_unpartition(windows: torch.Tensor, window: int, padded_hw: tuple[int, int],
                       hw: tuple[int, int]) -> torch.Tensor:
    """Inverse of window_partition: back to (B, H, W, C) without the padding."""
    hp, wp = padded_hw
    b = windows.shape[0] // ((hp // window) * (wp // window))
    x = windows.reshape(b, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, : hw[0], : hw[1]]


def pool_2x(x: torch.Tensor, pool: nn.Module) -> torch.Tensor:
    """Max-pool a channels-last map: (B, H, W, C) -> (B, H/2, W/2, C)."""
    return pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class PatchEmbed(nn.Module):
    """7x7 convolution with stride 4: the image becomes a grid of tokens."""

    def __init__(self, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # (B, 3, H, W) -> (B, H/4, W/4, C)


class MultiScaleAttention(nn.Module):
    """Multi-head self-attention whose queries may be pooled 2x (at a stage change)."""

    def __init__(self, dim: int, dim_out: int, num_heads: int, q_pool: nn.Module | None):
        super().__init__()
        self.num_heads = num_heads
        self.q_pool = q_pool
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1)
        q, k, v = qkv.unbind(2)  # each (B, h*w, heads, head_dim)
        if self.q_pool is not None:
            q = pool_2x(q.reshape(b, h, w, -1), self.q_pool)
            h, w = q.shape[1:3]
            q = q.reshape(b, h * w, self.num_heads, -1)
        x = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        x = x.transpose(1, 2).reshape(b, h, w, -1)
        return self.proj(x)


class MultiScaleBlock(nn.Module):
    """Pre-norm transformer block: (windowed) attention, then an MLP."""

    def __init__(self, dim: int, dim_out: int, num_heads: int, window: int, q_pool: bool):
        super().__init__()
        self.dim, self.dim_out = dim, dim_out
        self.window = window
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2) if q_pool else None
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, self.pool)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP(dim_out, 4 * dim_out, dim_out, num_layers=2, activation=nn.GELU)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_norm = self.norm1(x)
        shortcut = x
        if self.dim != self.dim_out:
            # the residual path changes width (and resolution) with the block
            shortcut = self.proj(x_norm)
            if self.pool is not None:
                shortcut = pool_2x(shortcut, self.pool)

        out_hw = shortcut.shape[1:3]
        if self.window > 0:
            windows, _ = window_partition(x_norm, self.window)
            windows = self.attn(windows)
            # query pooling shrank every window by 2
            window_out = self.window // 2 if self.pool is not None else self.window
            padded = tuple(n + (-n) % window_out for n in out_hw)
            x = window_unpartition(windows, window_out, padded, out_hw)
        else:
            x = self.attn(x_norm)

        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class Hiera(nn.Module):
    def __init__(self, cfg: HieraConfig):
        super().__init__()
        dim, heads = cfg.embed_dim, cfg.num_heads
        self.patch_embed = PatchEmbed(dim)
        # a coarse learned embedding interpolated to the grid, plus one tiled per window
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, *cfg.background_pos_size))
        self.pos_embed_window = nn.Parameter(torch.zeros(1, dim, cfg.window_spec[0], cfg.window_spec[0]))

        self.stage_ends = [sum(cfg.stages[: i + 1]) - 1 for i in range(len(cfg.stages))]
        self.blocks = nn.ModuleList()
        stage = 0
        for i in range(sum(cfg.stages)):
            # the first block of a stage still uses the previous stage's window size
            window = 0 if i in cfg.global_attention_blocks else cfg.window_spec[stage]
            starts_stage = i - 1 in self.stage_ends
            dim_out, heads = (dim * 2, heads * 2) if starts_stage else (dim, heads)
            if starts_stage:
                stage += 1
            self.blocks.append(MultiScaleBlock(dim, dim_out, heads, window, q_pool=starts_stage))
            dim = dim_out

    def _pos_embed(self, h: int, w: int) -> torch.Tensor:
        pos = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")
        win = self.pos_embed_window
        pos = pos + win.tile(1, 1, h // win.shape[-2], w // win.shape[-1])
        return pos.permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, 1024, 1024) -> four maps (B, C_i, H_i, W_i), strides 4, 8, 16 and 32."""
        x = self.patch_embed(x)
        x = x + self._pos_embed(*x.shape[1:3])
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs

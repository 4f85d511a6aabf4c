"""Memory attention: the current frame's features attend to themselves and then to the
memory bank (spatial memories of earlier frames plus object pointers), with rotary
position encodings on both."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .position_encoding import AxialRoPE
from .two_way_transformer import Attention


class RoPEAttention(Attention):
    """Attention over a square grid of queries with axial rotary encodings. Keys may hold
    several grids of the same size, followed by tokens that are not rotated."""

    def __init__(self, dim: int, num_heads: int = 1, kv_in_dim: int | None = None, theta: float = 10000.0):
        super().__init__(dim, num_heads, kv_in_dim=kv_in_dim)
        self.rope = AxialRoPE(dim // num_heads, theta)

    def forward(self, q, k, v, hw: tuple[int, int], num_k_unrotated: int = 0) -> torch.Tensor:
        q, k, v = self.project(q, k, v)
        q, k = self.rope.apply(q, k, hw, num_k_unrotated)
        return self.out_proj(self.merge_heads(F.scaled_dot_product_attention(q, k, v)))


class MemoryAttentionLayer(nn.Module):
    def __init__(self, d_model: int, mem_dim: int, dim_feedforward: int = 2048):
        super().__init__()
        self.self_attn = RoPEAttention(d_model)
        self.cross_attn_image = RoPEAttention(d_model, kv_in_dim=mem_dim)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(self, x, memory, memory_pos, hw, num_obj_ptr_tokens):
        y = self.norm1(x)
        x = x + self.self_attn(y, y, y, hw)
        # keys carry the memories' position encodings; queries carry none here
        y = self.norm2(x)
        x = x + self.cross_attn_image(y, memory + memory_pos, memory, hw, num_obj_ptr_tokens)
        y = self.norm3(x)
        return x + self.linear2(F.relu(self.linear1(y)))


class MemoryAttention(nn.Module):
    def __init__(self, d_model: int, mem_dim: int, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(MemoryAttentionLayer(d_model, mem_dim) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, features: torch.Tensor, features_pos: torch.Tensor, memory: torch.Tensor,
                memory_pos: torch.Tensor, num_obj_ptr_tokens: int = 0) -> torch.Tensor:
        """features, features_pos: (B, C, H, W) of the current frame.
        memory, memory_pos: (B, N, mem_dim), the spatial memories first, then the
        `num_obj_ptr_tokens` object-pointer tokens. Returns (B, C, H, W)."""
        b, c, h, w = features.shape
        x = features.flatten(2).transpose(1, 2)
        x = x + 0.1 * features_pos.flatten(2).transpose(1, 2)
        for layer in self.layers:
            x = layer(x, memory, memory_pos, (h, w), num_obj_ptr_tokens)
        return self.norm(x).transpose(1, 2).reshape(b, c, h, w)

"""Memory attention: the current frame's features attend to themselves and then to the
memory bank (spatial memories of earlier frames plus object pointers), with rotary
position encodings on both."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .position_encoding import AxialRoPE
from .two_way_transformer import Attention

# Whether this CPU has AMX tiles (read once: it asks the CPU).
_CPU_HAS_AMX = torch.cpu._is_amx_tile_supported()


def weights_before_values(q: torch.Tensor) -> bool:
    """Whether to attend to the values before their projection (see
    RoPEAttention.attend_unprojected): on a CPU, in bfloat16, without AMX. There
    F.scaled_dot_product_attention's bfloat16 kernel runs at float32 speed, far below the
    CPU's bfloat16 products: on a 2-core AMD EPYC (AVX-512 BF16), one cross-attention of
    4096 queries to 28,688 keys took 0.26-0.32 s this way against 0.66 s, a self-attention
    0.07 s against 0.10 s. In float32 the kernel is as fast as the products and the weights'
    traffic makes this way slower (3.9 s against 3.5 s for the four layers); with AMX the
    kernel packs its bfloat16 products for the tiles, so it is kept there (this way was not
    measured on AMX)."""
    return q.device.type == "cpu" and q.dtype == torch.bfloat16 and not _CPU_HAS_AMX


class RoPEAttention(Attention):
    """Attention over a square grid of queries with axial rotary encodings. Keys may hold
    several grids of the same size, followed by tokens that are not rotated."""

    def __init__(self, dim: int, num_heads: int = 1, kv_in_dim: int | None = None, theta: float = 10000.0):
        super().__init__(dim, num_heads, kv_in_dim=kv_in_dim)
        self.rope = AxialRoPE(dim // num_heads, theta)

    def forward(self, q, k, v, hw: tuple[int, int], num_k_unrotated: int = 0) -> torch.Tensor:
        q, k = self.split_heads(self.q_proj(q)), self.split_heads(self.k_proj(k))
        q, k = self.rope.apply(q, k, hw, num_k_unrotated)  # (B, heads, N, d), (B, heads, M, d)
        if self.num_heads == 1 and weights_before_values(q):
            return self.out_proj(self.attend_unprojected(q, k, v))
        v = self.split_heads(self.v_proj(v))
        return self.out_proj(self.merge_heads(F.scaled_dot_product_attention(q, k, v)))

    def attend_unprojected(self, q, k, v) -> torch.Tensor:
        """One head's attention, softmax(q k^T / sqrt(d)) v_proj(v), summed as
        v_proj(softmax(q k^T / sqrt(d)) v): the same sum (each row of weights adds up to 1,
        so the bias passes through). The weights meet the values at their own width: for the
        memories 64 instead of the projected 256, a quarter of that product's work. The
        weights are made a block of queries at a time, in plain matrix products.
        q: (B, 1, N, d); k: (B, 1, M, d); v: (B, M, kv_in_dim). Returns (B, N, dim).
        """
        q, k_t = q[:, 0] * q.shape[-1] ** -0.5, k[:, 0].transpose(1, 2).contiguous()  # (B, N, d), (B, d, M)
        blocks = [torch.matmul(q_block, k_t).softmax(dim=-1) @ v  # (B, n, M) @ (B, M, kv_in_dim)
                  for q_block in q.split(self.QUERY_BLOCK, dim=1)]
        return self.v_proj(torch.cat(blocks, dim=1))

    QUERY_BLOCK = 512  # queries at a time: 512 x 28,688 keys of bfloat16 weights is 28 MiB (56 in float32)


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

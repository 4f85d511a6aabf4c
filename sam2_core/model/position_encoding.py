"""Position encodings: 2-D sine maps for image features, random Fourier features for
prompts, 1-D sine encodings of time for object pointers, and axial rotary encodings
(RoPE) for the memory attention."""

from __future__ import annotations

import math

import torch
from torch import nn


def _sine_frequencies(num_feats: int, temperature: float, device) -> torch.Tensor:
    # pairs of channels share a frequency: one takes the sine, the other the cosine
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=device)
    return temperature ** (2 * (dim_t // 2) / num_feats)


class SinePositionEncoding(nn.Module):
    """The transformer's sine encoding applied to rows and columns of a feature map;
    returns (B, num_pos_feats, H, W), y channels first, then x."""

    def __init__(self, num_pos_feats: int, temperature: float = 10000.0):
        super().__init__()
        self.half = num_pos_feats // 2
        self.temperature = temperature
        self.scale = 2 * math.pi
        self._cache: dict[tuple, torch.Tensor] = {}

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        key = (h, w, x.device)
        if torch.compiler.is_compiling():  # no cache inside a compiled graph: it folds to a constant
            return self._encode(h, w, x.device)[None].expand(x.shape[0], -1, -1, -1)
        if key not in self._cache:
            self._cache[key] = self._encode(h, w, x.device)
        return self._cache[key][None].expand(x.shape[0], -1, -1, -1)

    def _encode(self, h: int, w: int, device) -> torch.Tensor:
        eps = 1e-6
        # positions 1..n normalised to (0, 2*pi]
        y = torch.arange(1, h + 1, dtype=torch.float32, device=device)
        x = torch.arange(1, w + 1, dtype=torch.float32, device=device)
        y = y / (y[-1] + eps) * self.scale
        x = x / (x[-1] + eps) * self.scale
        freqs = _sine_frequencies(self.half, self.temperature, device)
        pos_y = _interleave_sin_cos(y[:, None] / freqs)  # (H, half)
        pos_x = _interleave_sin_cos(x[:, None] / freqs)  # (W, half)
        pos = torch.cat([pos_y[:, None, :].expand(h, w, -1), pos_x[None, :, :].expand(h, w, -1)], -1)
        return pos.permute(2, 0, 1).contiguous()  # (C, H, W)


def _interleave_sin_cos(angles: torch.Tensor) -> torch.Tensor:
    """(N, F) angles -> (N, F): sines of the even columns, then cosines of the odd ones."""
    return torch.stack([angles[:, 0::2].sin(), angles[:, 1::2].cos()], dim=2).flatten(1)


def time_encoding(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """1-D sine encoding of (possibly fractional) positions: (N,) -> (N, dim)."""
    freqs = _sine_frequencies(dim // 2, temperature, positions.device)
    angles = positions.unsqueeze(-1) / freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class RandomFourierEncoding(nn.Module):
    """Positions encoded through a fixed random Gaussian projection (SAM's prompt encoding)."""

    def __init__(self, num_pos_feats: int = 128):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, num_pos_feats))

    def _encode(self, coords: torch.Tensor) -> torch.Tensor:
        # coords in [0, 1] -> [-1, 1] -> random frequencies
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([coords.sin(), coords.cos()], dim=-1)

    def grid(self, h: int, w: int) -> torch.Tensor:
        """Encoding of every cell centre of an h x w grid: (C, h, w)."""
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
        coords = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1)
        return self._encode(coords).permute(2, 0, 1)

    def points(self, coords: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
        """Encoding of (B, N, 2) pixel coordinates (x, y) in an image of size image_hw."""
        h, w = image_hw
        normed = coords.float() / torch.tensor([w, h], dtype=torch.float32, device=coords.device)
        return self._encode(normed)


class AxialRoPE:
    """Rotary position encoding over a 2-D grid: half the channel pairs rotate with the
    column, half with the row. Keys can hold several grids of the same size (memories of
    several frames) and a tail of tokens that are not rotated (object pointers)."""

    def __init__(self, head_dim: int, theta: float = 10000.0):
        self.head_dim = head_dim
        self.theta = theta
        self._cache: dict[tuple, torch.Tensor] = {}

    def _rotations(self, h: int, w: int, device) -> torch.Tensor:
        key = (h, w, device)
        if key not in self._cache:
            d = self.head_dim
            freqs = 1.0 / (self.theta ** (torch.arange(0, d, 4)[: d // 4].float() / d))
            t = torch.arange(h * w, dtype=torch.float32)
            tx, ty = t % w, torch.div(t, w, rounding_mode="floor")
            angles = torch.cat([torch.outer(tx, freqs), torch.outer(ty, freqs)], dim=-1)
            self._cache[key] = torch.polar(torch.ones_like(angles), angles).to(device)
        return self._cache[key]  # (h*w, head_dim/2) complex

    @staticmethod
    def _rotate(x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
        xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(xc * rot).flatten(-2).type_as(x)

    def apply(self, q: torch.Tensor, k: torch.Tensor, hw: tuple[int, int],
              num_k_unrotated: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """q: (B, heads, h*w, d); k: (B, heads, n*h*w + num_k_unrotated, d)."""
        rot = self._rotations(*hw, q.device)
        q = self._rotate(q, rot)
        n_rot = k.shape[-2] - num_k_unrotated
        if n_rot > 0:
            repeats = n_rot // rot.shape[0]
            k_rot = self._rotate(k[:, :, :n_rot], rot.repeat(repeats, 1))
            k = torch.cat([k_rot, k[:, :, n_rot:]], dim=2)
        return q, k

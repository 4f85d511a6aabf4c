"""SAM's prompt encoder: points and box corners become sparse tokens, a low-res mask
becomes a dense embedding added to the image embedding."""

from __future__ import annotations

import torch
from torch import nn

from .common import LayerNorm2d
from .position_encoding import RandomFourierEncoding

# point labels as the model knows them
PADDING, NEGATIVE, POSITIVE, BOX_TOP_LEFT, BOX_BOTTOM_RIGHT = -1, 0, 1, 2, 3


class PromptEncoder(nn.Module):
    def __init__(self, embed_dim: int, embedding_size: int, image_size: int, mask_in_chans: int = 16):
        super().__init__()
        self.embed_dim = embed_dim
        self.embedding_hw = (embedding_size, embedding_size)
        self.image_hw = (image_size, image_size)
        self.mask_input_hw = (4 * embedding_size, 4 * embedding_size)
        self.pe_layer = RandomFourierEncoding(embed_dim // 2)
        # one learned embedding per label: negative, positive, box top-left, bottom-right
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def dense_pe(self) -> torch.Tensor:
        """Position encoding of the image embedding grid: (1, C, 64, 64)."""
        return self.pe_layer.grid(*self.embedding_hw).unsqueeze(0)

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B, N, 2) model-input pixel coordinates and (B, N) labels -> (B, N+1, C).

        A padding point is appended, as the model was trained with."""
        b = coords.shape[0]
        coords = torch.cat([coords + 0.5, coords.new_zeros(b, 1, 2)], dim=1)  # pixel centres
        labels = torch.cat([labels, labels.new_full((b, 1), PADDING)], dim=1)
        emb = self.pe_layer.points(coords, self.image_hw)
        is_pad = (labels == PADDING).unsqueeze(-1)
        emb = torch.where(is_pad, torch.zeros_like(emb) + self.not_a_point_embed.weight, emb)
        for label, table in enumerate(self.point_embeddings):
            emb = torch.where((labels == label).unsqueeze(-1), emb + table.weight, emb)
        return emb

    def embed_mask(self, mask_logits: torch.Tensor | None, batch: int) -> torch.Tensor:
        """(B, 1, 256, 256) low-res logits, or None -> (B, C, 64, 64)."""
        if mask_logits is None:
            return self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, *self.embedding_hw)
        return self.mask_downscaling(mask_logits)

    def forward(self, coords: torch.Tensor | None, labels: torch.Tensor | None,
                mask_logits: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse tokens (B, N+1, C) and the dense embedding (B, C, 64, 64). A box is
        passed as two points labelled BOX_TOP_LEFT and BOX_BOTTOM_RIGHT. Without points
        (a mask prompt alone) there are no sparse tokens at all."""
        if coords is None:
            batch = 1 if mask_logits is None else mask_logits.shape[0]
            sparse = self.no_mask_embed.weight.new_empty(batch, 0, self.embed_dim)
        else:
            sparse = self.embed_points(coords, labels)
        return sparse, self.embed_mask(mask_logits, sparse.shape[0])

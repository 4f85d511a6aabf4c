"""SAM 2's mask decoder: output tokens (object score, IoU, four masks) run through the
two-way transformer with the prompt tokens; the mask tokens become per-pixel weights on
an upscaled embedding that is refined with the stride-4 and stride-8 image features."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .common import MLP, LayerNorm2d
from .two_way_transformer import TwoWayTransformer


@dataclass
class DecoderOutput:
    masks: torch.Tensor  # (B, M, 256, 256) low-res logits
    iou: torch.Tensor  # (B, M) predicted IoU
    tokens: torch.Tensor  # (B, M, C) the mask tokens behind the masks (object pointers come from them)
    object_score: torch.Tensor  # (B, 1) logit: is the object in the image at all


class MaskDecoder(nn.Module):
    NUM_MULTIMASK = 3
    # "dynamic multimask via stability": a single-mask answer whose logits are unstable
    # around 0 falls back to the best of the three multimask answers
    STABILITY_DELTA = 0.05
    STABILITY_THRESHOLD = 0.98

    def __init__(self, dim: int = 256):
        super().__init__()
        self.num_mask_tokens = self.NUM_MULTIMASK + 1
        self.transformer = TwoWayTransformer(depth=2, dim=dim, num_heads=8, mlp_dim=2048)
        self.obj_score_token = nn.Embedding(1, dim)
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        # projections of the stride-4 and stride-8 maps, applied once per image
        self.conv_s0 = nn.Conv2d(dim, dim // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(dim, dim // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(dim, dim, dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(dim, 256, self.num_mask_tokens, 3, sigmoid_output=True)
        self.pred_obj_score_head = MLP(dim, dim, 1, 3)

    def forward(self, image_embedding: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor,
                dense: torch.Tensor, high_res: list[torch.Tensor], multimask: bool,
                dynamic_multimask: bool = True) -> DecoderOutput:
        """image_embedding (B or 1, C, 64, 64), sparse (B, N, C), dense (B, C, 64, 64)."""
        masks, iou, mask_tokens, object_score = self.predict_all(image_embedding, image_pe, sparse,
                                                                 dense, high_res)
        if multimask:
            return DecoderOutput(masks[:, 1:], iou[:, 1:], mask_tokens[:, 1:], object_score)
        # the single-mask token always stands for the object, even after a fallback
        token = mask_tokens[:, :1]
        if dynamic_multimask:
            masks, iou = self.pick_stable(masks, iou)
        else:
            masks, iou = masks[:, :1], iou[:, :1]
        return DecoderOutput(masks, iou, token, object_score)

    def predict_all(self, image_embedding, image_pe, sparse, dense, high_res):
        b = sparse.shape[0]
        out_tokens = torch.cat([self.obj_score_token.weight, self.iou_token.weight, self.mask_tokens.weight])
        tokens = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)
        if image_embedding.shape[0] != b:  # one image, several prompts
            image_embedding = image_embedding.expand(b, -1, -1, -1)
        src = image_embedding + dense
        pos = image_pe.expand(b, -1, -1, -1)
        _, c, h, w = src.shape

        tokens, src = self.transformer(src, pos, tokens)
        obj_token, iou_token = tokens[:, 0], tokens[:, 1]
        mask_tokens = tokens[:, 2: 2 + self.num_mask_tokens]

        # upscale 4x, adding the high-resolution features on the way
        src = src.transpose(1, 2).reshape(b, c, h, w)
        feat_s0, feat_s1 = (f.expand(b, -1, -1, -1) for f in high_res)
        dc1, ln1, act1, dc2, act2 = self.output_upscaling
        up = act1(ln1(dc1(src) + feat_s1))
        up = act2(dc2(up) + feat_s0)  # (B, C/8, 256, 256)

        hypernets = self.output_hypernetworks_mlps
        # (B, 4, C/8): per-pixel weights from each mask token
        weights = torch.stack([mlp(mask_tokens[:, i]) for i, mlp in enumerate(hypernets)], dim=1)
        bu, cu, hu, wu = up.shape
        masks = (weights @ up.view(bu, cu, hu * wu)).view(bu, -1, hu, wu)
        return masks, self.iou_prediction_head(iou_token), mask_tokens, self.pred_obj_score_head(obj_token)

    def pick_stable(self, masks: torch.Tensor, iou: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Single-mask output, replaced by the best multimask output where it is unstable."""
        multi, multi_iou = masks[:, 1:], iou[:, 1:]
        best = multi_iou.argmax(dim=-1)
        rows = torch.arange(masks.shape[0], device=masks.device)
        best_mask, best_iou = multi[rows, best].unsqueeze(1), multi_iou[rows, best].unsqueeze(1)

        single, single_iou = masks[:, :1], iou[:, :1]
        flat = single.flatten(-2)
        inner = (flat > self.STABILITY_DELTA).sum(-1).float()
        outer = (flat > -self.STABILITY_DELTA).sum(-1).float()
        stability = torch.where(outer > 0, inner / outer, 1.0)
        stable = stability >= self.STABILITY_THRESHOLD  # (B, 1)
        return (torch.where(stable[..., None, None], single, best_mask),
                torch.where(stable, single_iou, best_iou))

"""The SAM 2 network: the parts of the architecture assembled, with the learned
embeddings that tie them together. Parameter names follow the official checkpoints, so
an official state dict loads unchanged.

This module computes; it keeps no state about images or videos. The image predictor
and the video tracker decide what to feed it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .common import MLP
from .configs import ModelConfig
from .image_encoder import ImageEncoder, ImageFeatures
from .mask_decoder import MaskDecoder
from .memory_attention import MemoryAttention
from .memory_encoder import MemoryEncoder
from .position_encoding import time_encoding
from .prompt_encoder import PADDING, PromptEncoder

# the logit given to every pixel of a frame where the object is judged absent
NO_OBJECT_LOGIT = -1024.0


@dataclass
class SamHeadsOutput:
    multi_logits: torch.Tensor  # (B, M, 256, 256) every mask the decoder returned
    iou: torch.Tensor  # (B, M)
    logits: torch.Tensor  # (B, 1, 256, 256) the chosen mask
    logits_high_res: torch.Tensor  # (B, 1, 1024, 1024) the chosen mask at model-input size
    obj_ptr: torch.Tensor  # (B, C) the object pointer for the memory bank
    object_score: torch.Tensor  # (B, 1) logit that the object is visible


class SAM2(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c, m = cfg.d_model, cfg.mem_dim
        self.image_encoder = ImageEncoder(cfg)
        self.memory_attention = MemoryAttention(c, m, cfg.memory_attention_layers)
        self.memory_encoder = MemoryEncoder(c, m)
        self.sam_prompt_encoder = PromptEncoder(c, cfg.embedding_size, cfg.image_size)
        self.sam_mask_decoder = MaskDecoder(c)

        # temporal encodings of the memory slots: index num_maskmem-1 is the
        # conditioning frames, lower indices are ever older frames
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(cfg.num_maskmem, 1, 1, m))
        # what a frame attends to when there is no memory yet
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, c))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, c))
        # turns a plate-size mask prompt into low-res logits for the decoder
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        # object pointers: projected mask tokens, or a learned pointer when absent
        self.obj_ptr_proj = MLP(c, c, c, 3)
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, c))
        if cfg.sam2_1:
            self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, m))
            self.obj_ptr_tpos_proj = nn.Linear(c, m)

        self.dtype = torch.float32  # the working precision; load_model sets it
        self.weights_id = ""  # the checkpoint's SHA-256; load_model sets it
        self.compiled_image_encoder = None  # a CompiledImageEncoder, when load_model compiles

    @property
    def device(self) -> torch.device:
        return self.no_mem_embed.device

    def precision(self):
        """Context in which to run the network: autocast to the working precision."""
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    # -- image -------------------------------------------------------------------------

    def encode_image(self, images: torch.Tensor) -> ImageFeatures:
        """(B, 3, 1024, 1024) normalised images -> features at strides 4, 8 and 16."""
        levels, pos = (self.compiled_image_encoder or self.image_encoder)(images)
        decoder = self.sam_mask_decoder
        # the decoder's projections of the fine levels depend only on the image: do them once
        levels = [decoder.conv_s0(levels[0]), decoder.conv_s1(levels[1]), levels[2]]
        return ImageFeatures(levels, pos)

    # -- SAM heads -----------------------------------------------------------------------

    def sam_heads(self, embedding: torch.Tensor, high_res: list[torch.Tensor],
                  coords: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                  mask_logits: torch.Tensor | None = None, multimask: bool = False) -> SamHeadsOutput:
        """Prompts -> masks and the object pointer, as during tracking.

        embedding (B, C, 64, 64) (already conditioned on memory when tracking); coords
        (B, N, 2) model-input pixels with labels (B, N); mask_logits (B, 1, h, w) any size."""
        b = embedding.shape[0]
        if coords is None:
            coords = embedding.new_zeros(b, 1, 2, dtype=torch.float32)
            labels = torch.full((b, 1), PADDING, dtype=torch.int32, device=embedding.device)
        if mask_logits is not None and mask_logits.shape[-2:] != self.sam_prompt_encoder.mask_input_hw:
            mask_logits = F.interpolate(mask_logits.float(), size=self.sam_prompt_encoder.mask_input_hw,
                                        mode="bilinear", align_corners=False, antialias=True)
        sparse, dense = self.sam_prompt_encoder(coords, labels, mask_logits)
        out = self.sam_mask_decoder(embedding, self.sam_prompt_encoder.dense_pe(), sparse, dense,
                                    high_res, multimask)

        visible = out.object_score > 0  # (B, 1)
        # spatial memory must agree with the decision: an absent object has no mask
        multi = torch.where(visible[:, :, None, None], out.masks, NO_OBJECT_LOGIT).float()
        best = out.iou.argmax(-1) if multimask else torch.zeros(b, dtype=torch.long, device=multi.device)
        rows = torch.arange(b, device=multi.device)
        logits = multi[rows, best].unsqueeze(1)
        token = out.tokens[rows, best] if out.tokens.shape[1] > 1 else out.tokens[:, 0]
        return SamHeadsOutput(
            multi_logits=multi,
            iou=out.iou,
            logits=logits,
            logits_high_res=self.upscale_to_input(logits),
            obj_ptr=self.object_pointer(token, visible.float()),
            object_score=out.object_score,
        )

    def upscale_to_input(self, low_res: torch.Tensor) -> torch.Tensor:
        size = (self.cfg.image_size, self.cfg.image_size)
        return F.interpolate(low_res, size=size, mode="bilinear", align_corners=False)

    def object_pointer(self, token: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """Mask token (B, C) -> object pointer; the learned "no object" pointer where the
        object is absent (visible is (B, 1), 0 or 1)."""
        ptr = self.obj_ptr_proj(token)
        return visible * ptr + (1 - visible) * self.no_obj_ptr

    def pointer_time_encoding(self, frame_distances: torch.Tensor, max_distance: int) -> torch.Tensor:
        """Object pointers' temporal encoding: (N,) signed frame distances -> (N, mem_dim),
        distances normalised by the furthest a pointer can be. SAM 2 encodes no time on
        pointers (zeros)."""
        m = self.cfg.mem_dim
        if not self.cfg.sam2_1:
            return torch.zeros(len(frame_distances), m, device=frame_distances.device)
        # (a one-frame shot has max_distance 0 and only distance-0 pointers: the official
        # divides by zero there and tracks with NaNs)
        normed = frame_distances.float() / max(max_distance, 1)
        return self.obj_ptr_tpos_proj(time_encoding(normed, self.cfg.d_model))

    def mask_as_output(self, embedding: torch.Tensor, high_res: list[torch.Tensor],
                       mask: torch.Tensor) -> SamHeadsOutput:
        """A user's mask taken as the frame's answer (SAM 2.1 does this for mask prompts):
        mask (B, 1, 1024, 1024) in {0, 1} becomes +-10 logits; the decoder only supplies
        the object pointer. embedding is the frame's raw (memory-free) embedding."""
        logits_high_res = mask.float() * 20.0 - 10.0
        low = F.interpolate(logits_high_res, size=self.sam_prompt_encoder.mask_input_hw,
                            mode="bilinear", align_corners=False, antialias=True)
        heads = self.sam_heads(embedding, high_res, mask_logits=self.mask_downsample(mask.float()))
        # presence comes from the mask itself, not from the decoder's opinion
        visible = (mask.flatten(1) > 0).any(dim=1, keepdim=True).float()
        obj_ptr = visible * heads.obj_ptr + (1 - visible) * self.no_obj_ptr
        return SamHeadsOutput(
            multi_logits=low,
            iou=torch.ones(mask.shape[0], 1, device=mask.device),
            logits=low,
            logits_high_res=logits_high_res,
            obj_ptr=obj_ptr,
            object_score=visible * 20.0 - 10.0,
        )

    # -- memory --------------------------------------------------------------------------

    def encode_memory(self, embedding: torch.Tensor, mask_logits_high_res: torch.Tensor,
                      object_score: torch.Tensor, binarize: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """A frame's spatial memory from its embedding (B, C, 64, 64) and its predicted
        mask (B, 1, 1024, 1024). With binarize, the memory holds exactly the mask the
        user saw (used on frames the user clicked)."""
        prob = (mask_logits_high_res > 0).float() if binarize else torch.sigmoid(mask_logits_high_res)
        # the sigmoid is rescaled to a logit-like range: 0 -> -10, 1 -> +10
        # (the embedding in one memory layout, channels last as the official model hands it
        # over, whether it was just computed or read back from the cache: the convolutions
        # round differently in each, and a memory computed again must equal the first)
        embedding = embedding.contiguous(memory_format=torch.channels_last)
        memory, pos = self.memory_encoder(embedding, prob * 20.0 - 10.0)
        if self.cfg.sam2_1:
            absent = (object_score <= 0).float()[..., None, None]  # (B, 1, 1, 1)
            memory = memory + absent * self.no_obj_embed_spatial[..., None, None]
        return memory, pos

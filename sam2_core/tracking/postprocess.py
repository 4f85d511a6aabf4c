"""Clean-up of predicted logits that the official video predictor applies."""

from __future__ import annotations

import cv2
import numpy as np
import torch

# the score given to a filled hole: just above the threshold, so it becomes object
HOLE_FILL_LOGIT = 0.1
# what overlapping objects are pushed down to where another object scores higher
SUPPRESSED_LOGIT = -10.0


def fill_small_holes(logits: torch.Tensor, max_area: int) -> torch.Tensor:
    """Background regions of at most `max_area` pixels (8-connected) become object.

    logits (B, 1, h, w), the low-res masks. The official predictor does this with a CUDA
    kernel only on a GPU; this is the same rule on every device. Like it, a background
    region touching the border counts as a hole too when small enough."""
    if max_area <= 0:
        return logits
    out = logits.clone()
    background = (logits <= 0).squeeze(1).cpu().numpy().astype(np.uint8)
    for b in range(background.shape[0]):
        _, labels, stats, _ = cv2.connectedComponentsWithStats(background[b], connectivity=8)
        area = stats[:, cv2.CC_STAT_AREA][labels]
        hole = (labels > 0) & (area <= max_area)
        if hole.any():
            out[b, 0][torch.from_numpy(hole).to(out.device)] = HOLE_FILL_LOGIT
    return out


def keep_top_object(logits: torch.Tensor) -> torch.Tensor:
    """No overlap between objects: at each pixel only the highest-scoring object keeps
    its score; the others are clamped to at most -10. logits (N, 1, H, W)."""
    if logits.shape[0] <= 1:
        return logits
    top = logits.argmax(dim=0, keepdim=True)
    mine = torch.arange(logits.shape[0], device=logits.device)[:, None, None, None]
    return torch.where(top == mine, logits, logits.clamp(max=SUPPRESSED_LOGIT))

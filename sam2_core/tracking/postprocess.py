"""Clean-up of predicted logits that the official video predictor applies."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# the score given to a filled hole: just above the threshold, so it becomes object
HOLE_FILL_LOGIT = 0.1
# what overlapping objects are pushed down to where another object scores higher
SUPPRESSED_LOGIT = -10.0


def fill_small_holes(logits: torch.Tensor, max_area: int) -> torch.Tensor:
    """Background regions of at most `max_area` pixels (8-connected) become object.

    logits (B, 1, h, w), the low-res masks. The official predictor does this with a CUDA
    kernel only on a GPU; this is the same rule on every device, computed where the
    logits are (no copy to the host, so a GPU is not made to wait). Like it, a background
    region touching the border counts as a hole too when small enough."""
    if max_area <= 0:
        return logits
    hole = small_regions(logits <= 0, max_area)
    return torch.where(hole, HOLE_FILL_LOGIT, logits)


def filled_pixels(before: torch.Tensor, after: torch.Tensor) -> dict[str, torch.Tensor]:
    """What hole filling changed, small enough to keep with each result: the flat indices of
    the pixels whose logits it changed, and their logits before. A frame's memory is made
    from its logits before filling, as officially, so it can be made again from these."""
    before, after = before.detach().float().flatten(), after.detach().float().flatten()
    changed = (before != after).nonzero().squeeze(1)
    return {"unfilled_at": changed.to(torch.int32), "unfilled": before[changed]}


def unfilled(after: torch.Tensor, pixels: dict[str, torch.Tensor]) -> torch.Tensor:
    """The logits before hole filling, from those after and `filled_pixels`'s record."""
    if "unfilled_at" not in pixels:  # (a result saved before these were kept: as good as it gets)
        return after
    before = after.clone()
    before.view(-1)[pixels["unfilled_at"].to(after.device).long()] = pixels["unfilled"].to(after.device, after.dtype)
    return before


def small_regions(mask: torch.Tensor, max_area: int) -> torch.Tensor:
    """The pixels of `mask` (B, 1, h, w) bool whose 8-connected region has at most
    `max_area` pixels.

    Every pixel starts with its own label and takes the smallest label among its
    neighbours in the mask, max_area times. A region of at most max_area pixels is at most
    max_area - 1 steps across, so by then it carries one label throughout and no pixel of
    it touches another label. A set of pixels with one label and no such contact is a
    whole region (labels only spread inside a region), so counting it is its area; a
    larger region either still shows contact between labels or counts more than max_area."""
    b, _, h, w = mask.shape
    inf = float("inf")
    index = torch.arange(1, h * w + 1, dtype=torch.float32, device=mask.device).view(1, 1, h, w)
    labels = torch.where(mask, index, inf)  # exact in float32 up to 2**24 pixels
    for _ in range(max_area):
        labels = torch.where(mask, _min_3x3(labels), inf)
    lowest = _min_3x3(labels)
    highest = -_min_3x3(torch.where(mask, -labels, inf))
    contact = mask & ((lowest != labels) | (highest != labels))

    # per (image, label): how many pixels carry it, and whether any of them touches another
    slot = torch.where(mask, labels, 0).long() + (torch.arange(b, device=mask.device) * (h * w + 1)).view(b, 1, 1, 1)
    slot = slot.flatten()
    area = torch.zeros(b * (h * w + 1), device=mask.device).index_add_(0, slot, mask.flatten().float())
    touching = torch.zeros_like(area).index_add_(0, slot, contact.flatten().float())
    return mask & (area[slot] <= max_area).view_as(mask) & (touching[slot] == 0).view_as(mask)


def _min_3x3(x: torch.Tensor) -> torch.Tensor:
    """Each pixel's minimum over itself and its 8 neighbours (outside the image: +inf),
    as a row pass and a column pass (a CPU runs this much faster than max_pool2d)."""
    p = F.pad(x, (1, 1, 1, 1), value=float("inf"))
    rows = torch.minimum(torch.minimum(p[..., :-2], p[..., 1:-1]), p[..., 2:])
    return torch.minimum(torch.minimum(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])


def keep_top_object(logits: torch.Tensor) -> torch.Tensor:
    """No overlap between objects: at each pixel only the highest-scoring object keeps
    its score; the others are clamped to at most -10. logits (N, 1, H, W)."""
    if logits.shape[0] <= 1:
        return logits
    top = logits.argmax(dim=0, keepdim=True)
    mine = torch.arange(logits.shape[0], device=logits.device)[:, None, None, None]
    return torch.where(top == mine, logits, logits.clamp(max=SUPPRESSED_LOGIT))

"""Between plate images and the model's square input: resize, normalise, and back."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

# ImageNet statistics, as the image encoder was trained with
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@functools.cache
def _mean_std(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """MEAN and STD as (1, 3, 1, 1) tensors on `device`, made once per device (not per frame)."""
    with torch.inference_mode(False):  # ordinary tensors, usable in and out of inference mode
        return (torch.tensor(MEAN, device=device).view(1, 3, 1, 1),
                torch.tensor(STD, device=device).view(1, 3, 1, 1))


def imagenet_normalise(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) colours in 0..1 -> normalised with the ImageNet statistics."""
    mean, std = _mean_std(x.device)
    return (x - mean) / std


def check_rgb(image, what: str = "image") -> np.ndarray:
    """An HxWx3 uint8 array, or a clear error saying what was given instead."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"{what} must be an RGB array of shape (height, width, 3); got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"{what} must be 8-bit (uint8, 0..255) sRGB; got {arr.dtype}. "
                         "Convert footage to display-referred 8-bit first (sam2_core.media does this).")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{what} is empty: shape {arr.shape}")
    return arr


def image_to_input(rgb: np.ndarray, size: int, device) -> torch.Tensor:
    """HxWx3 uint8 -> (1, 3, size, size) float32, resized (antialiased bilinear, the
    aspect ratio is not kept) and normalised."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).to(device).permute(2, 0, 1)[None].float() / 255.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return imagenet_normalise(x)


def points_to_input(xy: torch.Tensor, image_hw: tuple[int, int], size: int) -> torch.Tensor:
    """Plate pixel coordinates (..., 2) as (x, y) -> model-input pixel coordinates."""
    h, w = image_hw
    # normalise, then scale: the official predictor's order of operations, bit for bit
    return xy.float() / torch.tensor([w, h], dtype=torch.float32, device=xy.device) * size


def logits_to_image(logits: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
    """(B, M, h, w) logits -> (B, M, H, W) at the plate's size (bilinear)."""
    return F.interpolate(logits.float(), size=image_hw, mode="bilinear", align_corners=False)

"""Soft mattes from logits: alpha in [0, 1] at the plate's size, with edges that follow
the image rather than the model's 4x-coarser logit grid."""

from __future__ import annotations

import cv2
import numpy as np

PLATE_SAYS_LOGITS = 4.0  # how far (in logits) the plate's edges may move the matte from the model's


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)  # overflow-free logistic


def box(x: np.ndarray, radius: int) -> np.ndarray:
    return cv2.boxFilter(x, ddepth=-1, ksize=(2 * radius + 1, 2 * radius + 1), normalize=True,
                         borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter (grey guide): `src` smoothed, except across the guide's
    edges, where it takes their shape. guide and src are HxW float32 in [0, 1]."""
    mean_i, mean_p = box(guide, radius), box(src, radius)
    cov_ip = box(guide * src, radius) - mean_i * mean_p
    var_i = box(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box(a, radius) * guide + box(b, radius)


def soft_matte(logits: np.ndarray, plate: np.ndarray | None = None, *, radius: int | None = None,
               eps: float = 1e-4, softness: float = 1.0) -> np.ndarray:
    """Alpha (HxW float32 in [0, 1]) from plate-size logits (HxW, object = logits > 0).

    plate: the HxWx3 uint8 image the logits belong to; when given, the matte's edges are
    refined to follow it (a guided filter over about one and a half model pixels: the model
    sees the plate at 1024x1024 and answers at 256x256), where the model is unsure (its
    logits within PLATE_SAYS_LOGITS of 0). softness scales the logits' transition."""
    alpha = sigmoid(np.asarray(logits, np.float32) / softness)
    if plate is None:
        return alpha
    h, w = alpha.shape
    if plate.shape[:2] != (h, w):
        raise ValueError(f"plate is {plate.shape[1]}x{plate.shape[0]}, logits are {w}x{h}")
    if radius is None:
        radius = max(2, round(1.5 * max(h, w) / 256))
    grey = cv2.cvtColor(np.ascontiguousarray(plate), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    refined = guided_filter(grey, alpha, radius, eps)
    # the plate decides only where the model is unsure: a small object, or one the grey plate does
    # not show (red on green), is not filtered away where the model is sure of it
    scaled = np.asarray(logits, np.float32) / softness
    lowest, highest = sigmoid(scaled - PLATE_SAYS_LOGITS), sigmoid(scaled + PLATE_SAYS_LOGITS)
    return np.clip(refined, lowest, highest).astype(np.float32)

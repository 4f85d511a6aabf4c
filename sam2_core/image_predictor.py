"""ImagePredictor: click on one image, get masks back. The same preprocessing and
post-processing as the official SAM 2 image predictor (with its post-processing on:
a single mask falls back to the best of three when it is unstable)."""

from __future__ import annotations

import numpy as np
import torch

from .model import SAM2
from .model.prompt_encoder import BOX_BOTTOM_RIGHT, BOX_TOP_LEFT
from .model.transforms import check_rgb, image_to_input, logits_to_image, points_to_input

LOW_RES_CLAMP = 32.0  # low-res logits handed back are clipped, as the official predictor does


class ImagePredictor:
    def __init__(self, model: SAM2):
        self.model = model
        self._features = None
        self._image_hw: tuple[int, int] | None = None

    @torch.no_grad()
    def set_image(self, rgb: np.ndarray) -> None:
        """Encode an image (H x W x 3, uint8 sRGB, any size) once for many predictions."""
        rgb = check_rgb(rgb)
        self._features = None
        m = self.model
        x = image_to_input(rgb, m.cfg.image_size, m.device)
        with m.precision():
            feats = m.encode_image(x)
        # a single image has no memory: the "no memory" embedding stands in for it
        feats.levels[-1] = feats.levels[-1] + m.no_mem_embed.reshape(1, -1, 1, 1)
        self._features = feats
        self._image_hw = rgb.shape[:2]

    @torch.no_grad()
    def predict(self, points=None, labels=None, box=None, mask=None, multimask: bool = True,
                return_logits: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for one object.

        points: N (x, y) image pixels; labels: N of 1 (object) or 0 (not the object),
        all 1 when left out; box: (x0, y0, x1, y1) pixels; mask: the (1, 256, 256)
        low-res logits a previous predict returned.
        Returns masks (M, H, W) bool (float logits with return_logits), scores (M,)
        and low-res logits (M, 256, 256); M = 3 with multimask, else 1."""
        if self._features is None:
            raise RuntimeError("No image set: call set_image(image) before predict().")
        m = self.model
        coords, point_labels = self._prompt_points(points, labels, box)
        mask_logits = self._prompt_mask(mask)
        feats = self._features
        with m.precision():
            sparse, dense = m.sam_prompt_encoder(coords, point_labels, mask_logits)
            out = m.sam_mask_decoder(feats.embedding, m.sam_prompt_encoder.dense_pe(), sparse, dense,
                                     feats.high_res, multimask)
        low_res = out.masks.float()
        masks = logits_to_image(low_res, self._image_hw)
        if not return_logits:
            masks = masks > 0
        low_res = low_res.clamp(-LOW_RES_CLAMP, LOW_RES_CLAMP)
        return (masks[0].cpu().numpy(), out.iou[0].float().cpu().numpy(), low_res[0].cpu().numpy())

    def _prompt_points(self, points, labels, box):
        """Points and box as the model's (1, N, 2) coordinates and (1, N) labels; the box
        comes first, as two corner points."""
        dev, size, hw = self.model.device, self.model.cfg.image_size, self._image_hw
        coords, lab = [], []
        if box is not None:
            b = np.asarray(box, dtype=np.float32)
            if b.shape != (4,):
                raise ValueError(f"box must be (x0, y0, x1, y1); got an array of shape {b.shape}")
            coords.append(b.reshape(2, 2))
            lab.append(np.array([BOX_TOP_LEFT, BOX_BOTTOM_RIGHT], dtype=np.int32))
        if points is not None:
            p = np.asarray(points, dtype=np.float32).reshape(-1, 2)
            lp = np.ones(len(p), dtype=np.int32) if labels is None else np.asarray(labels, dtype=np.int32)
            if lp.shape != (len(p),):
                raise ValueError(f"{len(p)} points but {lp.size} labels: give one label per point")
            if not np.isin(lp, (0, 1)).all():
                raise ValueError(f"point labels must be 1 (object) or 0 (not the object); got {lp.tolist()}")
            coords.append(p)
            lab.append(lp)
        elif labels is not None:
            raise ValueError("labels were given without points")
        if not coords:
            return None, None
        xy = torch.from_numpy(np.concatenate(coords)).to(dev)[None]
        return points_to_input(xy, hw, size), torch.from_numpy(np.concatenate(lab)).to(dev)[None]

    def _prompt_mask(self, mask):
        if mask is None:
            return None
        t = torch.as_tensor(np.asarray(mask), dtype=torch.float32, device=self.model.device)
        want = self.model.sam_prompt_encoder.mask_input_hw
        if t.ndim == 2:
            t = t[None]
        if t.ndim != 3 or t.shape[0] != 1 or tuple(t.shape[1:]) != want:
            raise ValueError(f"mask must be the (1, {want[0]}, {want[1]}) low-res logits that predict() "
                             f"returned (one of them); got shape {tuple(np.shape(mask))}")
        return t[None]

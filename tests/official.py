"""The official implementation (`sam2` from PyPI), the reference our outputs must equal.

Test-only. Its image predictor imports torchvision, which does not install beside the
CPU torch of the build machines; the three transforms it uses are given here with
torchvision's semantics (ToTensor: HWC uint8 -> CHW float / 255; Resize on a tensor:
antialiased bilinear; Normalize), so the official predictor runs unchanged.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

OFFICIAL_CONFIG_FILES = {
    "sam2_hiera_tiny": "configs/sam2/sam2_hiera_t.yaml",
    "sam2_hiera_small": "configs/sam2/sam2_hiera_s.yaml",
    "sam2_hiera_base_plus": "configs/sam2/sam2_hiera_b+.yaml",
    "sam2_hiera_large": "configs/sam2/sam2_hiera_l.yaml",
    "sam2.1_hiera_tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}


class _ToTensor:
    def __call__(self, pic):
        x = torch.as_tensor(pic).permute(2, 0, 1).contiguous()
        return x.float().div(255) if x.dtype == torch.uint8 else x


class _Resize(nn.Module):
    def __init__(self, size: tuple[int, int]):
        super().__init__()
        self.size = [int(size[0]), int(size[1])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x[None], size=self.size, mode="bilinear", align_corners=False, antialias=True)[0]


class _Normalize(nn.Module):
    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.mean = mean
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return (x - mean) / std


def _install_torchvision_transforms():
    try:
        import torchvision.transforms  # noqa: F401
        return
    except Exception:
        pass
    tv = types.ModuleType("torchvision")
    tr = types.ModuleType("torchvision.transforms")
    tr.ToTensor, tr.Resize, tr.Normalize = _ToTensor, _Resize, _Normalize
    tv.transforms = tr
    sys.modules["torchvision"], sys.modules["torchvision.transforms"] = tv, tr


def build_official(name: str, seed: int = 0) -> nn.Module:
    """The official model for `name` as build_sam2 builds it (post-processing on), with
    random weights from a fixed seed, every parameter perturbed so that none is left
    at its (often zero or one) initial value."""
    import sam2  # noqa: F401  (registers its config module with hydra)
    from hydra import compose
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    overrides = [
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
    ]
    cfg = compose(config_name=OFFICIAL_CONFIG_FILES[name], overrides=overrides)
    OmegaConf.resolve(cfg)
    torch.manual_seed(seed)
    model = instantiate(cfg.model, _recursive_=True)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return model.eval()


def save_official_checkpoint(model: nn.Module, path: Path) -> Path:
    """The official file format: torch.save({"model": state_dict})."""
    torch.save({"model": model.state_dict()}, path)
    return path


def official_image_predictor(model: nn.Module):
    _install_torchvision_transforms()
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    return SAM2ImagePredictor(model)

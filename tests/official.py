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


# -- the official video predictor --------------------------------------------------------

def connected_components(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What the official CUDA kernel computes, on the CPU: for (N, 1, H, W) binary masks,
    8-connected component labels of the foreground pixels and each pixel's component area
    (0 on background)."""
    import cv2
    import numpy as np

    arr = mask.to(torch.uint8).cpu().numpy()
    labels = np.zeros(arr.shape, np.int32)
    areas = np.zeros(arr.shape, np.int32)
    for i in range(arr.shape[0]):
        _, lab, stats, _ = cv2.connectedComponentsWithStats(arr[i, 0], connectivity=8)
        labels[i, 0] = lab
        areas[i, 0] = np.where(lab > 0, stats[:, cv2.CC_STAT_AREA][lab], 0)
    return torch.from_numpy(labels).to(mask.device), torch.from_numpy(areas).to(mask.device)


def build_official_video(name: str, checkpoint: Path, device: str = "cpu", cpu_hole_filling: bool = True,
                         image_size: int = 1024):
    """SAM2VideoPredictor as build_sam2_video_predictor builds it (post-processing on) with
    add_all_frames_to_correct_as_cond, loading the given official-format checkpoint.

    Two facts of the reference are adjusted so that it behaves as with its CUDA extension
    built (the PyPI package ships without it): hole filling gets a CPU connected-components
    function instead of the extension's kernel (unless `cpu_hole_filling` is off: then it
    skips hole filling with a warning, as a pip-installed sam2 does), and
    memories stored in bfloat16 are promoted to float32 before the memory attention even
    on frames without object pointers (elsewhere torch.cat with the float32 pointers
    promotes them; without pointers it fails on the CPU)."""
    import sam2.utils.misc as misc
    from sam2.build_sam import build_sam2_video_predictor

    if cpu_hole_filling:
        misc.get_connected_components = connected_components
    predictor = build_sam2_video_predictor(
        OFFICIAL_CONFIG_FILES[name], str(checkpoint), device=device,
        hydra_overrides_extra=["++model.add_all_frames_to_correct_as_cond=true",
                               f"++model.image_size={image_size}"])
    attention = predictor.memory_attention
    forward = attention.forward

    def forward_float(curr, memory, curr_pos=None, memory_pos=None, num_obj_ptr_tokens=0):
        return forward(curr, memory.float(), curr_pos, memory_pos, num_obj_ptr_tokens)

    attention.forward = forward_float
    return predictor


def official_video_state(predictor, model_inputs: torch.Tensor, plate_hw: tuple[int, int], features):
    """An inference state over frames given as the model's (N, 3, S, S) normalised inputs,
    so that both implementations see exactly the same pixels.

    The official predictor keeps the image features of the last frame it visited only,
    and would encode a frame again on every visit. To save test time it is handed every
    frame's features instead, as it asks for them: `features(i)` returns (levels, pos) as
    the official `forward_image` would (the image encoders' equality is tested on its own)."""
    import sam2.sam2_video_predictor as svp

    def load_video_frames(video_path, image_size, **_):
        return model_inputs, plate_hw[0], plate_hw[1]

    def backbone_out(i):
        levels, pos = features(i)
        return {"vision_features": levels[-1], "vision_pos_enc": list(pos), "backbone_fpn": list(levels)}

    class Features(dict):
        """Every frame is a hit, looked up when asked for (so hits never replace it)."""

        def get(self, i, default=None):
            if i not in self:
                self[i] = (model_inputs[i: i + 1], backbone_out(i))
            return self[i]

    cached = Features()
    cached.get(0)  # before forward_image is swapped below: features() may call it
    original_loader, original_forward = svp.load_video_frames, predictor.forward_image
    svp.load_video_frames = load_video_frames
    predictor.forward_image = lambda images: cached.get(0)[1]  # init_state warms up on frame 0
    try:
        state = predictor.init_state(video_path="(frames in memory)")
    finally:
        svp.load_video_frames, predictor.forward_image = original_loader, original_forward
    state["cached_features"] = cached
    return state

"""load_model: an official configuration with its weights, on a device, in a precision."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import torch
from torch import nn

from . import weights
from .checkpoint import check_matches, read_state_dict
from .compiled import CompiledImageEncoder, worth_compiling
from .configs import DEFAULT_MODEL, get_config
from .sam2 import SAM2

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" picks CUDA, then Apple MPS, then the CPU; an explicit device must exist."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"Unsupported device {device!r}: use 'auto', 'cpu', 'cuda' or 'mps'.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Device {device!r} was asked for, but this machine has no usable CUDA GPU "
                         "(or this torch build has no CUDA). Use device='auto' or 'cpu'.")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"Device {device!r} was asked for, but Apple MPS is not available here. "
                         "Use device='auto' or 'cpu'.")
    return dev


def upload(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on `device`, without making the host wait for the GPU: a copy from
    ordinary memory to a CUDA GPU first waits for all the GPU's queued work, a copy from
    pinned memory is queued behind it."""
    if torch.device(device).type != "cuda" or t.device.type != "cpu":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        dt = dtype
    elif dtype in DTYPES:
        dt = DTYPES[dtype]
    else:
        raise ValueError(f"Unsupported dtype {dtype!r}: use one of {', '.join(DTYPES)}.")
    if dt not in DTYPES.values():
        raise ValueError(f"Unsupported dtype {dtype}: use one of {', '.join(DTYPES)}.")
    if dt == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("This GPU has no bfloat16 support: use dtype='float16' or 'float32'.")
    return dt


# Layers whose weights autocast casts to the working precision (on CUDA, the CPU and MPS).
AUTOCAST_LAYERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def hold_autocast_weights_in(model: nn.Module, dtype: torch.dtype) -> None:
    """Autocast caches a weight's cast only for weights that require grad, so a frame
    casts every layer's weights again (on a GPU that made bfloat16 slower than float32).
    Held in the working precision, they are cast once, here."""
    for layer in model.modules():
        if isinstance(layer, AUTOCAST_LAYERS):
            layer.to(dtype)


def load_model(name: str = DEFAULT_MODEL, checkpoint: str | Path | None = None,
               device: str | torch.device = "auto", dtype: str | torch.dtype = "float32",
               image_size: int | None = None, compile_encoder: bool | str | None = None,
               on_download: weights.OnProgress | None = None) -> SAM2:
    """An official SAM 2 / 2.1 model with its weights, ready for inference.

    checkpoint: a file in the official format; None takes the official file for `name`
    from the weights cache, downloading (and verifying) it on first use.
    dtype: the working precision. The network runs under autocast, as the official code
    does for reduced precisions; the weights of its linear and convolution layers, which
    autocast would cast to that precision on every call, are held in it (the same
    results, without hundreds of casts a frame), the others stay float32.
    image_size: the square input the network sees. The official models were trained at
    1024, their default; a smaller size (a multiple of 32) runs several times faster
    with coarser mattes. No weight depends on it.
    compile_encoder: compile the image encoder on its first call (see `compiled`): True,
    False, or "auto" for where it was measured to pay (bfloat16 on a CPU with AMX). None
    reads $SAM2ROTO_COMPILE (on, off or auto; unset is off), which reaches every host.
    on_download: told how a first use's download of the official file goes (it may raise
    to stop it; see `weights.OnProgress`)."""
    if compile_encoder is None:
        setting = os.environ.get("SAM2ROTO_COMPILE", "off").strip().lower()
        compile_encoder = {"on": True, "off": False, "": False, "auto": "auto"}.get(setting, setting)
        if compile_encoder not in (True, False, "auto"):
            raise ValueError(f"SAM2ROTO_COMPILE={setting!r}: use on, off or auto.")
    if compile_encoder not in (True, False, "auto"):
        raise ValueError(f"compile_encoder={compile_encoder!r}: use True, False or 'auto'.")
    cfg = get_config(name)
    if image_size is not None:
        if image_size < 64 or image_size % 32:
            raise ValueError(f"image_size {image_size} is not a multiple of 32 of at least 64 "
                             f"(the image encoder halves the picture five times); {name} "
                             f"was trained at {cfg.image_size}.")
        cfg = dataclasses.replace(cfg, image_size=image_size)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    if checkpoint is None:
        # (a host that is told the progress draws it; a bar on its stderr would be one endless line)
        path = weights.official_checkpoint(name, on_progress=on_download, progress=on_download is None)
        weights_id = weights.OFFICIAL_WEIGHTS[name].sha256
    else:
        path = Path(checkpoint)
        log.info("Loading %s from %s: a file named by the user has no pinned checksum; its "
                 "configuration is checked from its parameter names and shapes.", name, path)
        weights_id = weights.sha256_of(path) if path.is_file() else ""
    state = read_state_dict(path)
    model = SAM2(cfg)
    check_matches(state, cfg, path, model)
    model.load_state_dict(state, strict=True)
    model.requires_grad_(False)
    model.eval().to(dev)
    if dt != torch.float32:
        hold_autocast_weights_in(model, dt)
    model.dtype = dt
    model.checkpoint_path = path
    # which weights these are: caches of image features are keyed by it
    model.weights_id = weights_id
    if compile_encoder == "auto":
        compile_encoder = worth_compiling(dev, dt)
    if compile_encoder:
        model.compiled_image_encoder = CompiledImageEncoder(model.image_encoder)
    return model

"""The image encoder compiled by PyTorch's inductor with its weights frozen.

Freezing folds the weights into the compiled graph as constants and lays them out once for
the CPU's matrix kernels (oneDNN). On a CPU with AMX, in bfloat16, that took the tiny
encoder from 0.76 s to 0.49 s a frame (../shared/PERF_NOTES.md). In float32 on AVX2 it
gains nothing (about 3 s at 1024, compiled or not), so it is opt-in, and `worth_compiling`
names where it pays.

The first call compiles: about 30 s to a minute, less in a later process, which reads
inductor's cache. A compilation that fails (no C++ compiler, an unsupported platform)
costs a warning: the encoder then runs as it is.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)


def worth_compiling(device: torch.device, dtype: torch.dtype) -> bool:
    """Where compiling the image encoder was measured to pay: bfloat16 on a CPU with AMX."""
    return device.type == "cpu" and dtype == torch.bfloat16 and torch.cpu._is_amx_tile_supported()


class CompiledImageEncoder:
    """Calls the compiled encoder; after a failed compilation, the module itself.

    Not an nn.Module on purpose: held by the model, it adds no parameters or state-dict keys."""

    def __init__(self, encoder: nn.Module):
        self.encoder = encoder
        self.compiled = torch.compile(encoder, dynamic=False, options={"freezing": True})
        self.failed = False

    def __call__(self, images: torch.Tensor):
        if self.failed:
            return self.encoder(images)
        try:
            return self.compiled(images)  # (dynamo compiles under its own lock)
        except Exception as e:  # noqa: BLE001 — anything inductor raises: the eager encoder gives the same answer
            self.failed = True
            log.warning("Could not compile the image encoder (%s: %s); it runs uncompiled, at its "
                        "usual speed. Compiling needs a C++ compiler (g++ or clang) on the PATH.",
                        type(e).__name__, str(e).splitlines()[0] if str(e) else "")
            return self.encoder(images)

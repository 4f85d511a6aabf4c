import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.official import build_official, save_official_checkpoint

# keep the 2-core CI machines responsive and runs repeatable
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
# a user's performance switch must not change what the tests run (test_compiled sets it)
os.environ.pop("SAM2ROTO_COMPILE", None)


# Tests that track shots on the CPU run the tiny model at this input size: every weight and
# every code path is the same, a tracked frame costs about a sixth of 1024's, and CI's time
# stays in bounds. Each module's parity at 1024 is tested in tests/sam2_core/model.
CPU_TEST_INPUT_SIZE = 512


@pytest.fixture(scope="session")
def official_models():
    """Official models with random weights, built once per session, by name."""
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = build_official(name)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def official_checkpoint(official_models, tmp_path_factory):
    """Path of an official-format checkpoint holding the random official weights."""
    cache = {}

    def get(name: str) -> Path:
        if name not in cache:
            path = tmp_path_factory.mktemp("ckpt") / f"{name}.pt"
            cache[name] = save_official_checkpoint(official_models(name), path)
        return cache[name]

    return get


def make_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A test picture: smooth shapes and some noise, so the encoder sees structure."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for _ in range(4):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.1, 0.4) * min(h, w)
        color = rng.uniform(0, 255, 3)
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        img[inside] = color
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)

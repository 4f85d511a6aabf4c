from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sam2_core import load_model
from sam2_core.cache.features import FrameFeatureCache, normalise, resize_to_input
from sam2_core.media.frame_source import ArraySource
from tests.conftest import CPU_TEST_INPUT_SIZE, make_image
from tests.official import build_official_video, official_video_state

NAME = "sam2.1_hiera_tiny"
H, W = 240, 320


def input_size(device: str) -> int:
    """The network's input size for the tracking tests: a GPU runs the size the models were
    trained at; the CPU the smaller one of tests/conftest.py."""
    return 1024 if device == "cuda" else CPU_TEST_INPUT_SIZE


def moving_disc_frames(n: int, seed: int = 0) -> np.ndarray:
    """A red disc crossing a textured backdrop, and a blue square drifting down."""
    base = make_image(H, W, seed=seed)
    yy, xx = np.mgrid[0:H, 0:W]
    frames = []
    for t in range(n):
        img = base.copy()
        img[(xx - 60 - 18 * t) ** 2 + (yy - 120) ** 2 < 38**2] = (220, 40, 40)
        img[(abs(xx - 240) < 30) & (abs(yy - 50 - 8 * t) < 30)] = (40, 60, 210)
        frames.append(img)
    return np.stack(frames)


def write_png_clip(folder: Path, n: int, first: int = 1001, seed: int = 0) -> Path:
    """The moving-disc frames as footage arrives: a numbered PNG sequence, plate.<first>.png on
    (another `seed`: another backdrop)."""
    for i, frame in enumerate(moving_disc_frames(n, seed)):
        cv2.imwrite(str(folder / f"plate.{first + i:04d}.png"), frame[:, :, ::-1])
    return folder


# parity runs on every device this machine has; CI has none but the CPU
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                 reason="needs a CUDA GPU"))]


@pytest.fixture(scope="session")
def tiny_on(official_checkpoint):
    """The tiny model on a device, loaded once per device."""
    models = {}

    def get(device: str = "cpu"):
        if device not in models:
            models[device] = load_model(NAME, checkpoint=official_checkpoint(NAME), device=device,
                                        image_size=input_size(device))
        return models[device]

    return get


@pytest.fixture(scope="session")
def tiny(tiny_on):
    return tiny_on("cpu")


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One cache folder for the tracking tests: frames are encoded once per session."""
    return tmp_path_factory.mktemp("shot-cache")


@pytest.fixture
def device_cache(shared_cache, device):
    """The shared cache for the CPU; a cache of its own for another device, so that its
    frames are encoded there (cache entries do not depend on the device)."""
    return shared_cache if device == "cpu" else shared_cache.parent / f"shot-cache-{device}"


@pytest.fixture
def official_pair(official_checkpoint, tiny_on, device, device_cache):
    """A fresh official video predictor on `device` and a function making its state for frames."""
    predictor = build_official_video(NAME, official_checkpoint(NAME), device=device,
                                     image_size=input_size(device))

    def state_for(frames: np.ndarray):
        inputs = torch.cat([normalise(resize_to_input(f, input_size(device)), device) for f in frames])
        cache = FrameFeatureCache(tiny_on(device), ArraySource(frames), device_cache)

        def features(i):
            f = cache.features(i)
            return f.levels, f.pos

        return official_video_state(predictor, inputs, frames.shape[1:3], features)

    return predictor, state_for

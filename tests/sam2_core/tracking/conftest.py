from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sam2_core import load_model
from sam2_core.cache.features import FrameFeatureCache, normalise, resize_to_input
from sam2_core.media.frame_source import ArraySource
from tests.conftest import make_image
from tests.official import build_official_video, official_video_state

NAME = "sam2.1_hiera_tiny"
H, W = 240, 320


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


def write_png_clip(folder: Path, n: int, first: int = 1001) -> Path:
    """The moving-disc frames as footage arrives: a numbered PNG sequence, plate.<first>.png on."""
    for i, frame in enumerate(moving_disc_frames(n)):
        cv2.imwrite(str(folder / f"plate.{first + i:04d}.png"), frame[:, :, ::-1])
    return folder


@pytest.fixture(scope="session")
def tiny(official_checkpoint):
    return load_model(NAME, checkpoint=official_checkpoint(NAME), device="cpu")


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One cache folder for the tracking tests: frames are encoded once per session."""
    return tmp_path_factory.mktemp("shot-cache")


@pytest.fixture
def official_pair(official_checkpoint, tiny, shared_cache):
    """A fresh official video predictor and a function making its state for frames."""
    predictor = build_official_video(NAME, official_checkpoint(NAME))

    def state_for(frames: np.ndarray):
        inputs = torch.cat([normalise(resize_to_input(f, 1024), "cpu") for f in frames])
        cache = FrameFeatureCache(tiny, ArraySource(frames), shared_cache)

        def features(i):
            f = cache.features(i)
            return f.levels, f.pos

        return official_video_state(predictor, inputs, frames.shape[1:3], features)

    return predictor, state_for

"""All eight official configurations: same parameter names and shapes as the official
model, and each loads its own official-format checkpoint."""

import gc

import pytest
import torch

from sam2_core import load_model
from sam2_core.model import CONFIGS
from sam2_core.model.checkpoint import expected_shapes, identify
from tests.official import OFFICIAL_CONFIG_FILES, build_official


def test_the_eight_official_names():
    assert sorted(CONFIGS) == sorted(OFFICIAL_CONFIG_FILES)
    assert len(CONFIGS) == 8


@pytest.mark.parametrize("name", sorted(OFFICIAL_CONFIG_FILES))
def test_config_builds_and_loads_its_own_random_checkpoint(name, tmp_path):
    official = build_official(name, seed=3)
    state = official.state_dict()
    want = {k: tuple(v.shape) for k, v in state.items()}
    assert expected_shapes(name) == want
    assert identify(state) == name

    path = tmp_path / f"{name}.pt"
    torch.save({"model": state}, path)
    model = load_model(name, checkpoint=path, device="cpu")
    ours = model.state_dict()
    assert ours.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(ours[key], value), key
    assert model.cfg.sam2_1 == name.startswith("sam2.1")
    del official, state, model, ours
    gc.collect()


def test_a_smaller_input_size_loads_the_same_weights(official_checkpoint):
    path = official_checkpoint("sam2.1_hiera_tiny")
    full = load_model("sam2.1_hiera_tiny", checkpoint=path, device="cpu")
    half = load_model("sam2.1_hiera_tiny", checkpoint=path, device="cpu", image_size=512)
    assert half.cfg.image_size == 512 and half.cfg.embedding_size == 32
    for key, value in full.state_dict().items():
        assert torch.equal(half.state_dict()[key], value), key
    levels = half.encode_image(torch.zeros(1, 3, 512, 512)).levels
    assert [tuple(t.shape[-2:]) for t in levels] == [(128, 128), (64, 64), (32, 32)]


@pytest.mark.parametrize("size", [500, 32, 0])
def test_an_input_size_the_encoder_cannot_halve_is_refused(official_checkpoint, size):
    with pytest.raises(ValueError, match=f"image_size {size} is not a multiple of 32"):
        load_model("sam2.1_hiera_tiny", checkpoint=official_checkpoint("sam2.1_hiera_tiny"), device="cpu",
                   image_size=size)

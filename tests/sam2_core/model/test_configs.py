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

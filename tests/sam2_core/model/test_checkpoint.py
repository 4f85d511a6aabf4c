"""Bad checkpoints: each gets a clear error naming the file, and nothing is loaded."""

import hashlib
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from sam2_core import load_model
from sam2_core.model import weights
from sam2_core.model.checkpoint import CheckpointError
from sam2_core.model.weights import OfficialWeights, WeightsError

NAME = "sam2.1_hiera_tiny"


def expect_refusal(path, match, name=NAME):
    with pytest.raises(CheckpointError, match=match) as info:
        load_model(name, checkpoint=path, device="cpu")
    assert str(path) in str(info.value)
    return str(info.value)


def test_checkpoint_of_another_configuration_names_what_it_is(official_checkpoint):
    msg = expect_refusal(official_checkpoint("sam2_hiera_small"), "is a sam2_hiera_small checkpoint")
    assert "sam2.1_hiera_tiny" in msg


def test_sam2_checkpoint_asked_for_as_sam2_1(official_checkpoint, tmp_path):
    # same trunk, but SAM 2.1 has two parameters more: the file is recognised as SAM 2 small
    expect_refusal(official_checkpoint("sam2_hiera_small"), "sam2_hiera_small", name="sam2.1_hiera_small")


def test_truncated_file(official_checkpoint, tmp_path):
    data = official_checkpoint(NAME).read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: len(data) // 2])
    expect_refusal(path, "damaged or incomplete")


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(os.urandom(100_000))
    expect_refusal(path, "not a PyTorch checkpoint")


def test_empty_file_and_missing_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    expect_refusal(path, "empty")
    expect_refusal(tmp_path / "nowhere.pt", "not found")


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_that_runs_code_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "payload": _RunsCode(marker)}, path)
    # the trap is real: an unsafe load runs it
    assert zipfile.is_zipfile(path)
    expect_refusal(path, "could run code")
    assert not marker.exists()
    # a plain (non-torch) pickle too
    plain = tmp_path / "evil.pkl"
    plain.write_bytes(pickle.dumps(_RunsCode(marker)))
    expect_refusal(plain, "not a PyTorch checkpoint")
    assert not marker.exists()


def test_pytorch_file_that_is_not_a_sam2_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, path)
    expect_refusal(path, "not a SAM 2 checkpoint")


def test_state_dict_of_no_known_configuration(official_checkpoint, tmp_path):
    state = torch.load(official_checkpoint(NAME), weights_only=True)["model"]
    state.pop("no_mem_embed")
    state["image_encoder.trunk.pos_embed"] = torch.zeros(1, 96, 5, 5)
    path = tmp_path / "edited.pt"
    torch.save({"model": state}, path)
    msg = expect_refusal(path, "does not match")
    assert "missing (e.g. no_mem_embed)" in msg and "image_encoder.trunk.pos_embed" in msg


@pytest.fixture
def official_table(monkeypatch, tmp_path, official_checkpoint):
    """The official entry for NAME pointed at a local file, as if it were the download."""
    src = official_checkpoint(NAME)
    monkeypatch.setenv("SAM2ROTO_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.delenv("SAM2ROTO_WEIGHTS_BASE_URL", raising=False)

    def point_at(sha256):
        entry = OfficialWeights(NAME, f"{NAME}.pt", src.as_uri(), src.stat().st_size, sha256)
        monkeypatch.setitem(weights.OFFICIAL_WEIGHTS, NAME, entry)
        return tmp_path / "weights" / f"{NAME}.pt"

    return src, point_at


def test_official_weights_fetched_verified_and_loaded(official_table):
    src, point_at = official_table
    dest = point_at(hashlib.sha256(src.read_bytes()).hexdigest())
    model = load_model(NAME, device="cpu")
    assert dest.is_file() and model.checkpoint_path == dest
    ref = torch.load(src, weights_only=True)["model"]
    assert torch.equal(model.state_dict()["no_mem_embed"], ref["no_mem_embed"])


def test_checksum_mismatch_is_never_loaded(official_table, monkeypatch):
    _, point_at = official_table
    dest = point_at("0" * 64)
    loaded = []
    monkeypatch.setattr("sam2_core.model.loading.read_state_dict", lambda p: loaded.append(p))
    with pytest.raises(WeightsError, match="0" * 64):
        load_model(NAME, device="cpu")
    assert loaded == [] and not dest.exists()


def test_weights_id_is_the_checkpoint_sha256(official_checkpoint):
    path = official_checkpoint(NAME)
    model = load_model(NAME, checkpoint=path, device="cpu")
    assert model.weights_id == hashlib.sha256(path.read_bytes()).hexdigest()

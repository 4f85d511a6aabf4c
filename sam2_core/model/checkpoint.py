"""Reading official checkpoint files safely, and telling the user exactly what is wrong
with one that is not what was asked for."""

from __future__ import annotations

import pickle
import zipfile
from functools import cache
from pathlib import Path

import torch

from .configs import CONFIGS, ModelConfig


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and what to do."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict inside an official checkpoint file (`{"model": state_dict}`).

    Loaded with weights_only=True: tensors and plain containers only, so a file cannot
    run code while it is read."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint file not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"Checkpoint file {path} is empty (0 bytes). Delete it and download it again.")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "unsupported global" in str(e).lower():  # a reference to a function or class
            raise CheckpointError(
                f"Refused to load {path}: it holds Python objects other than tensors, and loading it "
                "could run code. Official SAM 2 checkpoints hold only tensors; use an official file."
            ) from None
        raise _not_a_checkpoint(path, e) from None
    except Exception as e:  # torch raises RuntimeError, EOFError, ... for damaged files
        raise _not_a_checkpoint(path, e) from None

    if not isinstance(data, dict) or "model" not in data or not isinstance(data["model"], dict):
        found = f"a dict with keys {sorted(data)[:5]}" if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"{path} is a PyTorch file but not a SAM 2 checkpoint: "
            f"expected {{'model': state_dict}}, found {found}."
        )
    state = data["model"]
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: entries {bad[:3]} of its state dict are not tensors.")
    return state


def _not_a_checkpoint(path: Path, error: Exception) -> CheckpointError:
    with open(path, "rb") as f:  # (its first bytes, not the whole file: checkpoints are up to 900 MB)
        starts_as_zip = f.read(4) == b"PK\x03\x04"
    if zipfile.is_zipfile(path) or starts_as_zip:
        return CheckpointError(
            f"Checkpoint file {path} is damaged or incomplete ({type(error).__name__}: {error}). "
            "A download may have been cut short: delete the file and download it again."
        )
    return CheckpointError(f"{path} is not a PyTorch checkpoint ({type(error).__name__}: {error}).")


@cache
def expected_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of a configuration (built on the meta device: no memory)."""
    from .sam2 import SAM2

    with torch.device("meta"):
        model = SAM2(CONFIGS[name])
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def identify(state: dict[str, torch.Tensor]) -> str | None:
    """The configuration whose parameters a state dict has exactly, if any."""
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    for name in CONFIGS:
        if expected_shapes(name) == shapes:
            return name
    return None


def check_matches(state: dict[str, torch.Tensor], cfg: ModelConfig, path: str | Path,
                  model: torch.nn.Module | None = None) -> None:
    """Raise a CheckpointError unless `state` has exactly the parameters of `cfg`.
    `model`: one already built for `cfg`, whose shapes are then taken as they are (building
    on the meta device first imports torch._dynamo, two seconds of a model's loading)."""
    if model is None:
        want = expected_shapes(cfg.name)
    else:
        want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    if shapes == want:
        return
    actual = identify(state)
    if actual:
        raise CheckpointError(
            f"{path} is a {actual} checkpoint, but the model asked for is {cfg.name}. "
            f"Ask for model {actual!r}, or use a {cfg.name} checkpoint."
        )
    missing = sorted(set(want) - set(shapes))
    extra = sorted(set(shapes) - set(want))
    wrong = sorted(k for k in set(want) & set(shapes) if want[k] != shapes[k])
    details = []
    if missing:
        details.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if extra:
        details.append(f"{len(extra)} unexpected (e.g. {extra[0]})")
    if wrong:
        details.append(f"{len(wrong)} of another shape (e.g. {wrong[0]}: {shapes[wrong[0]]} instead of "
                       f"{want[wrong[0]]})")
    raise CheckpointError(
        f"{path} does not match {cfg.name} nor any other official SAM 2 configuration: "
        f"parameters {', '.join(details)}."
    )

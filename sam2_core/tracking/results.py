"""The tracking results a session keeps on disk, one entry a frame and object, and what the
session was made on. The tracker writes and reads them; `SessionResults` reads them back
without the model, which is all an export needs (no weights, nothing downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..cache.store import TensorStore
from ..media.frame_source import as_source, check_index

# what a stored result is to the memory bank
PENDING, CONDITIONING, TRACKED = 0, 1, 2
OBJECT_ORDER_KEY = "objects"  # in the session's prompt store
FOOTAGE_FILE = "footage.json"  # in the session folder: what footage its frame indices refer to


def result_key(obj_id: int, frame: int) -> str:
    return f"res-{obj_id}-{frame:07d}"


def pending_key(obj_id: int, frame: int) -> str:
    """A prompt's answer not yet committed: kept apart, because until the commit the
    frame's tracked result stays in the memory bank (and must reload with it)."""
    return f"pend-{obj_id}-{frame:07d}"


def parse_key(key: str) -> tuple[bool, int, int]:
    """(pending, object id, frame) of a results entry's key."""
    prefix, obj_id, frame = key.split("-")
    return prefix == "pend", int(obj_id), int(frame)


def latest_result(store: TensorStore, obj_id: int, frame: int) -> dict | None:
    """A prompt's answer not yet tracked from, else the frame's result."""
    pending = store.get(pending_key(obj_id, frame))
    return pending if pending is not None else store.get(result_key(obj_id, frame))


def to_plate(low_res: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Low-res logits (N, 1, 256, 256) -> plate-sized ones (N, 1, H, W); size is (W, H)."""
    w, h = size
    return F.interpolate(low_res.float(), size=(h, w), mode="bilinear", align_corners=False)


def model_key(name: str, image_size: int, weights_id: str) -> str:
    """The model as the session records it: its results are that model's."""
    return f"{name} {image_size} {weights_id}"


def footage_record(source, colour_key: str, footage_key: str, model: str) -> dict:
    """What a session is made on: the frames, their pixels' colour settings, the footage's
    content and the model."""
    return {"frame_numbers": [int(n) for n in source.frame_numbers], "size": [int(n) for n in source.size],
            "colour": colour_key, "footage": footage_key, "model": model}


def recorded_footage(session_dir: Path) -> dict | None:
    """The session's record of what it was made on: None for none (a new session, or one
    from before the record was kept), {} for a damaged one."""
    try:
        before = json.loads((Path(session_dir) / FOOTAGE_FILE).read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return {}
    return before if isinstance(before, dict) else {}  # (valid JSON, but not this record: damaged)


def same_footage(before: dict | None, now: dict) -> bool:
    """Whether a session recorded as `before` was made on what `now` describes, reading
    older records as they were meant."""
    if not before:
        return False
    before = dict(before)
    for kept_later in ("model", "footage"):  # (sessions from before these were recorded)
        before.setdefault(kept_later, now[kept_later])
    if before.get("colour") == "" and now["colour"] == "passthrough":
        # (a shot's folder of PNG/JPEG frames was read without colour settings before it was
        # read as a sequence: the same code values, which the sequence's default passes on)
        before["colour"] = now["colour"]
    if not now["footage"]:  # (footage that could not be read just now: not other footage)
        before["footage"] = ""
    return before == now


class SessionResults:
    """A session's results read back without the model: the objects, which frames have a
    result, and each result as plate-sized logits, as the tracker's `logits` gives them
    for objects tracked independently (the official default, and a shot's way). Damaged
    entries count as frames not tracked, as they do for the tracker."""

    def __init__(self, session_dir: str | Path, source):
        self.source = as_source(source)
        self.num_frames = len(self.source)
        session_dir = Path(session_dir)
        self.store = TensorStore(session_dir / "results", ram_budget=16 << 20, durable=False)
        self._frames: dict[int, dict[int, set[int]]] = {}  # object -> kind -> frames with such a result
        for key in self.store.keys():
            pending, obj_id, frame = parse_key(key)
            entry = self.store.get(key)
            if entry is None or "meta" not in entry:
                continue
            kind = PENDING if pending else int(entry["meta"][0])
            self._frames.setdefault(obj_id, {PENDING: set(), CONDITIONING: set(), TRACKED: set()})[kind].add(frame)
        saved = TensorStore(session_dir / "prompts", ram_budget=1 << 20).get(OBJECT_ORDER_KEY)
        order = [] if saved is None else saved["ids"].tolist()
        # (in the tracker's order: as added, then any the order does not name)
        self.object_ids = [*order, *sorted(set(self._frames) - set(order))]

    def _kinds(self, obj_id: int) -> dict[int, set[int]]:
        if obj_id not in self.object_ids:
            raise KeyError(f"Unknown object id {obj_id}")
        return self._frames.get(obj_id, {PENDING: set(), CONDITIONING: set(), TRACKED: set()})

    def has_result(self, frame: int, obj_id: int) -> bool:
        return any(frame in frames for frames in self._kinds(obj_id).values())

    def has_pending(self) -> bool:
        return any(kinds[PENDING] for kinds in self._frames.values())

    def answered_frames(self, obj_id: int) -> list[int]:
        """Frames where the object's prompt has its answer (tracked from or not yet)."""
        kinds = self._kinds(obj_id)
        return sorted(kinds[CONDITIONING] | kinds[PENDING])

    def pending_frames(self, obj_id: int) -> list[int]:
        return sorted(self._kinds(obj_id)[PENDING])

    def logits(self, frame: int, obj_id: int) -> np.ndarray | None:
        self._kinds(obj_id)
        got = latest_result(self.store, obj_id, check_index(self.source, frame))
        return None if got is None else to_plate(got["logits"], self.source.size)[0, 0].numpy()

    def object_score(self, frame: int, obj_id: int) -> float | None:
        self._kinds(obj_id)
        got = latest_result(self.store, obj_id, check_index(self.source, frame))
        return None if got is None else float(got["score"].reshape(-1)[0])

    def close(self) -> None:
        """(Nothing is written, nothing runs in the background.)"""

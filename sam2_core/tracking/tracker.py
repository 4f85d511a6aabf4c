"""VideoTracker: objects prompted on any frames, tracked through a whole shot.

The same results as the official SAM 2 video predictor (built by
build_sam2_video_predictor, post-processing on), with the official option
add_all_frames_to_correct_as_cond: a frame that receives a correction becomes a
conditioning frame, so corrections stick. What differs is where things live: frames
and image features in a disk cache shared by every run on the shot, spatial memories
and per-frame results on disk behind small RAM windows, so memory stays flat however
long the shot is.

Conventions (DESIGN.md): frame *indices* (0 = the source's first frame), plate pixel
coordinates (x right, y down), float32 logits at plate resolution (object = logits > 0).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import numbers
import os
import shutil
import socket
import tempfile
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..atomic import write_text_atomically
from ..cache.features import FrameFeatureCache, weights_key
from ..cache.heap import give_back_free_memory, trim
from ..cache.store import CacheError, TensorStore, flush_all
from ..media.frame_source import as_source, check_index
from ..model import SAM2
from ..model.prompt_encoder import BOX_BOTTOM_RIGHT, BOX_TOP_LEFT
from ..model.transforms import points_to_input
from .memory_bank import FrameMemory, LostResult, MemoryBank, ObjectMemory
from .postprocess import fill_small_holes, filled_pixels, keep_top_object, unfilled
from .results import (
    CONDITIONING,
    FOOTAGE_FILE,
    OBJECT_ORDER_KEY,
    PENDING,
    TRACKED,
    footage_record,
    latest_result,
    model_key,
    parse_key,
    pending_key,
    recorded_footage,
    result_key,
    same_footage,
    to_plate,
)

log = logging.getLogger(__name__)

LOGIT_CLAMP = 32.0  # a previous mask fed back with new clicks is clipped to this, as officially
# the memory-conditioned embeddings kept for corrections are 4 MiB a frame and object at
# 1024 in float32 and can always be computed again: the least recently used go past this
CONDITIONED_DISK_BUDGET = 2 << 30
# spatial memories are 0.5 MiB a frame and object and are computed again from their results
# when gone: past this, the least recently used are dropped from the session folder (a
# re-track needs those of the few frames before it, and of the prompted frames)
MEMORY_DISK_BUDGET = 256 << 20


@dataclass
class Prompt:
    """What the user gave one object on one frame: clicks and/or a box, or a mask."""

    coords: torch.Tensor | None = None  # (1, N, 2) model-input pixels, box corners first
    labels: torch.Tensor | None = None  # (1, N) int32
    mask: torch.Tensor | None = None  # (1, 1, S, S) bool at model-input size (a quarter of float's bytes)

    @property
    def num_points(self) -> int:
        return 0 if self.labels is None else self.labels.shape[1]


@dataclass
class TrackedObject:
    memory: ObjectMemory
    prompts: dict[int, Prompt] = field(default_factory=dict)
    # results of prompts not yet committed to the memory bank (the next propagate does it)
    pending: dict[int, FrameMemory] = field(default_factory=dict)
    # corrected frame -> the directions its re-track runs (reverse or not), kept from the
    # commit, which drops the results that told them, until a re-track from it finishes
    retrack_directions: dict[int, list[bool]] = field(default_factory=dict)


def _on(t: torch.Tensor | None, device) -> torch.Tensor | None:
    return None if t is None else t.to(device)


def _remove_folders(folders: list[Path]) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def _temporary_session(cache_dir: Path) -> Path:
    """A new folder name for a tracker's own session under `cache_dir/sessions`, named after
    this computer and process, so that the sessions of processes killed before they could
    close (and remove theirs) are known and removed."""
    sessions = cache_dir / "sessions"
    here = _host_name()
    if os.name == "posix" and sessions.is_dir():  # (Windows has no harmless "is it alive" signal)
        for folder in sessions.iterdir():
            host, _, rest = folder.name.rpartition("@")
            pid = rest.partition("-")[0]
            # (a cache shared with other computers: only this one's processes can be asked)
            if host == here and pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)
    return sessions / f"{here}@{os.getpid()}-{uuid.uuid4().hex[:12]}"


def _host_name() -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in socket.gethostname()) or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # (another user's)
        return True
    return True


def _check_object_id(obj_id) -> int:
    """Object ids are whole numbers from 0 (as the official predictor's); they name the
    object's files in a session."""
    if isinstance(obj_id, bool) or not isinstance(obj_id, numbers.Integral) or obj_id < 0:
        raise ValueError(f"Object id {obj_id!r}: use a whole number, 0 or more")
    return int(obj_id)


def _signature_tensor(signature: tuple, reverse: bool, features_id: str) -> torch.Tensor:
    """What a conditioned embedding was made of: the memories, the direction and the frame's
    features (footage rendered again, or another model, makes other features)."""
    spatial, pointers = signature
    features = int.from_bytes(hashlib.blake2b(features_id.encode(), digest_size=8).digest(), "little", signed=True)
    flat = ([features, int(reverse), len(spatial)] + [v for item in spatial for v in item]
            + [v for item in pointers for v in item])
    return torch.tensor(flat, dtype=torch.int64)


def _locked(method):
    """The method reads the tracker's state while no other thread changes it."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return locked


class VideoTracker:
    """Objects tracked through a shot (see DESIGN.md for the contract).

    Safe to use from several threads: each call runs alone, and a propagate holds the
    tracker one frame at a time, so a prompt or a query from another thread waits for
    the frame in progress at most."""

    def __init__(self, model: SAM2, source, cache_dir: str | Path | None = None, *,
                 non_overlap: bool = False, fill_hole_area: int = 8, colour_key: str = "", footage_key: str = "",
                 feature_disk_budget: int | None = None, encode_in_background: bool = False,
                 session_dir: str | Path | None = None):
        """source: a FrameSource, a folder of numbered JPEG/PNG frames, or frames in memory.
        cache_dir: where frames and features live (a temporary folder if None; give the
        shot's cache folder so that features are reused by later runs).
        session_dir: where prompts, memories and results are kept so that a later tracker
        (after a crash, or in another process) resumes exactly where this one stopped;
        without it they live in a temporary folder deleted on close().
        colour_key, footage_key: what the pixels' colour settings and the footage's content
        are (wherever it lies): a session made on other ones starts afresh."""
        self.model = model
        self.source = as_source(source)
        self.num_frames = len(self.source)
        self.non_overlap = non_overlap
        self.fill_hole_area = fill_hole_area
        self._own_dir = cache_dir is None
        self.cache_dir = Path(tempfile.mkdtemp(prefix="sam2roto-")) if cache_dir is None else Path(cache_dir)
        # this tracker's own working data: prompts, spatial memories, per-frame results
        self.persistent = session_dir is not None
        self.session_dir = Path(session_dir) if session_dir else _temporary_session(self.cache_dir)
        # what only this tracker uses goes with it, also when it is dropped unclosed (or
        # fails to open)
        temporary = ([] if self.persistent else [self.session_dir]) + ([self.cache_dir] if self._own_dir else [])
        self._remove_temporary = weakref.finalize(self, _remove_folders, temporary)
        kwargs = {} if feature_disk_budget is None else {"disk_budget": feature_disk_budget}
        self.frames = FrameFeatureCache(model, self.source, self.cache_dir, colour_key=colour_key, **kwargs)
        # memories and results are written before a frame is handed out, so a killed
        # process loses at most the frame in flight; tracked results are not flushed to the
        # disk one by one (after a power cut, reloading tracks again the frames whose result
        # was lost, and encodes again a memory lost from a result kept). The user's clicks
        # and their answers are flushed.
        self.bank = MemoryBank(model, TensorStore(self.session_dir / "memory", ram_budget=64 << 20, durable=False,
                                                  disk_budget=MEMORY_DISK_BUDGET),
                               self.num_frames, recompute=self._recompute_memory)
        self.results = TensorStore(self.session_dir / "results", ram_budget=16 << 20, durable=False)
        self.prompt_store = TensorStore(self.session_dir / "prompts", ram_budget=16 << 20, durable=self.persistent)
        # each tracked frame's memory-conditioned embedding, so that a correction on it
        # does not run the memory attention again while its memories are unchanged
        self.conditioned = TensorStore(self.session_dir / "conditioned", ram_budget=32 << 20, durable=False,
                                       disk_budget=CONDITIONED_DISK_BUDGET, write_behind=True)
        self._objects: dict[int, TrackedObject] = {}
        self._lock = threading.RLock()
        self.started_afresh = False  # a session dropped for other footage or another model
        if self.persistent:
            self._keep_session_only_for_this_footage(colour_key, footage_key)
            self._load_session()
        if encode_in_background:
            self.encode_ahead(0)

    def encode_ahead(self, frame: int = 0) -> None:
        """Encode the frames not yet in the cache in a background thread, nearest `frame`
        first, until the cache's disk budget is full, so that clicks on them answer at once.
        Prompts and tracking go first; calling it again starts from another frame."""
        self.frames.encode_in_background(check_index(self.source, frame))

    # -- objects -------------------------------------------------------------------------

    @property
    @_locked
    def object_ids(self) -> list[int]:
        return list(self._objects)

    @_locked
    def prompted_frames(self, obj_id: int | None = None) -> list[int]:
        """Frame indices that carry a prompt for any object (or for `obj_id`)."""
        objects = self._objects.values() if obj_id is None else [self._object(obj_id)]
        return sorted({f for o in objects for f in list(o.prompts) + list(o.memory.cond)})

    @_locked
    def has_pending(self) -> bool:
        """Prompts whose answers have not yet entered the memory bank (the next propagate does it)."""
        return any(o.pending for o in self._objects.values())

    @_locked
    def answered_frames(self, obj_id: int) -> list[int]:
        """Frames where the object's prompt has its answer (tracked from or not yet)."""
        obj = self._object(obj_id)
        return sorted({*obj.memory.cond, *obj.pending})

    @_locked
    def pending_frames(self, obj_id: int) -> list[int]:
        """Frames where `obj_id` has a prompt not yet tracked from."""
        return sorted(self._object(obj_id).pending)

    @_locked
    def has_result(self, frame: int, obj_id: int) -> bool:
        """Whether the object has a result on the frame (without reading it)."""
        obj = self._object(obj_id)
        return obj.memory.get(frame) is not None or frame in obj.pending

    @_locked
    def was_tracked(self, frame: int, obj_id: int) -> bool:
        """Whether the frame was reached by tracking (or tracked from) for the object:
        a prompt there now is a correction."""
        return frame in self._object(obj_id).memory.reverse

    def remove_object(self, obj_id: int) -> None:
        with self._lock:
            obj = self._object(obj_id)
            self.bank.forget(obj.memory)
            for frame in list(obj.memory.reverse) + list(obj.pending) + list(obj.prompts):
                self.results.delete(result_key(obj_id, frame))
                self.results.delete(pending_key(obj_id, frame))
                self.conditioned.delete(f"cond-{obj_id}-{frame:07d}")
                self.prompt_store.delete(self._prompt_key(obj_id, frame))
            del self._objects[obj_id]
            self._save_object_order(list(self._objects))
            for frame in obj.prompts:
                self._unpin_if_unprompted(frame)

    def clear_prompt(self, frame: int, obj_id: int) -> None:
        """Take back what `obj_id` was given on `frame` since it was last tracked from.
        A prompt not yet tracked from leaves the frame as it was before: as tracking left
        it, or, on a frame already tracked from after an earlier prompt, with that
        prompt's result and memory. Otherwise the frame loses its prompt and its result
        (it is no longer tracked for the object; the next propagate or re-track over it
        fills it again). Other frames keep theirs."""
        with self._lock:
            obj = self._object(obj_id)
            frame = check_index(self.source, frame)
            if frame not in obj.prompts and frame not in obj.pending and frame not in obj.memory.cond:
                return  # nothing was given there: its tracked result stays
            self.results.delete(pending_key(obj_id, frame))
            was_pending = obj.pending.pop(frame, None) is not None
            if was_pending and frame in obj.memory.cond:
                return  # back to the prompt it was tracked from
            uncommitted_correction = was_pending and frame in obj.memory.tracked
            self._take_back_prompt(obj, frame)
            if not uncommitted_correction:
                self._forget_result(obj, frame)

    def _take_back_prompt(self, obj: TrackedObject, frame: int) -> None:
        """The frame's prompt for the object goes, from memory and from the session."""
        obj.prompts.pop(frame, None)
        self.prompt_store.delete(self._prompt_key(obj.memory.obj_id, frame))
        self._unpin_if_unprompted(frame)

    def _unpin_if_unprompted(self, frame: int) -> None:
        """A frame no object has a prompt on any more may leave the cache when it is full."""
        if not any(frame in o.prompts for o in self._objects.values()):
            self.frames.unpin(frame)

    def _result_lost(self, obj: TrackedObject, frame: int) -> LostResult:
        """A frame whose result is gone has no memory either: a tracked frame is tracked
        again by the next run; a prompted frame loses its prompt too (there is no answer to
        track from), to be prompted again. Returns the error to raise."""
        obj_id = obj.memory.obj_id
        if frame in obj.prompts or frame in obj.memory.cond or frame in obj.pending:
            obj.pending.pop(frame, None)
            self.results.delete(pending_key(obj_id, frame))
            self._take_back_prompt(obj, frame)
        self._forget_result(obj, frame)
        return LostResult(obj_id, frame, self.results.folder)

    def _stored_logits(self, obj: TrackedObject, frame: int) -> torch.Tensor:
        """The latest result's logits for a prompted frame (its answer, or what it was
        tracked from), on the model's device."""
        got = self._latest_result(obj.memory.obj_id, frame)
        if got is None:
            raise self._result_lost(obj, frame)
        return got["logits"].to(self.model.device)

    def _forget_result(self, obj: TrackedObject, frame: int) -> None:
        """The frame no longer has a result (nor a memory) for the object."""
        obj_id = obj.memory.obj_id
        if obj.memory.cond.pop(frame, None) is not None or obj.memory.tracked.pop(frame, None) is not None:
            self.bank.drop_spatial(obj.memory, frame)
        obj.memory.reverse.pop(frame, None)
        self.results.delete(result_key(obj_id, frame))
        self.conditioned.delete(f"cond-{obj_id}-{frame:07d}")

    def _object(self, obj_id: int) -> TrackedObject:
        try:
            return self._objects[obj_id]
        except KeyError:
            known = ", ".join(map(str, self._objects)) or "none yet"
            raise KeyError(f"Unknown object {obj_id!r} (objects: {known}); "
                           "add_prompt creates an object") from None

    # -- prompts -------------------------------------------------------------------------

    @torch.inference_mode()
    def add_prompt(self, frame: int, obj_id: int, points=None, labels=None, box=None, mask=None) -> np.ndarray:
        """Prompt `obj_id` on `frame` (creating the object if new) and return its logits
        on that frame, (H, W) float32 at plate resolution.

        points: N (x, y) plate pixels with labels (1 = object, 0 = not the object; all 1
        if left out); box: (x0, y0, x1, y1); or mask: an H x W plate-sized mask (nonzero =
        object). Points and box replace the frame's earlier clicks for this object; the
        previous answer on the frame is fed back to the model with them."""
        with self._lock:
            frame = check_index(self.source, frame)
            obj_id = _check_object_id(obj_id)
            prompt = self._make_prompt(points, labels, box, mask, frame)
            # the object and its prompt are kept only once the answer is there: a failed
            # prompt (an unreadable frame, a full disk) leaves the tracker as it was
            obj = self._objects.get(obj_id) or TrackedObject(ObjectMemory(obj_id))
            # (a tracked frame whose object has lost every prompt has nothing to correct)
            tracked_before = frame in obj.memory.reverse and bool(obj.memory.cond or obj.pending)
            reverse = obj.memory.reverse.get(frame, False)
            prev_logits = None
            if prompt.mask is None:
                prev = self._latest_result(obj_id, frame)
                if prev is not None:
                    prev_logits = prev["logits"].to(self.model.device).clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
            with self.frames.foreground():
                out, logits, _, _ = self._track_frame(obj, frame, prompt, is_init=not tracked_before,
                                                      reverse=reverse, prev_logits=prev_logits, encode_memory=False)
            answer_before = self.results.get(pending_key(obj_id, frame))
            try:
                self._save_prompt(obj_id, frame, prompt)
                self._save_result(obj, frame, logits, out, PENDING)
                if obj_id not in self._objects:
                    self._save_object_order([*self._objects, obj_id])
            except BaseException:
                self._restore_saved_prompt(obj, frame, answer_before)
                raise
            self._objects[obj_id] = obj
            obj.prompts[frame] = prompt
            obj.pending[frame] = out
            self.frames.pin(frame)
            return self._plate_logits(frame, {obj_id: logits})[obj_id]

    def _make_prompt(self, points, labels, box, mask, frame: int) -> Prompt:
        w, h = self.source.size
        size, dev = self.model.cfg.image_size, self.model.device
        if mask is not None:
            if points is not None or box is not None:
                raise ValueError("Give a mask, or points and/or a box, not both in one prompt")
            m = np.asarray(mask)
            if m.shape != (h, w):
                raise ValueError(f"The mask must be the plate's size, {w}x{h} (width x height); got "
                                 f"{m.shape[1] if m.ndim > 1 else '?'}x{m.shape[0]}")
            t = torch.from_numpy(m != 0).to(dev)[None, None]
            if (h, w) != (size, size):
                t = F.interpolate(t.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
                t = t >= 0.5
            return Prompt(mask=t)

        coords, labs = [], []
        if box is not None:
            b = np.asarray(box, dtype=np.float32)
            if b.shape != (4,):
                raise ValueError(f"box must be (x0, y0, x1, y1) in plate pixels; got {b.tolist()}")
            if not (b[2] > b[0] and b[3] > b[1]):
                raise ValueError(f"box {b.tolist()}: x1 must be right of x0 and y1 below y0")
            self._check_inside(b.reshape(2, 2), frame, "box corner")
            coords.append(b.reshape(2, 2))
            labs.append(np.array([BOX_TOP_LEFT, BOX_BOTTOM_RIGHT], np.int32))
        if points is not None and len(points) > 0:
            p = np.asarray(points, dtype=np.float32).reshape(-1, 2)
            lp = np.ones(len(p), np.int32) if labels is None else np.asarray(labels, dtype=np.int32).reshape(-1)
            if len(lp) != len(p):
                raise ValueError(f"{len(p)} points but {len(lp)} labels: give one label per point")
            if not np.isin(lp, (0, 1)).all():
                raise ValueError(f"point labels must be 1 (object) or 0 (not the object); got {lp.tolist()}")
            self._check_inside(p, frame, "point")
            coords.append(p)
            labs.append(lp)
        if not coords:
            raise ValueError("Empty prompt: give at least one point, a box or a mask")
        xy = torch.from_numpy(np.concatenate(coords)).to(dev)[None]
        return Prompt(coords=points_to_input(xy, (h, w), size),
                      labels=torch.from_numpy(np.concatenate(labs)).to(dev)[None])

    def _check_inside(self, xy: np.ndarray, frame: int, what: str) -> None:
        w, h = self.source.size
        for x, y in xy:
            if not (0 <= x <= w and 0 <= y <= h) or not np.isfinite([x, y]).all():
                raise ValueError(f"{what} ({x:g}, {y:g}) on frame index {frame} is outside the plate "
                                 f"({w}x{h} pixels; x from 0 to {w}, y from 0 to {h})")

    # -- propagation ---------------------------------------------------------------------

    def propagate(self, start: int | None = None, direction: str = "forward", end: int | None = None,
                  objects: list[int] | None = None, cancel: threading.Event | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """Track from `start` (default: the earliest prompted frame) towards `end`
        (inclusive; default: the end of the shot in that direction). direction:
        "forward", "backward" or "both" (forward from start, then backward from the frame
        before it).

        A generator: yields (frame index, {object id: logits H x W}) as each frame is
        done, so a caller can show progress, stop early (close the generator, or set
        `cancel`) and keep everything finished so far."""
        if direction not in ("forward", "backward", "both"):
            raise ValueError(f"direction must be 'forward', 'backward' or 'both'; got {direction!r}")
        if direction == "both" and end is not None:
            raise ValueError("end cannot be given with direction='both'")
        with self._lock:
            ids = self._tracking_objects(objects)
            # a bad request is refused before anything changes
            start = None if start is None else check_index(self.source, start)
            end = None if end is None else check_index(self.source, end)
            if start is None:
                start = min(f for i in ids for f in [*self._objects[i].memory.cond, *self._objects[i].pending])
            if end is not None and (end < start if direction == "forward" else end > start):
                raise ValueError(f"Tracking {direction} from frame index {start} never reaches frame index "
                                 f"{end}: swap them or change the direction")
            self._commit_pending(ids)
            spans = []
            if direction in ("forward", "both"):
                spans.append(self._span(start, self.num_frames - 1 if end is None else end, False, ids))
            if direction == "backward":
                # (the official predictor yields nothing going backward from frame 0; asked
                # to track frame 0 backward, this one does)
                spans.append(self._span(start, 0 if end is None else end, True, ids))
            if direction == "both" and start > 0:  # (the start frame was just done going forward)
                spans.append(self._span(start - 1, 0, True, ids))
        return self._run_spans(spans, cancel, progress)

    @staticmethod
    def _span(start: int, end: int, reverse: bool, ends: list[int] | dict[int, int]):
        """A run over frames `start`..`end` (inclusive) in one direction: (frames, reverse,
        {object id: the last frame it is tracked on})."""
        if not isinstance(ends, dict):
            ends = {i: end for i in ends}
        return range(start, end - 1, -1) if reverse else range(start, end + 1), reverse, ends

    def _run_spans(self, spans, cancel, progress):
        """Runs the spans, yielding each frame; returns True once all are done."""
        finished = False
        try:
            with self.frames.background_paused():
                try:
                    finished = yield from self._frame_by_frame(spans, cancel, progress)
                finally:
                    # the frames and features a run read are on disk when it ends, stopped or not
                    # (waited for before the background encoder resumes and keeps the writer busy)
                    self._flush(raise_errors=finished)
        finally:
            trim()  # what the heap kept for the next frame is given back
        return finished

    def _frame_by_frame(self, spans, cancel, progress):
        """Track the spans' frames one by one; True once all are done (False: cancelled)."""
        total = sum(len(frames) for frames, _, _ in spans)
        done = 0
        for frames, reverse, ends in spans:
            for k, frame in enumerate(frames):
                if cancel is not None and cancel.is_set():
                    return False
                if k + 1 < len(frames):
                    self.frames.prefetch(frames[k + 1])  # read while the network works on this one
                ids = [i for i, last in ends.items() if (frame >= last if reverse else frame <= last)]
                done_frame = self._propagate_frame(frame, ids, reverse)
                give_back_free_memory()  # (else a long shot's resident memory creeps up)
                yield frame, done_frame
                done += 1
                if progress is not None:
                    progress(done, total)
        return True

    def retrack(self, frame: int, cancel: threading.Event | None = None,
                progress: Callable[[int, int], None] | None = None):
        """After corrections on `frame`: re-track each corrected object from it in the
        direction it was tracked there (both, for a prompt tracked from both ways), up to
        its next prompted frame (or the shot's end). Only the corrected objects run;
        frames on the other side keep their results. Called again after a re-track was
        stopped, it goes on from the first frame that stop left without a result."""
        with self._lock:
            plan = self.retrack_spans(frame)
            corrected = [i for _, _, _, ids in plan for i in ids]
            self._commit_pending(corrected)
            spans = []
            for reverse in (False, True):
                entries = [(start, end, ids) for start, direction, end, ids in plan
                           if (direction == "backward") == reverse]
                if entries:
                    ends = {i: end for _, end, ids in entries for i in ids}
                    first = (max if reverse else min)(start for start, _, _ in entries)
                    last = min(ends.values()) if reverse else max(ends.values())
                    spans.append(self._span(first, last, reverse, ends))
        return self._retrack_run(frame, corrected, spans, cancel, progress)

    def _retrack_run(self, frame, ids, spans, cancel, progress):
        """The re-track's frames; once all are done, the frame owes its objects nothing."""
        if (yield from self._run_spans(spans, cancel, progress)):
            with self._lock:
                for i in ids:
                    if i in self._objects:
                        self._objects[i].retrack_directions.pop(frame, None)

    def retrack_spans(self, frame: int, objects: list[int] | None = None) -> list[tuple[int, str, int, list[int]]]:
        """What `retrack(frame)` runs: [(start, direction, end, objects)], one entry per
        direction and end (each corrected object runs to its own next prompted frame)."""
        with self._lock:
            frame = check_index(self.source, frame)
            ids = [i for i, o in self._objects.items() if frame in o.pending and (objects is None or i in objects)]
            groups = {} if ids else self._unfinished_retracks(frame, objects)
            if not ids and not groups:
                raise ValueError(f"No new prompt on frame index {frame} to re-track from")
            for i in ids:
                directions = self._directions_from(self._objects[i], frame)
                for reverse in directions:
                    # (going both ways, the frame itself is handed out going forward)
                    start = frame - 1 if reverse and False in directions else frame
                    key = ("backward" if reverse else "forward", self._retrack_end(i, frame, reverse), start)
                    groups.setdefault(key, []).append(i)
        in_run_order = sorted(groups.items(), key=lambda g: (g[0][0] != "forward", g[0][1:]))  # (forward first)
        return [(start, direction, end, group) for (direction, end, start), group in in_run_order]

    def _unfinished_retracks(self, frame: int, objects: list[int] | None) -> dict[tuple[str, int, int], list[int]]:
        """Re-tracks from a prompted frame that were stopped: {(direction, end, first frame
        without a result): objects}."""
        groups: dict[tuple[str, int, int], list[int]] = {}
        for i, obj in self._objects.items():
            if frame not in obj.memory.cond or (objects is not None and i not in objects):
                continue
            for reverse in obj.retrack_directions.get(frame) or self._directions_from(obj, frame):
                end = self.next_prompted(i, frame, reverse)
                beyond = range(frame - 1, end - 1, -1) if reverse else range(frame + 1, end + 1)
                missing = next((f for f in beyond if f not in obj.memory.reverse), None)
                if missing is not None:
                    groups.setdefault(("backward" if reverse else "forward", end, missing), []).append(i)
        return groups

    @staticmethod
    def _directions_from(obj: TrackedObject, frame: int) -> list[bool]:
        """Which ways (reverse or not) tracking went on from a frame: towards a neighbour
        tracked away from it (both ways from a prompt tracked in both directions), or else
        the way the frame itself was tracked."""
        away = [reverse for reverse, neighbour in ((False, frame + 1), (True, frame - 1))
                if neighbour in obj.memory.tracked and obj.memory.reverse.get(neighbour) == reverse]
        return away or [obj.memory.reverse.get(frame, False)]

    def _retrack_end(self, obj_id: int, frame: int, reverse: bool) -> int:
        """Where a re-track from `frame` ends: the next prompted frame, or beyond it while
        that one holds a correction too (the run commits it, and what was tracked from it
        in this direction goes)."""
        obj = self._objects[obj_id]
        end = self.next_prompted(obj_id, frame, reverse)
        while end in obj.pending and end in obj.memory.reverse and reverse in self._directions_from(obj, end):
            beyond = self.next_prompted(obj_id, end, reverse)
            if beyond == end:  # (the shot's end)
                break
            end = beyond
        return end

    @_locked
    def next_prompted(self, obj_id: int, frame: int, reverse: bool) -> int:
        """The object's nearest prompted frame beyond `frame` in a direction (or the shot's end)."""
        obj = self._object(obj_id)
        later = [f for f in [*obj.memory.cond, *obj.pending] if (f < frame if reverse else f > frame)]
        if not later:
            return 0 if reverse else self.num_frames - 1
        return max(later) if reverse else min(later)

    def _tracking_objects(self, objects: list[int] | None) -> list[int]:
        if objects is None:  # every object that has something to be tracked from
            ids = [i for i, o in self._objects.items() if o.memory.cond or o.pending]
        else:
            ids = list(dict.fromkeys(objects))  # (each once)
        if not ids:
            raise ValueError("No object has a prompt to track from: prompt an object first (add_prompt)")
        for i in ids:
            obj = self._object(i)
            if not obj.memory.cond and not obj.pending:
                raise ValueError(f"Object {i} has no prompt on any frame: prompt it first")
        return ids

    @torch.inference_mode()
    def _commit_pending(self, ids: list[int]) -> None:
        """The objects' prompted frames' answers enter the memory bank as conditioning
        frames, their memory encoded from exactly the mask the user saw. Results tracked
        from a corrected frame are out of date: they are dropped, so that a run stopped
        before it re-tracked them leaves them to be tracked again rather than showing the
        old masks. Other objects' prompts wait for a run of their own."""
        for obj in (self._objects[i] for i in ids):
            stale = {frame: self._directions_from(obj, frame) for frame in obj.pending if frame in obj.memory.reverse}
            for frame in obj.pending:  # (a frame not tracked before owes no re-track)
                obj.retrack_directions.pop(frame, None)
            obj.retrack_directions.update(stale)
            for frame, reverse in ((f, r) for f, directions in stale.items() for r in directions):
                self._drop_tracked_beyond(obj, frame, reverse)
            for frame, out in sorted(obj.pending.items()):
                logits = self._stored_logits(obj, frame)
                memory = self._memory_from(frame, logits, out, binarize=True)
                self.bank.put_spatial(obj.memory, frame, memory, out, prompted=True)
                out.has_spatial = True
                obj.memory.cond[frame] = out
                obj.memory.tracked.pop(frame, None)
                self._save_result(obj, frame, logits, out, CONDITIONING)
                self.results.delete(pending_key(obj.memory.obj_id, frame))
            obj.pending.clear()

    def _drop_tracked_beyond(self, obj: TrackedObject, frame: int, reverse: bool) -> None:
        """Forget the results tracked from `frame` onwards in a direction, up to the next
        prompted frame."""
        end = self.next_prompted(obj.memory.obj_id, frame, reverse)
        beyond = range(frame - 1, end - 1, -1) if reverse else range(frame + 1, end + 1)
        for f in beyond:
            if f in obj.memory.tracked and f not in obj.pending:
                self._forget_result(obj, f)

    @torch.inference_mode()
    def _propagate_frame(self, frame: int, ids: list[int], reverse: bool) -> dict[int, np.ndarray]:
        with self._lock:
            per_object, tracked = {}, []
            for obj_id in ids:
                obj = self._objects.get(obj_id)
                if obj is None:
                    continue  # removed while this run was under way
                if frame in obj.pending:  # prompted while this run was under way: the answer stands
                    logits = self._stored_logits(obj, frame)
                elif frame in obj.memory.cond:
                    logits = self._stored_logits(obj, frame)
                    if obj.memory.reverse.get(frame) != reverse:
                        obj.memory.reverse[frame] = reverse
                        self._save_result(obj, frame, logits, obj.memory.cond[frame], CONDITIONING)
                elif not obj.memory.cond:
                    # its prompts were taken back, or it was removed and prompted afresh under
                    # this id, while this run was under way: nothing to track from until the
                    # next run commits its new prompts
                    continue
                else:
                    with self.frames.foreground():
                        out, logits, memory, before_fill = self._track_frame(
                            obj, frame, None, is_init=False, reverse=reverse, prev_logits=None, encode_memory=True)
                    tracked.append((obj, out, logits, memory, before_fill))
                per_object[obj_id] = logits
            if not per_object:
                return {}
            # every object's work is queued before anything waits for it: on a GPU the
            # first write below waits once for the whole frame, not once per object
            order, plate = self._plate_logits_on_device(frame, per_object)
            for obj, out, logits, memory, before_fill in tracked:
                # (if this fails, the frame is as it was)
                self.bank.put_spatial(obj.memory, frame, memory, out, prompted=False)
                obj.memory.tracked[frame] = out
                obj.memory.reverse[frame] = reverse
                try:
                    self._save_result(obj, frame, logits, out, TRACKED, before_fill)
                except BaseException:
                    # the memory is new, the result is not: the frame keeps neither, and is
                    # tracked again rather than shown from an older run
                    with contextlib.suppress(OSError):
                        self._forget_result(obj, frame)
                    raise
            return self._handed_out(order, plate, per_object)

    # -- one frame, one object -----------------------------------------------------------

    def _track_frame(self, obj: TrackedObject, frame: int, prompt: Prompt | None, *, is_init: bool,
                     reverse: bool, prev_logits, encode_memory: bool):
        """Run the network for one object on one frame; returns its memory record, its
        low-res logits (1, 1, 256, 256) after hole filling, with `encode_memory` its
        spatial memory, for the caller to store (else None), and the logits before hole
        filling (the memory is made from those)."""
        m = self.model
        feats = self.frames.features(frame)
        with m.precision():
            if prompt is not None and prompt.mask is not None:
                heads = m.mask_as_output(feats.embedding, feats.high_res, prompt.mask)
            else:
                pix = self._condition(obj, frame, feats, is_init, reverse)
                num_points = 0 if prompt is None else prompt.num_points
                heads = m.sam_heads(pix, feats.high_res,
                                    None if prompt is None else prompt.coords,
                                    None if prompt is None else prompt.labels,
                                    prev_logits, multimask=num_points <= 1)
            record = FrameMemory(obj_ptr=heads.obj_ptr.float(), object_score=heads.object_score.float())
            memory = None
            if encode_memory:
                memory, _ = m.encode_memory(feats.embedding, heads.logits_high_res, heads.object_score,
                                            binarize=prompt is not None and prompt.mask is None)
                record.has_spatial = True
        before_fill = heads.logits.float()
        return record, fill_small_holes(before_fill, self.fill_hole_area), memory, before_fill

    def _memory_from(self, frame: int, logits: torch.Tensor, record: FrameMemory, binarize: bool) -> torch.Tensor:
        """A frame's spatial memory from its low-res logits: binarized for a prompted frame
        (exactly the mask the user saw), as they are for a tracked one."""
        m = self.model
        high_res = m.upscale_to_input(logits.to(m.device))
        with self.frames.foreground():
            feats = self.frames.features(frame)
            with m.precision():
                memory, _ = m.encode_memory(feats.embedding, high_res, record.object_score, binarize=binarize)
        return memory

    def _recompute_memory(self, memory: ObjectMemory, frame: int, record: FrameMemory) -> torch.Tensor:
        """A spatial memory gone from the bank's store (evicted, damaged, or left by an older
        result), encoded again from its saved result as it was made: a prompted frame's from
        its answer, a tracked frame's from its logits before hole filling."""
        entry = self.results.get(result_key(memory.obj_id, frame))
        if entry is None or "meta" not in entry or int(entry["meta"][1]) != record.version:
            raise LostResult(memory.obj_id, frame, self.results.folder)
        prompted = frame in memory.cond
        logits = entry["logits"] if prompted else unfilled(entry["logits"], entry)
        return self._memory_from(frame, logits, record, binarize=prompted)

    def _condition(self, obj: TrackedObject, frame: int, feats, is_init: bool, reverse: bool) -> torch.Tensor:
        """The frame's embedding conditioned on the object's memory bank."""
        m = self.model
        selection = None if is_init else self.bank.select(obj.memory, frame, reverse)
        if selection is None or not (selection.spatial or selection.pointers):
            # a first prompt stands alone: the "no memory" embedding takes memory's place; so
            # does a click on a frame tracked from a prompt since taken back, with no memory
            # of that object left within reach
            return feats.embedding + m.no_mem_embed.reshape(1, -1, 1, 1)
        signature = _signature_tensor(selection.signature, reverse, self.frames.features_id)
        key = f"cond-{obj.memory.obj_id}-{frame:07d}"
        stored = self.conditioned.get(key)
        if stored is not None and torch.equal(stored["signature"], signature):
            return stored["embedding"].to(m.device)
        try:
            memory, memory_pos, num_ptr = self.bank.assemble(obj.memory, selection)
        except LostResult as e:
            raise self._result_lost(obj, e.frame) from None
        # kept (and used) in the working precision, so a reused one is the same as a new one
        pix = m.memory_attention(feats.embedding, feats.pos[-1], memory, memory_pos, num_ptr).to(m.dtype)
        self.conditioned.put(key, {"signature": signature, "embedding": pix})
        return pix

    # -- results -------------------------------------------------------------------------

    @staticmethod
    def _prompt_key(obj_id: int, frame: int) -> str:
        return f"prompt-{obj_id}-{frame:07d}"

    def _latest_result(self, obj_id: int, frame: int) -> dict | None:
        return latest_result(self.results, obj_id, frame)

    def _save_result(self, obj: TrackedObject, frame: int, logits: torch.Tensor, record: FrameMemory,
                     kind: int, before_fill: torch.Tensor | None = None) -> None:
        """A frame's result with what the memory bank needs of it, so a session reloads
        and its spatial memory can be made again (`before_fill`: a tracked frame's logits
        before hole filling). A prompt's answer is flushed to the disk, as its clicks are: it
        cannot be computed again as it was (tracked results can, by tracking again)."""
        reverse = obj.memory.reverse.get(frame)
        meta = [kind, record.version, int(record.has_spatial), -1 if reverse is None else int(reverse)]
        key = (pending_key if kind == PENDING else result_key)(obj.memory.obj_id, frame)
        self.results.put(key, {
            "logits": logits.float(), "score": record.object_score.float(), "obj_ptr": record.obj_ptr.float(),
            "meta": torch.tensor(meta, dtype=torch.int64),
            **({} if before_fill is None else filled_pixels(before_fill, logits))},
            durable=self.persistent and kind != TRACKED)

    def _save_prompt(self, obj_id: int, frame: int, prompt: Prompt) -> None:
        if not self.persistent:
            return
        entry = {k: v for k, v in (("coords", prompt.coords), ("labels", prompt.labels),
                                   ("mask", None if prompt.mask is None else prompt.mask.bool())) if v is not None}
        self.prompt_store.put(self._prompt_key(obj_id, frame), entry)

    def _save_object_order(self, ids: list[int]) -> None:
        """The objects in the order they were added (a tie in non-overlap goes to the
        first): a reloaded session has them in that order, prompts or not."""
        if self.persistent:
            self.prompt_store.put(OBJECT_ORDER_KEY, {"ids": torch.tensor(ids, dtype=torch.int64)})

    def _restore_saved_prompt(self, obj: TrackedObject, frame: int, answer_before: dict | None) -> None:
        """After a prompt that failed: the session keeps the prompt the frame had and its
        answer (if it can): a reloaded session, `logits` and the next commit see those."""
        old, pending = obj.prompts.get(frame), pending_key(obj.memory.obj_id, frame)
        try:
            if old is None:
                self.prompt_store.delete(self._prompt_key(obj.memory.obj_id, frame))
            else:
                self._save_prompt(obj.memory.obj_id, frame, old)
            if answer_before is None:
                self.results.delete(pending)
            else:
                self.results.put(pending, answer_before)
        except OSError as e:
            log.warning("%s", e)

    def _keep_session_only_for_this_footage(self, colour_key: str, footage_key: str) -> None:
        """A session holds prompts, memories and results by frame index, made on the
        footage as it was then. Footage whose frames changed since (handles added, frames
        cut, another size or other colour settings, other pictures) starts the session
        afresh: its old results would show on the wrong frames. Footage moved elsewhere,
        or copied, keeps the session."""
        path = self.session_dir / FOOTAGE_FILE
        cfg = self.model.cfg
        now = footage_record(self.source, colour_key, footage_key, model_key(cfg.name, cfg.image_size,
                                                                             weights_key(self.model)))
        before = recorded_footage(self.session_dir)
        damaged = before == {}
        if before and not footage_key:  # (footage that could not be read just now: not other footage)
            now["footage"] = before.get("footage", "")
        if same_footage(before, now):
            return
        if before is not None:
            if damaged:
                log.warning("The session in %s cannot tell what footage it was made on (%s is damaged): its "
                            "prompts, memories and results are dropped, to be made again.", self.session_dir, path)
            else:
                log.warning("The footage or the model of the session in %s changed since it was saved (frames, "
                            "size, colour, pictures, model or its weights): its prompts, memories and results are "
                            "dropped.", self.session_dir)
            for store in (self.results, self.bank.store, self.prompt_store, self.conditioned):
                store.clear()
            self.started_afresh = True
        try:
            write_text_atomically(path, json.dumps(now))
        except OSError as e:
            raise CacheError(e.errno, f"Cannot write to the session folder {self.session_dir}: {e.strerror}. "
                                      "Free some space or make it writable.") from None

    def _load_session(self) -> None:
        """Rebuild objects, prompts and the memory bank from a session folder."""
        dev = self.model.device
        # (a prompt's answer, kept apart until committed, comes after the frame's result)
        for key in sorted(self.results.keys(), key=lambda k: (k.startswith("pend-"), k)):
            _, obj_id, frame = parse_key(key)
            entry = self.results.get(key)
            if entry is None or "meta" not in entry:
                continue  # damaged: that frame is simply not tracked
            # (a spatial memory missing from the store is encoded again from this result when needed)
            kind, version, has_spatial, reverse = entry["meta"].tolist()
            record = FrameMemory(obj_ptr=entry["obj_ptr"].to(dev), object_score=entry["score"].to(dev),
                                 has_spatial=bool(has_spatial), version=version)
            obj = self._objects.setdefault(obj_id, TrackedObject(ObjectMemory(obj_id)))
            {PENDING: obj.pending, CONDITIONING: obj.memory.cond, TRACKED: obj.memory.tracked}[kind][frame] = record
            if kind == CONDITIONING:
                self.bank.store.pin(self.bank.key(obj_id, frame))
            if reverse >= 0:
                obj.memory.reverse[frame] = bool(reverse)
        for key in self.prompt_store.keys():
            if not key.startswith("prompt-"):
                continue
            _, obj_id, frame = key.split("-")
            entry = self.prompt_store.get(key)
            obj = self._objects.get(int(obj_id))
            if entry is None or obj is None:
                continue
            mask = entry.get("mask")
            obj.prompts[int(frame)] = Prompt(coords=_on(entry.get("coords"), dev), labels=_on(entry.get("labels"), dev),
                                             mask=None if mask is None else mask.bool().to(dev))
            self.frames.pin(int(frame))
        saved = self.prompt_store.get(OBJECT_ORDER_KEY)
        order = [] if saved is None else saved["ids"].tolist()
        for obj_id in order:  # (an object whose prompts were all taken back is still there)
            self._objects.setdefault(obj_id, TrackedObject(ObjectMemory(obj_id)))
        self._objects = {i: self._objects[i] for i in [*order, *sorted(set(self._objects) - set(order))]}

    @_locked
    def logits(self, frame: int, obj_id: int) -> np.ndarray | None:
        """The latest result for an object on a frame (H x W float32), or None if the
        frame has not been tracked for it. With non-overlap, the other objects' results
        on the frame have been taken into account, as in what propagate yields."""
        self._object(obj_id)
        frame = check_index(self.source, frame)
        got = self._latest_result(obj_id, frame)
        return None if got is None else self._plate_logits(frame, {obj_id: got["logits"]})[obj_id]

    @_locked
    def object_score(self, frame: int, obj_id: int) -> float | None:
        """The model's logit that the object is visible on the frame (> 0: visible)."""
        self._object(obj_id)
        got = self._latest_result(obj_id, check_index(self.source, frame))
        return None if got is None else float(got["score"].reshape(-1)[0])

    def _plate_logits(self, frame: int, per_object: dict[int, torch.Tensor]) -> dict[int, np.ndarray]:
        """Low-res logits (1, 1, 256, 256) of some objects on a frame -> plate-sized ones.
        With non-overlap, every other object's result on the frame takes part too."""
        return self._handed_out(*self._plate_logits_on_device(frame, per_object), per_object)

    def _plate_logits_on_device(self, frame: int, per_object: dict[int, torch.Tensor]):
        """(object ids, their plate-sized logits (N, 1, H, W) where the model runs)."""
        low_res = dict(per_object)
        if self.non_overlap:
            for other in (i for i in self._objects if i not in per_object):
                got = self._latest_result(other, frame)
                if got is not None:
                    low_res[other] = got["logits"]
        # in the objects' order, whoever asks: a tie goes to the object added first
        order = [i for i in self._objects if i in low_res] + [i for i in low_res if i not in self._objects]
        device = next(iter(per_object.values())).device
        plate = to_plate(torch.cat([low_res[i].to(device) for i in order]), self.source.size)
        if self.non_overlap:
            plate = keep_top_object(plate)
        return order, plate

    @staticmethod
    def _handed_out(order: list[int], plate: torch.Tensor, per_object) -> dict[int, np.ndarray]:
        plate = plate.cpu()  # one copy off a GPU for all objects
        return {i: plate[order.index(i), 0].numpy() for i in per_object}

    # -- life cycle ----------------------------------------------------------------------

    def _flush(self, raise_errors: bool = True) -> None:
        """Wait until the frames, features and conditioned embeddings written behind are on
        disk; a write error is raised (or, when a run was stopped anyway, logged)."""
        try:
            flush_all((self.frames, self.conditioned))
        except CacheError as e:
            if raise_errors:
                raise
            log.warning("%s", e)

    def close(self) -> None:
        """Stop background work and delete this tracker's session data (the frame and
        feature cache stays for the next run on the shot)."""
        self.frames.stop_background()
        self._flush(raise_errors=False)  # (a cache entry that did not reach the disk is computed again)
        self.conditioned.close()
        self.frames.close()
        self._remove_temporary()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

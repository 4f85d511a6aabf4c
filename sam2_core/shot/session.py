"""ShotSession: a shot open for work, in the user's terms (frame numbers, object names).

The command line's shot commands and the service that hosts talk to both drive a shot
through this one class: objects, prompts that accumulate like clicks in a roto tool,
undo, tracking plans that re-track only what a correction changes, and export.
Everything it does is recorded in the shot folder as it happens. ShotResults, the part
of it that reads and exports the tracking results, also opens a shot without the model.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import math
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..mattes.cleanup import Cleanup
from ..media.cv_files import read_image, write_image
from .manifest import ManifestError, ObjectRecord, PromptRecord
from .shot import DISPLAY_FOLDER, WORKING_FOLDERS, Shot

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


class SessionError(ValueError):
    """A request the user can fix (unknown object, frame outside the shot, ...)."""


class ExportRefused(SessionError):
    """An export folder that would put files in the footage's own folder."""


class CheckpointMissing(SessionError):
    """The shot's own checkpoint file (not an official download) is not where it was."""


def refuse_footage_folder(folder: str | Path, source: str | Path, out: str | Path | None = None) -> None:
    """ExportRefused if `folder` (where an export to `out` writes) is the folder of the footage
    `source` (a video, a frame, a sequence pattern or a folder of frames)."""
    source = Path(source)
    footage = Path(os.path.realpath(source if source.is_dir() else source.parent))
    # (samefile: on Windows and macOS plates/Ball is the folder plates/ball)
    same = Path(folder).is_dir() and footage.is_dir() and os.path.samefile(folder, footage)
    if Path(os.path.realpath(folder)) == footage or same:
        raise ExportRefused(f"Exporting to {out or folder} would put files in the footage's folder {footage}: mattes "
                            "never go beside the plates. Choose another folder (a new one inside it is fine).")


@dataclass
class Span:
    """One run of the tracker: from `start` in `direction` to `end` (indices), these objects."""

    start: int
    direction: str
    end: int
    objects: list[int]

    def __len__(self) -> int:
        return abs(self.end - self.start) + 1


def _remove_new_entries(folder: Path, before: set[Path] | None) -> None:
    """Delete what is in `folder` now but was not in `before` (None: the folder is new)."""
    for entry in set(folder.iterdir()) - (before or set()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    if before is None:
        with contextlib.suppress(OSError):  # never hide the error that brought us here
            folder.rmdir()


class ShotResults:
    """A shot and its tracking results as they are on disk, in the user's terms: enough to
    look at and export them. `open` reads them without the model (no weights needed,
    nothing downloaded); ShotSession adds the model, for prompts and tracking."""

    def __init__(self, shot: Shot, tracker):
        self.shot = shot
        self.tracker = tracker  # a VideoTracker, or the session's results read without the model
        self.source = shot.source
        self.numbers = list(self.source.frame_numbers)

    @classmethod
    def open(cls, folder: str | Path, *, moved_to: str | Path | None = None) -> ShotResults | None:
        """The shot with its tracking results read without the model; None where they need
        the model first (the footage, its colour settings or the shot's model changed since
        they were made, or a prompt's answer was lost): ShotSession.open sorts that out.
        `moved_to`: as for ShotSession.open."""
        shot = Shot.open(folder, moved_to)
        try:
            results = shot.results()
            if results is not None:
                opened = cls(shot, results)
                if next(opened._answers_lost(), None) is None:
                    return opened
        except BaseException:
            shot.close()
            raise
        shot.close()
        return None

    # -- frames and objects --------------------------------------------------------------

    def index(self, frame_number: int) -> int:
        """The source index of a frame number; a clear error for one outside the shot."""
        try:
            if isinstance(frame_number, bool) or int(frame_number) != frame_number:
                raise ValueError  # (frame 1001.5 is not frame 1001)
            return self.numbers.index(int(frame_number))
        except (ValueError, TypeError):
            raise SessionError(f"Frame {frame_number} is not in the shot (frames {self.numbers[0]}-"
                               f"{self.numbers[-1]}).") from None

    @property
    def objects(self) -> list[ObjectRecord]:
        return list(self.shot.manifest.objects)

    def object(self, name: str) -> ObjectRecord:
        wanted = name.strip() if isinstance(name, str) else name  # (as add_object keeps names)
        for o in self.shot.manifest.objects:
            if o.name == wanted:
                return o
        known = ", ".join(o.name for o in self.shot.manifest.objects) or "none yet"
        raise SessionError(f"No object {name!r} in the shot (objects: {known}).")

    def _answers_lost(self) -> Iterator[tuple[ObjectRecord, int, list[PromptRecord], int]]:
        """The prompted frames whose answer the tracker lacks (damaged on disk, or from
        before answers were flushed): (object, frame index, the frame's prompts, how many of
        them the answer the tracker still has took in)."""
        for record in self.shot.manifest.objects:
            known = record.id in self.tracker.object_ids
            answered = set(self.tracker.answered_frames(record.id)) if known else set()
            waiting = set(self.tracker.pending_frames(record.id)) if known else set()
            for frame in sorted({p.frame for p in record.prompts}):
                try:
                    index = self.index(frame)
                except SessionError:  # (the footage lost that frame since: the prompt waits in the shot)
                    log.warning("Object %r has a prompt on frame %d, which the footage no longer has; it is "
                                "kept in the shot but not used.", record.name, frame)
                    continue
                prompts = [p for p in record.prompts if p.frame == frame]
                given = sum(p.tracked for p in prompts) if index in answered else 0
                if index not in waiting and given != len(prompts):
                    yield record, index, prompts, given

    # -- results and export --------------------------------------------------------------

    def tracking_done(self, ids: list[int] | None = None) -> bool:
        """Some object, every frame has a result and no correction waits to be tracked from."""
        return bool(self.tracker.object_ids) and not self.tracker.has_pending() and self._every_frame_has_results(ids)

    def _every_frame_has_results(self, ids: list[int] | None = None) -> bool:
        ids = self.tracker.object_ids if ids is None else ids
        return all(self.tracker.has_result(f, i) for i in ids for f in range(self.tracker.num_frames))

    def logits(self, name: str, frame: int) -> np.ndarray | None:
        record, index = self.object(name), self.index(frame)  # (a frame outside the shot is an error)
        if record.id not in self.tracker.object_ids:
            return None
        return self.tracker.logits(index, record.id)

    def object_score(self, name: str, frame: int) -> float | None:
        record, index = self.object(name), self.index(frame)  # (a frame outside the shot is an error)
        if record.id not in self.tracker.object_ids:
            return None
        return self.tracker.object_score(index, record.id)

    def set_cleanup(self, name: str, settings: dict) -> Cleanup:
        record = self.object(name)
        try:
            cleanup = Cleanup.from_dict({**self._kept_cleanup(record).to_dict(), **settings})
        except (TypeError, ValueError) as e:
            raise SessionError(f"Object {name!r}: {e}") from None
        record.cleanup = {k: v for k, v in cleanup.to_dict().items() if v}
        self.shot.save()
        return cleanup

    @staticmethod
    def _kept_cleanup(record: ObjectRecord) -> Cleanup:
        """The object's clean-up as the shot keeps it; values from before the limits were set
        are brought within them, and the artist told."""
        cleanup = Cleanup.from_dict(record.cleanup, clamp=True)
        changed = {k: v for k, v in cleanup.to_dict().items() if k in record.cleanup and v != record.cleanup[k]}
        if changed:
            log.warning("Object %r: clean-up %s brought within the limits (kept from an earlier sam2roto).",
                        record.name, ", ".join(f"{k} {record.cleanup[k]:g} -> {v:g}" for k, v in changed.items()))
        return cleanup

    def export(self, out: str | Path, fmt: str = "png16", *, shapes: bool = False,
               shape_tolerance: float | None = None, force: bool = False,
               progress: Progress | None = None) -> dict:
        """Write every frame's mattes (each object's clean-up applied) and, with `shapes`,
        the vector shapes. Runs from the results on disk: the model is not used. A frame
        not tracked yet gets an empty matte; the answer's "complete" is false then, or
        while a correction waits to be tracked from."""
        from ..mattes.export import FORMATS, export, matte_files, write_shapes, writer_for
        from ..mattes.writers import prepare_output_dir

        if fmt not in FORMATS:
            raise SessionError(f"Unknown matte format {fmt!r}; choose one of {', '.join(FORMATS)}.")
        if shape_tolerance is not None and not (math.isfinite(shape_tolerance) and shape_tolerance >= 0):
            raise SessionError(f"The shape tolerance is pixels, 0 or more; got {shape_tolerance!r}.")
        records = [o for o in self.objects if o.id in self.tracker.object_ids]
        if not records:
            raise SessionError("Nothing to export: no object has been prompted yet.")
        out = Path(out)
        objects = {o.id: o.name for o in records}
        self.check_export_folder(out, fmt)
        prepare_output_dir(out, force=force, ignore=(self.shot.folder,))
        cleanup = {o.id: self._kept_cleanup(o) for o in records if o.cleanup}
        frames = export(self.tracker, objects, writer_for(fmt, out, self.source), cleanup=cleanup,
                        progress=progress)
        shape_files = write_shapes(self.tracker, objects, out, key_tolerance=shape_tolerance,
                                   cleanup=cleanup) if shapes else {}
        # (an export before tracking is done is allowed: the host says what is missing)
        complete = self.tracking_done(list(objects))
        result = {"folder": str(out.resolve()), "format": fmt, "frames": frames,
                  "mattes": {n: matte_files(fmt, out.resolve(), n) for n in objects.values()},
                  "shapes": {n: str(p.resolve()) for n, p in shape_files.items()}, "complete": complete,
                  # objects with no prompt the tracker can use (e.g. only on frames the footage lost)
                  "left_out": [o.name for o in self.objects if o.id not in objects and o.prompts]}
        self.shot.manifest.exports.append({k: result[k] for k in ("folder", "format", "frames")})
        self.shot.save()
        return result

    def check_export_folder(self, out: str | Path, fmt: str = "png16") -> None:
        """ExportRefused if an export to `out` would put files in the footage's own folder:
        beside the plates, or over them (an export folder that holds the footage's, with an
        object named as that folder). A new folder inside it is fine, as Blender keeps its
        proxies. ValueError for what else the export would refuse once it writes (names
        that become the same file names; FFV1 for non-square pixels). (Hosts check before
        a long track, not only at the export after it.)"""
        from ..mattes.export import check_export, matte_files

        check_export(fmt, self.source, [o.name for o in self.objects])
        out = Path(out)
        shot = Path(os.path.realpath(self.shot.folder))
        working = [shot / part for part in WORKING_FOLDERS]
        for folder in [out, *(Path(matte_files(fmt, out, o.name)).parent for o in self.objects)]:
            refuse_footage_folder(folder, self.shot.source_path, out)
            real = Path(os.path.realpath(folder))
            # (a new folder inside the shot's is fine, as Blender's shots keep their mattes)
            if real == shot or any(real == w or w in real.parents for w in working):
                raise ExportRefused(f"Exporting to {out} would mix mattes with the shot's own files in {shot}: "
                                    "choose another folder (a new one inside it is fine), or rename the object "
                                    "named as that folder.")

    def info(self) -> dict:
        return self.shot.info()

    def object_info(self, record: ObjectRecord) -> dict:
        return self.shot.object_info(record)

    def close(self) -> None:
        try:
            self.tracker.close()
        finally:
            self.shot.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ShotSession(ShotResults):
    """A shot open with its model: objects, prompts, undo and tracking besides the results."""

    def __init__(self, shot: Shot, model):
        super().__init__(shot, shot.tracker(model))
        self.model = model
        self._give_lost_prompts_again()
        if shot.manifest.tracked and not self._every_frame_has_results():
            shot.manifest.tracked = False  # results lost in a power cut: tracking fills them in again
        self._undo: list[tuple[int, int, list[PromptRecord]]] = []  # (object id, frame number, prompts before)

    def _give_lost_prompts_again(self) -> None:
        """The tracker can lack a prompt's answer that the shot lists: one damaged on disk, or
        from before answers were flushed. Those frames get their prompts again, one by one as
        they were given, so the answers are as before: after the prompts the tracker tracked
        from, if it still has that, or all of them. The shot then waits to be tracked."""
        for record, index, prompts, given in list(self._answers_lost()):
            if not self.tracker.started_afresh:  # (else the tracker said why: other footage or model)
                log.warning("Object %r on frame %d lost its answer (damaged or deleted in %s); its prompts are "
                            "given again: track the shot again.", record.name, self.numbers[index],
                            self.shot.session_dir)
            try:
                self._replay(record, index, prompts, given=given)
            except (OSError, ValueError) as e:  # (the shot still opens; tracking will say what is wrong)
                log.warning("Object %r, frame %d: the prompts could not be given again: %s",
                            record.name, self.numbers[index], e)
                continue
            if not given:  # (all of them wait again to be tracked from)
                for p in prompts:
                    p.tracked = False
            self.shot.manifest.tracked = False
            self.shot.save()
        if self.tracker.started_afresh and any(o.prompts for o in self.shot.manifest.objects):
            log.warning("The shot's prompts are given again on the footage as it is now: track the shot again.")

    @classmethod
    def create(cls, folder: str | Path, source: str | Path, *, colour: dict | None = None,
               model_name: str | None = None, checkpoint: str | Path | None = None, device: str = "auto",
               dtype: str = "float32", image_size: int | None = None, on_download=None,
               missing_frames: str = "error") -> ShotSession:
        """on_download: see `load_model`: a first use of an official model downloads it.
        missing_frames: a gap in a sequence is an error, or "hold" (the previous frame stands in)."""
        from ..model.configs import DEFAULT_MODEL

        name = model_name or DEFAULT_MODEL
        model_info = {"name": name, "checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None,
                      "dtype": dtype, "image_size": image_size}
        folder = Path(folder)
        before = set(folder.iterdir()) if folder.is_dir() else None
        shot = Shot.create(folder, source, colour=colour, model=model_info, missing_frames=missing_frames)
        try:
            return cls._with_model(shot, device, on_download)
        except BaseException:
            # a shot whose model cannot load (weights not there yet, a bad setting) would block
            # the next try in this folder: take back what was made, leave what was there
            _remove_new_entries(folder, before)
            raise

    @classmethod
    def open(cls, folder: str | Path, *, device: str = "auto", on_download=None,
             moved_to: str | Path | None = None, checkpoint: str | Path | None = None,
             other_weights: bool = False) -> ShotSession:
        """`moved_to`: where the footage is now, if it is no longer where the shot recorded it;
        `checkpoint`: where the shot's own checkpoint file is now (one with other weights than
        the shot was tracked with is refused, unless `other_weights`: see Shot.relink_checkpoint)."""
        shot = Shot.open(folder, moved_to)
        try:
            if checkpoint is not None:
                shot.relink_checkpoint(checkpoint, other_weights=other_weights)
            recorded = shot.manifest.model.get("checkpoint")
            if recorded and not Path(recorded).is_file():
                raise CheckpointMissing(f"The shot's checkpoint file {recorded} is not there any more "
                                        "(moved or deleted).")
        except BaseException:
            shot.close()
            raise
        return cls._with_model(shot, device, on_download)

    @classmethod
    def _with_model(cls, shot: Shot, device: str, on_download=None) -> ShotSession:
        from ..model.loading import load_model

        try:
            m = shot.manifest.model
            model = load_model(m.get("name"), checkpoint=m.get("checkpoint") or None, device=device,
                               dtype=m.get("dtype", "float32"), image_size=m.get("image_size"),
                               on_download=on_download)
            if m.get("checkpoint") and model.weights_id and m.get("sha256") != model.weights_id:
                m["sha256"] = model.weights_id  # (what the shot is tracked with: a relink checks it)
                shot.save()
            return cls(shot, model)
        except BaseException:
            shot.close()
            raise

    def encode_ahead(self, frame: int | None = None) -> None:
        """Start encoding the shot's frames in the background, nearest `frame` (a frame
        number; one outside the shot counts as its nearest end) first; without one, nearest
        the first prompted frame, or the shot's first frame."""
        if frame is None:
            prompted = [p.frame for o in self.objects for p in o.prompts if p.frame in self.numbers]
            frame = min(prompted, default=self.numbers[0])
        self.tracker.encode_ahead(min(bisect.bisect_left(self.numbers, int(frame)), len(self.numbers) - 1))

    def add_object(self, name: str, colour: list[float] | None = None) -> ObjectRecord:
        name = _object_name(name)
        self._check_name_is_free(name)
        colour = None if colour is None else _colour(colour)
        record = self.shot.object(name)
        if colour is not None:
            record.colour = colour
        self.shot.save()
        return record

    def rename_object(self, name: str, new_name: str) -> ObjectRecord:
        record = self.object(name)
        new_name = _object_name(new_name)
        self._check_name_is_free(new_name, renaming=record)
        record.name = new_name
        self.shot.save()
        return record

    def _check_name_is_free(self, name: str, renaming: ObjectRecord | None = None) -> None:
        """SessionError for a name another object has, or one that would write the same
        files as another's ('car' and 'Car', 'my car' and 'my.car'): refused when given, as
        the export would refuse it after tracking."""
        from ..mattes.writers import safe_names

        others = [o.name for o in self.shot.manifest.objects if o is not renaming]
        if name in others:
            raise SessionError(f"There is already an object called {name!r} in the shot.")
        try:  # (the new name alone, then against each other one: not the others among themselves)
            safe_names([name])
            for other in others:
                safe_names([other, name])
        except ValueError as e:
            raise SessionError(f"Cannot name an object {name!r}: {e}.") from None

    def remove_object(self, name: str) -> None:
        record = self.object(name)
        if record.id in self.tracker.object_ids:
            self.tracker.remove_object(record.id)
        self.shot.manifest.objects.remove(record)
        self._undo = [u for u in self._undo if u[0] != record.id]
        self.shot.save()
        # its files go too: a later object may get its id
        shutil.rmtree(self.shot.folder / DISPLAY_FOLDER / str(record.id), ignore_errors=True)
        for p in record.prompts:
            if p.mask is not None:
                (self.shot.folder / p.mask).unlink(missing_ok=True)

    # -- prompts -------------------------------------------------------------------------

    def add_prompt(self, name: str, frame: int, *, points=None, labels=None, box=None,
                   mask: np.ndarray | None = None) -> np.ndarray:
        """Add clicks, a box or a mask to an object on a frame number (the object is made
        if new) and return that frame's logits (H x W float32, object > 0).

        Clicks accumulate on the frame; a box replaces the frame's box; a mask replaces
        everything given on the frame. A prompt on a tracked frame is a correction."""
        index = self.index(frame)
        name = _object_name(name)
        created = not any(o.name == name for o in self.shot.manifest.objects)
        if created:
            self._check_name_is_free(name)
        record = self.shot.object(name)
        was_tracked, new, saved = self.shot.manifest.tracked, None, False
        before = [p for p in record.prompts if p.frame == int(frame)]
        try:
            new = self._prompt_record(record, int(frame), points, labels, box, mask)
            # the shot first: a crash before the tracker has the prompt gives it again on opening,
            # whereas a prompt the tracker kept but the shot lacks would be a click nobody sees
            record.prompts.append(new)
            self.shot.manifest.tracked = False
            self.shot.save()
            saved = True
            logits = self._give(record, index, [*before, new])
        except BaseException:
            self._take_back_refused(record, new, created, was_tracked, saved)
            raise
        self._undo.append((record.id, int(frame), before))
        return logits

    def _take_back_refused(self, record: ObjectRecord, new: PromptRecord | None, created: bool,
                           was_tracked: bool, saved: bool) -> None:
        """A refused prompt leaves the shot as it was: no object made for it, no mask file."""
        if new in record.prompts:
            record.prompts.remove(new)
        if created:
            self.shot.manifest.objects.remove(record)
        self.shot.manifest.tracked = was_tracked
        if saved:
            try:
                self.shot.save()
            except ManifestError as e:  # (opening the shot again gives the prompt again, or says it can't)
                log.warning("%s", e)
        if new is not None and new.mask is not None:
            (self.shot.folder / new.mask).unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # (and its folder, if that is all it held)
                (self.shot.folder / new.mask).parent.rmdir()

    def undo(self) -> tuple[ObjectRecord, int, np.ndarray | None]:
        """Take back the last prompt of this session. Returns the object, the frame number
        and the frame's logits without that prompt (as tracked, for a correction taken back
        before tracking again; None where nothing is left on it)."""
        if not self._undo:
            raise SessionError("Nothing to undo: no prompt was given in this session.")
        obj_id, frame, before = self._undo[-1]
        record = next(o for o in self.shot.manifest.objects if o.id == obj_id)
        index = self.index(frame)
        kept = sum(p.tracked for p in record.prompts if p.frame == frame)  # (the one taken back too)
        if obj_id in self.tracker.object_ids:
            self.tracker.clear_prompt(index, obj_id)  # (back to what it tracked from, if it did)
        flags = [p.tracked for p in before]
        if kept > len(before):  # the prompt taken back was tracked from: the frame starts afresh
            kept = 0
            for p in before:
                p.tracked = False
        try:
            logits = self._replay(record, index, before, given=kept)
        except BaseException:  # (a frame that cannot be read): the undo stays to be tried again
            for p, flag in zip(before, flags):
                p.tracked = flag
            raise
        self._undo.pop()
        record.prompts = [p for p in record.prompts if p.frame != frame] + before
        if not record.prompts and obj_id in self.tracker.object_ids:
            # nothing left to track it from: what was tracked from its prompts goes too
            self.tracker.remove_object(obj_id)
        if logits is None and obj_id in self.tracker.object_ids:
            logits = self.tracker.logits(index, obj_id)  # a corrected frame is back as tracked
        self.shot.manifest.tracked = self.tracking_done()  # (taking back an untracked click restores it)
        self.shot.save()
        return record, frame, logits

    def _prompt_record(self, record, frame, points, labels, box, mask) -> PromptRecord:
        w, h = self.source.size
        where = f"frame {frame}, object {record.name!r}"
        if mask is not None:
            if points is not None or box is not None:
                raise SessionError(f"{where}: give a mask, or points and/or a box, not both in one prompt.")
            m = np.asarray(mask)
            if m.shape != (h, w):
                raise SessionError(f"{where}: the mask is {m.shape[1] if m.ndim > 1 else '?'}x{m.shape[0]}; "
                                   f"it must be the plate's size, {w}x{h}.")
            return PromptRecord(frame=frame, mask=self._save_mask(record, frame, m != 0))
        pts = [] if points is None else [[float(x), float(y)] for x, y in np.asarray(points, float).reshape(-1, 2)]
        labs = [1] * len(pts) if labels is None else [int(v) for v in labels]
        if len(labs) != len(pts):
            raise SessionError(f"{where}: {len(pts)} points but {len(labs)} labels; give one label per point.")
        if any(v not in (0, 1) for v in labs):
            raise SessionError(f"{where}: point labels must be 1 (object) or 0 (not the object); got {labs}.")
        for x, y in pts:
            if not (0 <= x <= w and 0 <= y <= h):
                raise SessionError(f"{where}: ({x:g}, {y:g}) is outside the plate ({w}x{h} pixels, "
                                   "origin top-left).")
        if box is not None:
            box = [float(v) for v in box]
            if len(box) != 4 or not (box[2] > box[0] and box[3] > box[1]):
                raise SessionError(f"{where}: a box is x0, y0, x1, y1 with x1 right of x0 and y1 below y0; "
                                   f"got {box}.")
            # (a box dragged past the plate's edge keeps the part on the plate)
            inside = [min(max(box[0], 0.0), w), min(max(box[1], 0.0), h), min(max(box[2], 0.0), w),
                      min(max(box[3], 0.0), h)]
            if not (inside[2] > inside[0] and inside[3] > inside[1]):
                raise SessionError(f"{where}: the box {box} lies outside the plate ({w}x{h} pixels, origin "
                                   "top-left).")
            box = inside
        if not pts and box is None:
            raise SessionError(f"{where}: an empty prompt; give points, a box or a mask.")
        return PromptRecord(frame=frame, points=pts, labels=labs, box=box)

    def _save_mask(self, record: ObjectRecord, frame: int, mask: np.ndarray) -> str:
        folder = self.shot.folder / "prompts"
        folder.mkdir(exist_ok=True)
        n = sum(1 for p in record.prompts if p.frame == frame)
        name = f"mask-{record.id}-{frame}-{n}.png"
        try:
            write_image(folder / name, mask.astype(np.uint8) * 255)
        except OSError as e:
            raise SessionError(f"Could not write the mask prompt into {folder}: {e.strerror}.") from None
        return f"prompts/{name}"

    def _give(self, record: ObjectRecord, index: int, prompts: list[PromptRecord]) -> np.ndarray:
        """Hand the tracker the frame's prompts as they stand after the newest one."""
        since_mask = _since_last_mask(prompts)
        newest = since_mask[-1]
        if newest.mask is not None:
            return self.tracker.add_prompt(index, record.id,
                                           mask=read_mask_file(self.shot.folder / newest.mask, newest.frame))
        points = [pt for p in since_mask for pt in p.points]
        labels = [v for p in since_mask for v in p.labels]
        box = next((p.box for p in reversed(since_mask) if p.box is not None), None)
        return self.tracker.add_prompt(index, record.id, points=points or None, labels=labels or None, box=box)

    def _replay(self, record: ObjectRecord, index: int, prompts: list[PromptRecord],
                given: int = 0) -> np.ndarray | None:
        """Give a frame's prompts again one by one, as they were given, so each answer is
        fed back with the next prompt exactly as the first time. The first `given` ones
        the tracker has already (it tracked from them)."""
        logits = None
        for k in range(given, len(prompts)):
            logits = self._give(record, index, prompts[:k + 1])
        return logits

    # -- tracking ------------------------------------------------------------------------

    def track(self, direction: str = "both", start: int | None = None, end: int | None = None,
              objects: list[str] | None = None, cancel: threading.Event | None = None,
              progress: Progress | None = None) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """Track and yield (frame number, {object name: logits}) frame by frame.

        Without `start`, "both" tracks what needs it: new objects through the whole shot
        (forward from their first prompted frame, then backward), corrections from their
        frame up to the next prompted frame, and frames an interrupted run did not reach.
        With `start` (a frame number), the tracker runs from there in `direction` to `end`
        ("both" with an `end`: from `start` forward to `end`, as the range says).

        `progress(done, total)` after each frame run: objects prompted on different frames
        run apart, so a frame two runs pass counts in each; `done` < `total` at the end says
        the run was cancelled."""
        ids = self._tracked_ids(objects)
        if start is None and end is None and direction == "both":
            spans = self._whole_shot_plan(ids)
        else:
            if direction not in ("forward", "backward", "both"):
                raise SessionError(f"direction must be forward, backward or both; got {direction!r}.")
            last = self.index(end) if end is not None else None
            if start is not None:
                starts = {self.index(start): ids}
            else:  # each object from its own first prompted frame (before it, it is not yet known)
                starts = {}
                for obj_id in ids:
                    starts.setdefault(min(self.tracker.prompted_frames(obj_id)), []).append(obj_id)
            # (an object whose first prompt lies beyond `end` has nothing in the range)
            reaching = {first: group for first, group in starts.items() if self._reaches(first, last, direction)}
            if not reaching:
                first = min(starts)
                raise SessionError(f"Tracking {direction} from frame {self.numbers[first]} never reaches frame "
                                   f"{self.numbers[last]}: swap them or change the direction.")
            spans = [span for first, group in sorted(reaching.items())
                     for span in self._range_spans(first, last, direction, group)]
        return self._run(spans, ids, cancel, progress, whole_shot=start is None and direction == "both")

    @staticmethod
    def _reaches(first: int, last: int | None, direction: str) -> bool:
        return last is None or (last >= first if direction != "backward" else last <= first)

    def _range_spans(self, first: int, last: int | None, direction: str, ids: list[int]) -> list[Span]:
        spans = []
        if direction in ("forward", "both"):
            spans.append(Span(first, "forward", self.tracker.num_frames - 1 if last is None else last, ids))
        if direction == "backward":
            spans.append(Span(first, "backward", 0 if last is None else last, ids))
        # (the start frame was just done going forward; an end given closes the range there)
        if direction == "both" and first > 0 and last is None:
            spans.append(Span(first - 1, "backward", 0, ids))
        return [s for s in spans if _runs(s)]

    def _tracked_ids(self, names: list[str] | None) -> list[int]:
        records = self.objects if names is None else [self.object(n) for n in names]
        ids, stranded = [], []
        for o in (o for o in records if o.prompts):
            if o.id in self.tracker.object_ids and self.tracker.prompted_frames(o.id):
                ids.append(o.id)
            else:  # (prompts only on frames the footage lost, or that could not be given again)
                stranded.append(o.name)
        if stranded:
            log.warning("Not tracked: %s, prompted only on frames the footage no longer has (or whose prompts "
                        "could not be given again); prompt them again.", ", ".join(map(repr, stranded)))
        if not ids:
            if stranded:
                raise SessionError(f"Nothing to track: the prompts of {', '.join(map(repr, stranded))} are all on "
                                   "frames the footage no longer has (or could not be given again). Prompt again "
                                   "on frames of the footage.")
            raise SessionError("Nothing to track: prompt an object on a frame first.")
        return ids

    def _whole_shot_plan(self, ids: list[int]) -> list[Span]:
        t = self.tracker
        last = t.num_frames - 1
        fresh, corrections = [], {}
        for obj_id in ids:
            pending = t.pending_frames(obj_id)
            if any(not t.was_tracked(f, obj_id) for f in pending):
                fresh.append(obj_id)
            else:
                for f in pending:
                    corrections.setdefault(f, []).append(obj_id)
        spans = []
        starts: dict[int, list[int]] = {}  # new objects by their first prompted frame
        for obj_id in fresh:
            starts.setdefault(min(t.prompted_frames(obj_id)), []).append(obj_id)
        for first, group in sorted(starts.items()):
            spans.append(Span(first, "forward", last, group))
            if first > 0:
                spans.append(Span(first - 1, "backward", 0, group))
        # a re-track that runs through another corrected frame (a later one going forward, an
        # earlier one going backward) commits that correction on its way: the longest go first
        def reach(frame: int) -> int:
            return sum(len(Span(*span)) for span in t.retrack_spans(frame, corrections[frame]))

        for frame in sorted(corrections, key=lambda f: (-reach(f), f)):
            todo = [i for i in corrections[frame] if not any(i in s.objects and frame in _frames(s) for s in spans)]
            if todo:
                spans.extend(Span(*span) for span in t.retrack_spans(frame, todo))
        for obj_id in (i for i in ids if i not in fresh):
            first = min(t.prompted_frames(obj_id))
            covered = {f for s in spans if obj_id in s.objects for f in _frames(s)}
            spans += self._gaps(obj_id, range(first, last + 1), covered, reverse=False)
            spans += self._gaps(obj_id, range(first - 1, -1, -1), covered, reverse=True)
        return [s for s in spans if _runs(s)]

    def _gaps(self, obj_id: int, frames: range, covered: set[int], *, reverse: bool) -> list[Span]:
        """Spans that fill the frames without results (an interrupted run, a stopped
        re-track): each from the first frame missing to the object's next prompted frame."""
        t, spans, k = self.tracker, [], 0
        while k < len(frames):
            f = frames[k]
            if f in covered or t.has_result(f, obj_id):
                k += 1
                continue
            end = t.next_prompted(obj_id, f, reverse)
            spans.append(Span(f, "backward" if reverse else "forward", end, [obj_id]))
            k += abs(end - f) + 1
        return spans

    def _run(self, spans: list[Span], ids: list[int], cancel, progress, *, whole_shot: bool):
        names = {o.id: o.name for o in self.objects}
        # progress in frames run: a frame that two objects' runs pass (objects prompted on
        # different frames) counts in each, so that it reaches its total only at the end
        total, done = sum(len(s) for s in spans), 0
        records = {o.id: o for o in self.objects}
        with self._lost_results_given_again():
            for span in spans:
                if cancel is not None and cancel.is_set():
                    # (before the tracker takes the span's corrections in: a run that never started changes nothing)
                    break
                run = self.tracker.propagate(span.start, span.direction, span.end, span.objects, cancel)
                fresh = [p for i in span.objects for p in records[i].prompts if not p.tracked]
                for p in fresh:  # (the tracker has taken them into its memory bank now)
                    p.tracked = True
                if fresh:
                    self.shot.save()
                for index, logits in run:
                    done += 1
                    if progress is not None:
                        progress(done, total)
                    yield self.numbers[index], {names[i]: v for i, v in logits.items()}
        # (a cancel after the last frame is late)
        cancelled = cancel is not None and cancel.is_set() and done < total
        if whole_shot and not cancelled:
            self.shot.manifest.tracked = self.tracking_done()
            self.shot.save()

    @contextlib.contextmanager
    def _lost_results_given_again(self):
        """A result the tracker lost while the shot was open (damaged or deleted on disk) stops
        the run. A prompted frame's prompts are given again from the shot at once (the tracker
        dropped them with their answer), and the artist is told, in the shot's names and frame
        numbers, to track again."""
        from ..tracking.memory_bank import LostResult

        try:
            yield
        except LostResult as e:
            record = next((o for o in self.objects if o.id == e.obj_id), None)
            number = self.numbers[e.frame]
            prompted = record is not None and any(p.frame == number for p in record.prompts)
            self._give_lost_prompts_again()
            self.shot.manifest.tracked = False
            self.shot.save()
            raise SessionError(
                f"The tracking result of {record.name if record else e.obj_id!r} on frame {number} was lost (damaged "
                f"or deleted in {self.shot.session_dir}){'; its prompts were given again' if prompted else ''}. "
                "Track again to fill it in.") from None

def read_mask_file(path: str | Path, frame: int) -> np.ndarray:
    """A mask prompt from an image file: its alpha if it has one, else its brightest channel,
    cut at half its peak (white, or any one value, on black)."""
    if not Path(path).is_file():  # (asked to read it, OpenCV warns on the terminal besides)
        raise SessionError(f"Cannot read the mask {path} (frame {frame}): there is no such file.")
    try:
        image = read_image(path)
    except OSError as e:
        raise SessionError(f"Cannot read the mask {path} (frame {frame}): {e.strerror}.") from None
    if image is None:
        raise SessionError(f"Cannot read the mask {path} (frame {frame}): not an image.")
    if image.ndim == 3:
        image = image[:, :, -1] if image.shape[2] == 4 else image.max(axis=2)
    return image > (int(image.max()) // 2 if image.max() > 0 else 0)


def _since_last_mask(prompts: list[PromptRecord]) -> list[PromptRecord]:
    """The prompts that still count: a mask replaces everything before it on the frame."""
    last = max((k for k, p in enumerate(prompts) if p.mask is not None), default=0)
    return prompts[last:]


def _runs(span: Span) -> bool:
    """Whether the span goes the way it says (a tracker never runs against its direction)."""
    if span.direction == "forward":
        return span.end >= span.start
    return span.end <= span.start


def _frames(span: Span) -> range:
    return range(span.start, span.end + 1) if span.direction == "forward" else range(span.start, span.end - 1, -1)


def _object_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise SessionError(f"An object needs a name (got {name!r}).")
    return name.strip()


def _colour(colour) -> list[float]:
    try:
        rgb = [float(c) for c in colour]
    except (TypeError, ValueError):
        rgb = []
    if len(rgb) != 3 or not all(0 <= c <= 1 for c in rgb):
        raise SessionError(f"An object's colour is three numbers from 0 to 1 (red, green, blue); got {colour!r}.")
    return rgb



"""Shot: one shot folder on disk and what lives in it.

    SHOT/shot.json      the manifest (footage, colour, model, objects, prompts, exports)
    SHOT/lock           held while a process works on the shot
    SHOT/cache/         frames and image features (reused by every run)
    SHOT/tracking/      prompts, memories and per-frame results: a killed run resumes here
    SHOT/prompts/       mask prompts, as given
    SHOT/display/       the masks a host shows
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from ..atomic import is_leftover_of
from ..media import ColourSettings, open_source
from ..media.errors import FootageError
from ..media.open import fingerprint, first_file, source_fingerprint
from .lock import LOCK_FILE, ShotLock
from .manifest import MANIFEST_FILE, Manifest, ObjectRecord, read_manifest, relative_to, seen_from, write_manifest

# distinct, readable colours for objects in hosts' viewers
PALETTE = [[1.0, 0.3, 0.2], [0.2, 0.7, 1.0], [0.3, 0.9, 0.3], [1.0, 0.8, 0.1], [0.8, 0.4, 1.0], [1.0, 0.5, 0.8]]


class OtherWeights(ValueError):
    """A checkpoint file given as the shot's own that holds other weights than it was tracked with."""


def open_footage(path: str | Path, colour: dict, missing_frames: str = "error"):
    """The FrameSource for a shot's footage (a video, an image sequence or a folder of
    frames), with its colour settings and what stands in for frames missing from a sequence."""
    if colour.get("config_id") is not None or "chosen_by" in colour:  # a recorded ColourSettings
        colour = ColourSettings.from_dict(colour).open_kwargs()
    return open_source(str(path), missing_frames=missing_frames, **colour)


def clear_cache(folder: str | Path) -> int:
    """Delete a shot's cached frames and features (computed again when needed; prompts and
    tracking results stay). The shot must not be open elsewhere. Returns the bytes freed."""
    folder = Path(folder)
    read_manifest(folder)  # (a clear error for a folder that is not a shot)
    lock = ShotLock(folder)
    lock.acquire()
    try:
        cache = folder / "cache"
        freed = 0
        for path in cache.rglob("*") if cache.is_dir() else []:
            with contextlib.suppress(OSError):
                freed += path.stat().st_size if path.is_file() else 0
        shutil.rmtree(cache, ignore_errors=True)
        if cache.exists():
            raise OSError(f"Could not delete all of {cache}: check its permissions, then delete it by hand.")
        return freed
    finally:
        lock.release()


DISPLAY_FOLDER = "display"  # the masks a host was answered with, as PNGs (plugin/service.py)
WORKING_FOLDERS = ("cache", "tracking", "prompts", DISPLAY_FOLDER)  # what a shot keeps in its folder, besides shot.json


def holds_other_files(folder: str | Path) -> bool:
    """Whether a folder holds files other than what a shot's creation left when it was cut
    off (its lock, a manifest's temporary file): such a folder cannot become a shot."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    return any(p.name != LOCK_FILE and not is_leftover_of(p.name, MANIFEST_FILE) for p in folder.iterdir())


class FootageMissing(FootageError):
    """The shot's footage is not where the shot recorded it."""


def _find_footage(folder: Path, manifest: Manifest, moved_to: str | Path | None = None,
                  relink: bool = False) -> Path:
    """Where the shot's footage is. `moved_to`: where it is now, taken when asked to (`relink`)
    or when the footage is found nowhere else. Otherwise: inside the shot folder, where it was
    made so; where the shot recorded it; or the copy beside the shot folder (a project folder
    moved or copied with its footage), where the recorded one is gone or is the same footage."""
    if relink and moved_to is not None:
        if not _footage_at(Path(moved_to)):
            raise FootageMissing(f"There is no footage at {moved_to}: give the footage's new place (a video, "
                                 "a sequence of frames or its folder).")
        return _record(folder, manifest, Path(moved_to))
    recorded = Path(manifest.source)
    found = recorded if recorded.is_absolute() else folder / recorded
    if recorded.is_absolute() and manifest.source_from_shot:
        beside = Path(os.path.abspath(folder / manifest.source_from_shot))
        if _footage_at(beside) and not _same_place(beside, found):
            # the same footage as recorded, or (a shot from before fingerprints) the recorded one gone
            known = manifest.source_fingerprint or (fingerprint(found) if _footage_at(found) else "")
            same = known != "" and fingerprint(beside) == known
            if same or (not known and not _footage_at(found)):
                return _record(folder, manifest, beside)
    if _footage_at(found):
        if recorded.is_absolute() and not manifest.source_from_shot:  # (a shot from before this was kept)
            manifest.source_from_shot = seen_from(Path(os.path.realpath(folder)), found)
        return found
    if moved_to is not None and _footage_at(Path(moved_to)):
        return _record(folder, manifest, Path(moved_to))
    raise FootageMissing(f"The footage of the shot in {folder} is missing: {found} (moved, renamed or deleted). "
                         "If it moved, open the shot with its new place: the tracking is kept where the footage "
                         "is the same.")


def _record(folder: Path, manifest: Manifest, path: Path) -> Path:
    """`path` becomes the shot's footage (saved with the shot's next save)."""
    path = Path(os.path.abspath(path))
    manifest.source = relative_to(path, folder)
    manifest.source_from_shot = seen_from(folder, path) if Path(manifest.source).is_absolute() else ""
    return path


def _footage_at(path: Path) -> bool:
    """Whether there is footage at `path`: a file, a folder, or a sequence pattern (plate.%04d.exr)
    that at least one frame matches."""
    if "%" in path.name or "#" in path.name:
        return first_file(path) is not None
    return path.exists()


def _same_place(a: Path, b: Path) -> bool:
    return os.path.realpath(a.parent) == os.path.realpath(b.parent) and a.name == b.name


class Shot:
    def __init__(self, folder: Path, manifest: Manifest, lock: ShotLock | None, moved_to: str | Path | None = None,
                 relink: bool = False):
        self.folder = folder
        self.manifest = manifest
        self._lock = lock
        recorded = (manifest.source, manifest.source_from_shot, manifest.source_fingerprint)
        self.source_path = _find_footage(folder, manifest, moved_to, relink)
        self.source = open_footage(self.source_path, manifest.colour, manifest.missing_frames)
        # what the footage is now (plates rendered again in place are still the shot's footage)
        manifest.source_fingerprint = source_fingerprint(self.source) or manifest.source_fingerprint
        self.relinked = (manifest.source, manifest.source_from_shot, manifest.source_fingerprint) != recorded
        colour = getattr(self.source, "colour", None)
        # record what was chosen (defaults included) with the shot; a shot opened again with
        # its recorded settings keeps its record (who chose them)
        if colour is not None and self._recorded_colour_key() != colour.key():
            manifest.colour = colour.to_dict()

    def _recorded_colour_key(self) -> str | None:
        colour = getattr(self.source, "colour", None)
        if colour is None or "chosen_by" not in self.manifest.colour:
            return None
        return type(colour).from_dict(self.manifest.colour).key()

    @property
    def colour_key(self) -> str:
        """Differs whenever the pixels the model sees would: keys the shot's caches and
        tells its tracking session whether the footage changed."""
        colour = getattr(self.source, "colour", None)
        return colour.key() if colour is not None else ""

    @classmethod
    def create(cls, folder: str | Path, source: str | Path, *, colour: dict | None = None,
               model: dict | None = None, missing_frames: str = "error") -> Shot:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        lock = ShotLock(folder)
        lock.acquire()
        try:
            if (folder / MANIFEST_FILE).exists():  # (looked at under the lock: two creates cannot both pass)
                raise FileExistsError(f"There is already a shot in {folder}; open it, or choose another folder.")
            recorded = relative_to(Path(source), folder)
            outside = Path(recorded).is_absolute()
            manifest = Manifest(source=recorded, source_from_shot=seen_from(folder, Path(source)) if outside else "",
                                colour=dict(colour or {}), missing_frames=missing_frames, model=dict(model or {}))
            shot = cls(folder, manifest, lock)
            shot.save()
            return shot
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open(cls, folder: str | Path, moved_to: str | Path | None = None, *, relink: bool = False) -> Shot:
        """`moved_to`: where the footage is now, if it is no longer where the shot recorded it;
        with `relink`, the shot's footage from now on, wherever the old one is."""
        folder = Path(folder)
        read_manifest(folder)  # (a clear error for a folder that is not a shot, before locking it)
        lock = ShotLock(folder)
        lock.acquire()
        try:  # read under the lock: the last holder may have saved since
            shot = cls(folder, read_manifest(folder), lock, moved_to, relink)
            if shot.relinked:
                shot.save()
            return shot
        except BaseException:
            lock.release()
            raise

    @classmethod
    def look(cls, folder: str | Path) -> Shot:
        """The shot as recorded, to read only: no lock is taken and nothing is saved, so it
        works while another process has the shot open, or on a disk that cannot be written."""
        folder = Path(folder)
        return cls(folder, read_manifest(folder), None)

    @property
    def cache_dir(self) -> Path:
        return self.folder / "cache"

    @property
    def session_dir(self) -> Path:
        return self.folder / "tracking"

    def object(self, name: str) -> ObjectRecord:
        """The object called `name`, created if new."""
        for o in self.manifest.objects:
            if o.name == name:
                return o
        new_id = max((o.id for o in self.manifest.objects), default=0) + 1
        obj = ObjectRecord(id=new_id, name=name, colour=PALETTE[(new_id - 1) % len(PALETTE)])
        self.manifest.objects.append(obj)
        return obj

    def relink_checkpoint(self, checkpoint: str | Path, *, other_weights: bool = False) -> None:
        """The shot's own checkpoint file is at `checkpoint` now. A file that holds other weights
        than the shot was tracked with is refused (OtherWeights), unless `other_weights`: the
        shot is then tracked afresh from its prompts when it opens."""
        from ..model.weights import sha256_of

        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"No checkpoint file at {path}.")
        kept, now = self.manifest.model.get("sha256"), sha256_of(path)
        if kept and now != kept and not other_weights:
            raise OtherWeights(f"{path} holds other weights than the shot was tracked with (SHA-256 {now[:12]}..., "
                               f"the shot's {kept[:12]}...): the shot would be tracked afresh from its prompts.")
        self.manifest.model = {**self.manifest.model, "checkpoint": str(path.resolve()), "sha256": now}
        self.save()

    def info(self) -> dict:
        """What the shot holds, as recorded (the model need not be loaded)."""
        from ..model.configs import CONFIGS

        src, model = self.source, self.manifest.model
        rate = getattr(src, "rate", None)
        config = CONFIGS.get(model.get("name"))
        return {
            "shot": str(self.folder.resolve()), "source": str(self.source_path),
            "frames": [src.frame_numbers[0], src.frame_numbers[-1]], "frame_numbers": list(src.frame_numbers),
            "size": list(src.size), "pixel_aspect": float(getattr(src, "pixel_aspect", 1.0)),
            "rate": None if rate is None else float(rate), "colour": self.manifest.colour,
            "held": list(getattr(src, "held", [])),  # (missing frames the one before stands in for)
            "model": model.get("name"), "image_size": model.get("image_size") or (config and config.image_size),
            "tracked": self.manifest.tracked,
            "objects": [self.object_info(o) for o in self.manifest.objects],
        }

    @staticmethod
    def object_info(record: ObjectRecord) -> dict:
        return {"object": record.name, "id": record.id, "colour": record.colour,
                "prompted_frames": record.prompted_frames(), "cleanup": record.cleanup}

    def tracker(self, model, **kwargs):
        from ..tracking.tracker import VideoTracker

        return VideoTracker(model, self.source, cache_dir=self.cache_dir, session_dir=self.session_dir,
                            colour_key=self.colour_key, footage_key=self.manifest.source_fingerprint, **kwargs)

    def results(self):
        """The tracking session's results read without the model (a SessionResults), where
        the session was made on the footage as it is now and on the shot's model as recorded;
        else None (opening the shot with its model makes the session right first)."""
        from ..model.configs import get_config
        from ..model.weights import OFFICIAL_WEIGHTS
        from ..tracking.results import SessionResults, footage_record, model_key, recorded_footage, same_footage

        m = self.manifest.model
        name = m.get("name")
        try:
            cfg = get_config(name)
        except (KeyError, TypeError, ValueError):
            return None
        # (the checkpoint's hash as recorded when the shot was last opened with it: the
        # results were made with those weights, wherever the file is now)
        weights_id = m.get("sha256") if m.get("checkpoint") else getattr(OFFICIAL_WEIGHTS.get(name), "sha256", "")
        if not weights_id:
            return None
        now = footage_record(self.source, self.colour_key, self.manifest.source_fingerprint,
                             model_key(cfg.name, m.get("image_size") or cfg.image_size, weights_id))
        if not same_footage(recorded_footage(self.session_dir), now):
            return None
        return SessionResults(self.session_dir, self.source)

    def save(self) -> None:
        if self._lock is None:
            raise RuntimeError("A shot opened to look at (Shot.look) is not saved")
        write_manifest(self.folder, self.manifest)

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

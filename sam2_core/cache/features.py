"""FrameFeatureCache: each frame's model input and image features, computed once.

Per shot, two TensorStores under the cache folder:
- inputs/<source key>/: the frame resized to the model's square input, uint8 (3 MiB a
  frame at 1024x1024). Keyed by the footage and the colour settings.
- features/<source key>-<model key>/: the image encoder's output in the model's working
  precision (8 MiB a frame for bfloat16, 16 MiB for float32). Keyed additionally by the
  model configuration, its weights and the precision.
A later process opening the same shot finds both. Features are always used as stored
(cast to the working precision), so results do not depend on whether a frame was cached.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import shutil
import threading
import time
import uuid
import weakref
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..model import SAM2
from ..model.image_encoder import ImageFeatures
from ..model.loading import upload
from ..model.transforms import imagenet_normalise
from .heap import give_back_free_memory, keep_large_blocks_for_reuse, trim
from .store import CacheError, TensorStore, flush_all

log = logging.getLogger(__name__)

DEFAULT_FEATURE_DISK_BUDGET = 20 << 30  # 20 GiB: ~1,200 frames of tiny in float32
DEFAULT_RAM_BUDGET = 256 << 20  # a few dozen frames of features; tracking reads each frame once
VARIANT_IN_USE_S = 600  # a cache folder written to this recently may be another tracker's
INPUT_RESIZE = "pillow-bicubic"  # how frames become the model's input (part of the cache key)


def _key(*parts: str) -> str:
    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=10).hexdigest()


def weights_key(model: SAM2) -> str:
    """The checkpoint's SHA-256 (load_model sets it). Weights of unknown origin get a key
    of their own, so that no other model ever reads their features."""
    if not getattr(model, "weights_id", ""):
        model.weights_id = f"unknown-{uuid.uuid4().hex}"
    return model.weights_id


def _folder_bytes(folder: Path) -> int:
    total = 0
    with contextlib.suppress(FileNotFoundError):  # (removed meanwhile by another process)
        for path in folder.iterdir():
            with contextlib.suppress(FileNotFoundError):  # (evicted meanwhile)
                total += path.stat().st_size
    return total


def _last_written(folder: Path) -> float | None:
    try:
        return folder.stat().st_mtime
    except FileNotFoundError:
        return None


def _remove_unused_variants(root: Path, in_use: list[TensorStore], budget: int) -> None:
    """The frames and features of other versions of the footage (a plate re-rendered),
    other colour settings, models or precisions are not read again unless those come
    back: while the whole cache folder holds more than `budget`, their folders go, least
    recently written first. One written in the last minutes is left: another tracker may
    be using it."""
    mine = {store.folder for store in in_use}
    variants = {f: _last_written(f) for sub in ("inputs", "features") if (root / sub).is_dir()
                for f in (root / sub).iterdir() if f.is_dir() and f not in mine}
    variants = {f: t for f, t in variants.items() if t is not None}
    sizes = {f: _folder_bytes(f) for f in variants}
    total, now = sum(sizes.values()) + sum(store.disk_bytes for store in in_use), time.time()
    for folder in sorted(variants, key=variants.get):
        if total <= budget:
            return
        if now - variants[folder] < VARIANT_IN_USE_S:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        total -= sizes[folder]
        log.info("Removed %s from the cache (%.1f GiB; other footage, colour settings or model): the cache was "
                 "over its budget.", folder, sizes[folder] / (1 << 30))


def resize_to_input(rgb: np.ndarray, size: int) -> torch.Tensor:
    """H x W x 3 uint8 -> (size, size, 3) uint8, as the official video predictor's frame loader
    makes it from a JPEG: Pillow's resize (antialiased bicubic), in 8 bits."""
    from PIL import Image

    if rgb.shape[:2] == (size, size):
        return torch.from_numpy(np.array(rgb, np.uint8))
    resized = Image.fromarray(np.ascontiguousarray(rgb, np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(resized).copy())


def normalise(frame: torch.Tensor, device) -> torch.Tensor:
    """(S, S, 3) uint8 -> (1, 3, S, S) float32, ImageNet-normalised."""
    return imagenet_normalise(upload(frame, device).permute(2, 0, 1)[None].float() / 255.0)


class FrameFeatureCache:
    def __init__(self, model: SAM2, source, cache_dir: str | Path, colour_key: str = "",
                 ram_budget: int = DEFAULT_RAM_BUDGET, disk_budget: int | None = DEFAULT_FEATURE_DISK_BUDGET):
        self.model = model
        self.source = source
        self.size = model.cfg.image_size
        source_key = _key(source.identity, colour_key, str(self.size), INPUT_RESIZE)
        model_key = _key(model.cfg.name, weights_key(model), str(model.dtype))
        # what the features depend on: equal ids, equal features
        self.features_id = f"{source_key}-{model_key}"
        root = Path(cache_dir)
        # written by a writer thread while the network goes on, and not flushed to the disk
        # entry by entry (fsync per frame costs more than a frame's network pass on a GPU):
        # after a power cut a lost or damaged entry is found by its checksum and computed again
        # the resized frames are only needed to encode features again: they get a quarter
        # of the features' room (a frame is 3 MiB at 1024, its tiny features 8-16 MiB)
        self.input_store = TensorStore(root / "inputs" / source_key, ram_budget=ram_budget // 8, durable=False,
                                       disk_budget=None if disk_budget is None else disk_budget // 4,
                                       write_behind=True)
        self.feature_store = TensorStore(root / "features" / self.features_id, ram_budget=ram_budget,
                                         disk_budget=disk_budget, durable=False, write_behind=True)
        if disk_budget is not None:
            _remove_unused_variants(root, [self.input_store, self.feature_store], disk_budget + disk_budget // 4)
        # the next frames of a propagation are read and resized by a worker meanwhile;
        # the source is read by one thread at a time (a video decoder is not thread-safe)
        self._reader: ThreadPoolExecutor | None = None
        self._prefetched: dict[int, Future] = {}
        self._prefetch_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self.encoder_calls = 0  # how many frames this process encoded (tests count them)
        self._pos: list[torch.Tensor] | None = None
        # the network runs in one thread at a time; the foreground goes first
        self.model_lock = threading.RLock()
        self._foreground = 0
        self._quiet = threading.Condition()
        self._background: threading.Thread | None = None
        self._stop = threading.Event()
        keep_large_blocks_for_reuse()  # (a frame's activations are not faulted in again for the next)

    # -- frames --------------------------------------------------------------------------

    def input_frame(self, index: int) -> torch.Tensor:
        with self._prefetch_lock:
            ahead = self._prefetched.pop(index, None)
        if ahead is not None:
            try:
                return ahead.result()  # a read error is raised here, in the caller
            except CacheError:
                pass  # caching it failed (maybe before room was made on the disk): again, now
        return self._read_input(index)

    def prefetch(self, index: int) -> None:
        """Start reading and resizing frame `index` in a worker thread, so that it is ready
        when it is asked for (the next frame of a propagation)."""
        key = f"{index:07d}"
        if not 0 <= index < len(self.source) or index in self._prefetched or key in self.feature_store:
            return
        if self._reader is None:
            self._reader = ThreadPoolExecutor(1, thread_name_prefix="sam2roto-reader")
        with self._prefetch_lock:  # (the background encoder takes frames from it too)
            while len(self._prefetched) >= 4:  # frames read ahead but never asked for (a run stopped)
                self._prefetched.pop(next(iter(self._prefetched)))
            self._prefetched[index] = self._reader.submit(self._read_input, index)

    def _read_input(self, index: int) -> torch.Tensor:
        key = f"{index:07d}"
        hit = self.input_store.get(key)
        if hit is not None:
            return hit["rgb"]
        with self._read_lock:
            rgb = self.source.read(index)
        frame = resize_to_input(rgb, self.size)
        self.input_store.put(key, {"rgb": frame})
        return frame

    def flush(self) -> None:
        """Wait until every frame and feature computed so far is on disk, the frames being
        read ahead included (else a write of theirs that fails would be reported to
        whatever comes next, a run that is not theirs)."""
        with self._prefetch_lock:
            reading = list(self._prefetched.values())
        futures.wait(reading)  # (a read error stays with its frame, for when it is asked for)
        flush_all((self.input_store, self.feature_store))

    def close(self) -> None:
        """Flush, and end the reader and writer threads (a write error is raised after
        both stores are closed)."""
        self.stop_background()
        if self._reader is not None:
            self._reader.shutdown(cancel_futures=True)
            self._reader = None
        self._prefetched.clear()
        try:
            self.flush()
        finally:
            self.input_store.close()
            self.feature_store.close()

    # -- features ------------------------------------------------------------------------

    def features(self, index: int) -> ImageFeatures:
        """The frame's image features (computing and caching them if needed)."""
        stored = self.features_if_cached(index)
        if stored is not None:
            return stored
        with self.foreground():
            stored = self.features_if_cached(index)  # the background may have just done it
            return stored if stored is not None else self._encode(index)

    def features_if_cached(self, index: int) -> ImageFeatures | None:
        hit = self.feature_store.get(f"{index:07d}")
        return None if hit is None else self._as_features(hit)

    def pin(self, index: int) -> None:
        """Keep this frame's features however full the disk budget gets."""
        self.feature_store.pin(f"{index:07d}")

    def unpin(self, index: int) -> None:
        self.feature_store.unpin(f"{index:07d}")

    def clear(self) -> None:
        """Delete this shot's cached frames and features."""
        self.stop_background()
        self._prefetched.clear()
        self.feature_store.clear()
        self.input_store.clear()

    def _encode(self, index: int) -> ImageFeatures:
        m = self.model
        x = normalise(self.input_frame(index), m.device)
        with torch.inference_mode(), m.precision():
            feats = m.encode_image(x)
        self.encoder_calls += 1
        if self._pos is None:
            self._pos = [p.float() for p in feats.pos]
        stored = {f"level{i}": lvl.to(m.dtype) for i, lvl in enumerate(feats.levels)}
        self.feature_store.put(f"{index:07d}", stored)
        return self._as_features(stored)

    def _as_features(self, stored: dict) -> ImageFeatures:
        dev = self.model.device
        levels = [stored[f"level{i}"].to(dev) for i in range(3)]
        return ImageFeatures(levels, self.positions(levels))

    def positions(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
        """The (constant) position encodings of the three feature maps."""
        if self._pos is None:
            pe = self.model.image_encoder.neck.position_encoding
            self._pos = [pe(lvl[:, :1]).float() for lvl in levels]
        return self._pos

    # -- background encoding -------------------------------------------------------------

    def foreground(self):
        """Context for interactive work: the background encoder yields to it."""
        cache = self

        class _Foreground:
            def __enter__(self):
                with cache._quiet:
                    cache._foreground += 1
                cache.model_lock.acquire()

            def __exit__(self, *exc):
                cache.model_lock.release()
                with cache._quiet:
                    cache._foreground -= 1
                    cache._quiet.notify_all()

        return _Foreground()

    @contextlib.contextmanager
    def background_paused(self):
        """The background encoder waits meanwhile (a propagation reads its own frames
        ahead, and should not wait for frames encoded for clicks between its frames)."""
        with self._quiet:
            self._foreground += 1
        try:
            yield
        finally:
            with self._quiet:
                self._foreground -= 1
                self._quiet.notify_all()

    def encode_in_background(self, around: int = 0) -> None:
        """Start encoding every frame not yet cached, nearest `around` first, until the
        disk budget is full (frames encoded ahead never evict features already there)."""
        self.stop_background()
        order = sorted(range(len(self.source)), key=lambda i: (abs(i - around), i))
        self._stop.clear()
        self._background = threading.Thread(target=self._run_background, args=(order,),
                                            name="sam2roto-encoder", daemon=True)
        _ENCODING.add(self)
        self._background.start()

    def stop_background(self) -> None:
        if self._background is not None:
            self._stop.set()
            self._background.join()
            self._background = None

    def background_done(self, timeout: float | None = None) -> bool:
        if self._background is None:
            return True
        self._background.join(timeout)
        return not self._background.is_alive()

    def _run_background(self, order: list[int]) -> None:
        try:
            self._encode_in_order(order)
        finally:
            trim()  # what the heap kept for the next frame is given back

    def _encode_in_order(self, order: list[int]) -> None:
        frame_bytes = 0  # one frame's features (0: none encoded or on disk yet)
        for index in order:
            if self._stop.is_set():
                return
            if f"{index:07d}" in self.feature_store:
                continue
            # (an entry on disk, header included, is the measure once there is one)
            frame_bytes = max(frame_bytes, self.feature_store.mean_entry_bytes())
            room = self.feature_store.room_left()
            if room is not None and room < frame_bytes:
                log.info("Background encoding stopped at frame index %d: the feature cache's disk budget is full.",
                         index)
                return
            try:
                features = self._encode_when_quiet(index)
            except Exception as e:  # a bad frame or a full disk: the foreground reports it
                log.warning("Background encoding stopped at frame index %d: %s", index, e)
                return
            if features is not None:
                frame_bytes = max(frame_bytes, sum(level.nbytes for level in features.levels))
            give_back_free_memory()

    def _encode_when_quiet(self, index: int) -> ImageFeatures | None:
        """Encode a frame once no foreground work is waiting or under way; None if it
        was cached meanwhile or the encoder was stopped."""
        while not self._stop.is_set():
            with self._quiet:
                while self._foreground and not self._stop.is_set():
                    self._quiet.wait(0.1)
            with self.model_lock:
                if self._foreground:
                    continue  # (it came while this waited for the network: it goes first)
                if self._stop.is_set() or f"{index:07d}" in self.feature_store:
                    return None
                return self._encode(index)
        return None


# Caches encoding in the background. At exit their encoders are stopped first: a thread
# left inside the network while the interpreter shuts down aborts the process.
_ENCODING: weakref.WeakSet[FrameFeatureCache] = weakref.WeakSet()


@atexit.register
def _stop_encoding_at_exit() -> None:
    for cache in list(_ENCODING):
        cache.stop_background()

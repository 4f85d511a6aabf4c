"""Video files through PyAV (FFmpeg): frame-accurate random access, upright, without banding.

A read of frame i finds its timestamp in the clip's index (see video_index), decodes forward from
where the decoder stands when i is just ahead, and otherwise seeks to the keyframe at or before i
and decodes until the frame whose timestamp is i's. If a seek lands late, or the frame does not come
out (the leading frames of an open GOP), it starts again from an earlier keyframe, and at last from
the start of the file: a frame is never off by one. The last few frames read are kept.

Pictures of more than 8 bits go through 16 bits per channel (rgb48) before they become the model's
8-bit input, rounded, so 10/12-bit and 4:2:2/4:4:4 sources keep their precision (no banding).
Y'CbCr becomes RGB by the matrix the stream is tagged with; an untagged stream gets the one players
and hosts guess (mpv, Resolve): BT.709 from HD up, BT.601 below. FFmpeg alone would take BT.601 for
every untagged stream, and greens of an untagged HD clip would come out visibly yellower.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import threading
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path

import numpy as np

from .colour import DISPLAY_REFERRED, colour_pipeline
from .errors import FootageError
from .frame_source import check_index
from .video_index import VideoIndex, open_container, video_index

UNTAGGED_MATRICES = (2, 3)  # FFmpeg's AVCOL_SPC_UNSPECIFIED and AVCOL_SPC_RESERVED
SEEK_COST_FRAMES = 3  # a seek costs about as much as decoding this many frames
CACHE_BYTES = 96 * 2**20  # the recently read frames kept (at least 2)


class VideoSource:
    """A video file as a FrameSource. Frames are numbered from 0 in presentation order.

    Video is display-referred: by default its pixels go to the model unchanged (as the official
    predictor takes them); give `colorspace` (e.g. "S-Log3 S-Gamut3.Cine" for a log camera clip)
    to bring it through OCIO.
    """

    def __init__(self, path: str | Path, colorspace: str | None = None, *, mode: str | None = None,
                 config: str | os.PathLike | None = None, display: str | None = None, view: str | None = None,
                 index_dir: str | Path | None = None):
        self.path = Path(path)
        self.index: VideoIndex = video_index(self.path, index_dir)
        self._colour = colour_pipeline(DISPLAY_REFERRED, colorspace, mode, config, display, view,
                                       where=str(self.path))
        self.colour = self._colour.settings
        idx = self.index
        self._orientation = idx.upright()
        self.size = self._orientation.size(idx.width, idx.height)
        self.pixel_aspect = 1.0 / idx.pixel_aspect if self._orientation.transpose else idx.pixel_aspect
        self.frame_numbers = list(range(idx.frame_count))
        self.time_base = Fraction(*idx.time_base)
        self.rate = Fraction(*idx.rate) if idx.rate else None
        self.start_timecode = idx.start_timecode
        self.codec = idx.codec
        self.bits = idx.bits
        self.frame_times = [float((p - idx.pts[0]) * self.time_base) for p in idx.pts] if idx.seekable else None
        deltas = {b - a for a, b in zip(idx.pts, idx.pts[1:])}
        self.variable_rate = bool(idx.seekable and len(deltas) > 1 and max(deltas) - min(deltas) > 1)
        self._pts_index = {p: i for i, p in enumerate(idx.pts)}
        key = f"{idx.path}|{idx.file_size}|{idx.mtime_ns}|{idx.stream_index}"
        # ("hd709": untagged HD decodes as BT.709; frames decoded before that are not taken from the cache)
        self._identity = (f"video:{hashlib.blake2b(key.encode(), digest_size=16).hexdigest()}:hd709:"
                          f"{self.colour.key()}")
        self._init_state()

    def _init_state(self):
        self._lock = threading.RLock()
        self._container = None
        self._stream = None
        self._frames = None  # the decoder's output from its current position
        self._position: int | None = None  # index of the last frame the decoder gave
        self._last_frame = None  # that frame (read and read_raw of one frame decode it once)
        self._count = 0  # frames decoded since the last (re)open, for streams without timestamps
        self._fresh = False
        self._last_error: str | None = None
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    # -- the FrameSource protocol ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.frame_numbers)

    @property
    def identity(self) -> str:
        return self._identity

    def read(self, index: int) -> np.ndarray:
        i = check_index(self, index)
        with self._lock:
            if i in self._cache:
                self._cache.move_to_end(i)
                return self._cache[i].copy()
            frame = self._frame_at(i)
            rgb = self._colour(self._pixels(frame, i))
            self._remember(i, rgb)
            return rgb.copy()

    def read_raw(self, index: int) -> np.ndarray:
        """Frame `index` as decoded RGB (upright), before any colour conversion: uint16 for sources of more
        than 8 bits, else uint8."""
        i = check_index(self, index)
        with self._lock:
            return self._pixels(self._frame_at(i), i)

    # -- decoding -------------------------------------------------------------------------------

    def _open(self):
        self.close()
        self._container = open_container(self.path)
        self._stream = self._container.streams[self.index.stream_index]
        self._stream.thread_type = "AUTO"
        self._frames = self._decode()
        self._position = None
        self._count = 0
        self._fresh = True  # at the start of the file: no seek needed to reach the first GOP

    def close(self):
        """Closes the file (it opens again on the next read)."""
        if self._container is not None:
            try:
                self._container.close()
            finally:
                self._container = self._stream = self._frames = self._last_frame = None
                self._position = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):
        state = self.__dict__.copy()
        for k in ("_lock", "_container", "_stream", "_frames", "_last_frame", "_cache"):
            state.pop(k, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_state()

    def _decode(self):
        """The decoder's frames from the demuxer's position; errors are noted, not raised."""
        import av

        try:
            for packet in self._container.demux(self._stream):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as e:
                    self._last_error = f"{e.strerror or e}"
                    continue
                yield from frames
        except av.error.FFmpegError as e:
            self._last_error = f"{e.strerror or e}"

    def _index_of(self, frame) -> int | None:
        if not self.index.seekable:
            self._count += 1
            return self._count - 1
        return self._pts_index.get(frame.pts)

    def _decode_until(self, i: int):
        """Decodes forward to frame i; None if the decoder passes it by or ends without it."""
        for frame in self._frames:
            k = self._index_of(frame)
            if k is None:
                continue
            self._position, self._last_frame = k, frame
            if k == i:
                return frame
            if k > i:
                return None
        return None

    def _seek(self, keyframe: int | None):
        """Puts the decoder at the keyframe with index `keyframe` (None: the start of the file)."""
        import av

        if keyframe is None or self._container is None or not self.index.seekable:
            self._open()
            return
        try:
            self._container.seek(self.index.pts[keyframe], stream=self._stream, backward=True, any_frame=False)
        except av.error.FFmpegError as e:
            self._last_error = f"seek failed: {e.strerror or e}"
            self._open()
            return
        self._frames = self._decode()
        self._position = None
        self._fresh = False

    def _frame_at(self, i: int):
        self._last_error = None
        if self._container is None:
            self._open()
        if self._position == i:
            return self._last_frame
        keyframes = self.index.keyframes
        k = bisect.bisect_right(keyframes, i) - 1
        if self._fresh and self._position is None and k <= 0:
            self._fresh = False
            frame = self._decode_until(i)
            if frame is not None:
                return frame
        if self._position is not None and self._position < i:
            # decoding on costs the frames up to i's keyframe more than a seek does
            if keyframes[max(k, 0)] - self._position <= SEEK_COST_FRAMES:
                frame = self._decode_until(i)
                if frame is not None:
                    return frame
        tries = [keyframes[j] for j in range(k, max(k - 3, -1), -1) if j >= 0] if self.index.seekable else []
        for start in [*tries, None]:
            self._seek(start)
            frame = self._decode_until(i)
            if frame is not None:
                return frame
        why = self._last_error or "the decoder never produced it"
        self.close()
        raise FootageError(f"Cannot decode frame {i} of {self.path}: {why}. The file is damaged or truncated "
                           "there: copy or export it again.")

    def _pixels(self, frame, i: int) -> np.ndarray:
        import av

        if (frame.width, frame.height) != (self.index.width, self.index.height):
            raise FootageError(f"Frame {i} of {self.path} is {frame.width}x{frame.height}, frame 0 is "
                               f"{self.index.width}x{self.index.height}: clips that change size mid-way are "
                               "not supported; transcode it to one size.")
        flags = av.video.reformatter.Interpolation
        kwargs = {}
        if frame.colorspace in UNTAGGED_MATRICES:
            kwargs["src_colorspace"] = untagged_matrix(frame.width, frame.height)
        if frame.color_range == av.video.reformatter.ColorRange.JPEG:
            kwargs["src_color_range"] = frame.color_range
        # deep sources through 16 bits; 8-bit ones straight to rgb24 (swscale widens 8-bit data to 16 bits
        # by a shift, x * 256, which would bias the rounding back to 8 bits)
        deep = max((c.bits for c in frame.format.components), default=8) > 8
        try:
            rgb = frame.to_ndarray(format="rgb48le" if deep else "rgb24",
                                   interpolation=flags.BILINEAR | flags.ACCURATE_RND, **kwargs)
        except (av.error.FFmpegError, ValueError) as e:
            raise FootageError(f"Cannot convert frame {i} of {self.path} ({frame.format.name}) to RGB: {e}") from e
        return self._orientation.apply(rgb)

    def _remember(self, i: int, rgb: np.ndarray):
        self._cache[i] = rgb
        keep = max(2, CACHE_BYTES // max(rgb.nbytes, 1))
        while len(self._cache) > keep:
            self._cache.popitem(last=False)

    def __repr__(self) -> str:
        return (f"VideoSource({str(self.path)!r}, {len(self)} frames, {self.size[0]}x{self.size[1]}, "
                f"{self.codec}, colour {self.colour.key()!r})")


def untagged_matrix(width: int, height: int):
    """The Y'CbCr matrix of a stream that names none, as mpv guesses it: HD and larger are BT.709,
    standard definition BT.601."""
    from av.video.reformatter import Colorspace

    return Colorspace.ITU709 if width >= 1280 or height > 576 else Colorspace.ITU601

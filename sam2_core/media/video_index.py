"""The frame index of a video file: every frame's timestamp in presentation order, and the keyframes.

Built once per file by demuxing its packets (no full decode), then kept as a small JSON file in a
cache folder, keyed by the file's path, size and modification time, so opening a long clip again
is instant. Frames are numbered from 0 in presentation order; packets FFmpeg marks to be discarded
(the frames before an edit list's start) are not frames of the clip.

Cache folder: `index_dir=`, else $SAM2ROTO_INDEX_DIR, else the user's cache folder
(`$XDG_CACHE_HOME/sam2roto/index`, `~/Library/Caches/...` on macOS, `%LOCALAPPDATA%\\...` on Windows).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import re
import sys
import warnings
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

from ..atomic import write_text_atomically
from .errors import FootageError
from .orientation import UPRIGHT, Orientation, from_display_matrix, from_rotate_tag

INDEX_VERSION = 2  # (2: checks more kinds of cut file, so indexes built before are built again)
PROBE_FRAMES = 12  # frames decoded when indexing, to check the timestamps follow presentation order


@dataclass
class VideoIndex:
    path: str
    file_size: int
    mtime_ns: int
    stream_index: int
    codec: str
    time_base: tuple[int, int]
    pts: list[int]  # one per frame, presentation order (sequential indexes: 0..n-1)
    keyframes: list[int]  # frame indices of keyframes, ascending
    rate: tuple[int, int] | None  # average frame rate
    start_timecode: str | None
    width: int  # as coded, before orientation
    height: int
    pix_fmt: str
    bits: int  # bits per sample of the decoded frames
    pixel_aspect: float  # as coded, before orientation
    orientation: list[bool] = field(default_factory=lambda: UPRIGHT.to_list())
    seekable: bool = True  # False: timestamps unusable, frames are reached by decoding from the start
    version: int = INDEX_VERSION

    @property
    def frame_count(self) -> int:
        return len(self.pts)

    def upright(self) -> Orientation:
        return Orientation(*self.orientation)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> VideoIndex:
        data = json.loads(text)
        data["time_base"] = tuple(data["time_base"])
        data["rate"] = tuple(data["rate"]) if data.get("rate") else None
        return cls(**data)


def default_index_dir() -> Path:
    env = os.environ.get("SAM2ROTO_INDEX_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = home / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache")
    return base / "sam2roto" / "index"


def _file_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def index_file(path: str | Path, index_dir: str | Path | None = None) -> Path:
    """Where the index of `path` is kept."""
    resolved, size, mtime = _file_key(Path(path))
    digest = hashlib.sha1(f"{resolved}|{size}|{mtime}".encode()).hexdigest()[:20]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).name)[:60]
    folder = Path(index_dir) if index_dir is not None else default_index_dir()
    return folder / f"{stem}-{digest}.json"


def load_index(path: str | Path, index_dir: str | Path | None = None) -> VideoIndex | None:
    """The cached index of `path`, or None when there is none for the file as it is now."""
    path = Path(path)
    try:
        where = index_file(path, index_dir)
        index = VideoIndex.from_json(where.read_text())
    except (OSError, ValueError, TypeError, KeyError):
        return None
    resolved, size, mtime = _file_key(path)
    if (index.version, index.path, index.file_size, index.mtime_ns) != (INDEX_VERSION, resolved, size, mtime):
        return None
    return index


def save_index(index: VideoIndex, index_dir: str | Path | None = None) -> Path | None:
    """Writes the index atomically; a cache folder that cannot be written only costs a warning."""
    where = index_file(index.path, index_dir)
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        return write_text_atomically(where, index.to_json())
    except OSError as e:
        warnings.warn(f"Cannot keep the frame index of {index.path} in {where.parent} ({e}); it will be built "
                      "again next time. Set SAM2ROTO_INDEX_DIR to a writable folder.", stacklevel=3)
        return None


def open_container(path: Path):
    """av.open with errors that name the file and say what to do."""
    import av

    if not path.is_file():
        raise FootageError(f"Video not found: {path}")
    if path.stat().st_size == 0:
        raise FootageError(f"{path} is empty (0 bytes): export or copy the video again")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise FootageError(f"Cannot open {path} as a video: {e.strerror or e}. The file is damaged, truncated "
                           "(an MP4/MOV whose copy or render did not finish has no index) or not a video.") from e


def video_stream(container, path: Path):
    import av

    streams = [s for s in container.streams.video
               if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not streams:
        raise FootageError(f"{path} holds no video stream (streams: "
                           f"{', '.join(s.type for s in container.streams) or 'none'})")
    stream = streams[0]
    if stream.codec_context is None:
        tag = getattr(stream, "codec_tag", "?")
        raise FootageError(f"{path}: the video codec is unknown to this FFmpeg build (codec tag {tag!r}), so it "
                           "cannot be decoded. Transcode the clip to ProRes, DNxHR, H.264/H.265 or an image sequence.")
    try:
        av.codec.Codec(stream.codec_context.name, "r")
    except Exception as e:
        raise FootageError(f"{path}: no decoder for its {stream.codec_context.name} video in this FFmpeg build. "
                           "Transcode the clip to ProRes, DNxHR, H.264/H.265 or an image sequence.") from e
    return stream


def _duration_tag(stream) -> float | None:
    """A Matroska track's DURATION tag (HH:MM:SS.nnnnnnnnn) in seconds."""
    text = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    m = re.match(r"^(\d+):(\d+):(\d+(?:\.\d+)?)$", text or "")
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) if m else None


def _timecode(container, stream) -> str | None:
    for meta in [stream.metadata] + [s.metadata for s in container.streams if s is not stream] + [container.metadata]:
        tc = meta.get("timecode")
        if tc:
            return tc
    return None


def _orientation(frame, stream) -> Orientation:
    for sd in frame.side_data:
        if str(sd.type).endswith("DISPLAYMATRIX"):
            import numpy as np

            matrix = np.frombuffer(bytes(sd), dtype="<i4")
            if matrix.size == 9:
                return from_display_matrix(matrix.tolist())
    rotate = stream.metadata.get("rotate")
    try:
        return from_rotate_tag(float(rotate)) if rotate else UPRIGHT
    except ValueError:
        return UPRIGHT


def _declared_seconds(container, stream, header_frames: int, tb: Fraction) -> float | None:
    """How long the header says the stream lasts from its first frame (None: it does not say).
    A fragmented MP4 has no frame count but lists each fragment's frames and their lengths."""
    if container.format.name == "avi":  # (the demuxer rebuilds its duration from what it finds when the index is lost)
        return float(header_frames * tb) if header_frames else None
    return float(stream.duration * tb) if stream.duration else None


def _seconds_missing(tag: float | None, declared: float | None, start: int, tb: Fraction, pts: list[int],
                     last_duration: int | None, rate) -> float | None:
    """How long before the end its header gives the frames end (None: it gives none).
    Matroska's DURATION tag is where the clip ends; `declared` is how long it lasts from `start`."""
    last = float((last_duration or 0) * tb) or 1.0 / float(rate)  # (the last frame's own length)
    if tag is not None:
        return tag - (float(pts[-1] * tb) + last)
    if declared is None:
        return None
    return declared - (float((pts[-1] - start) * tb) + last)


def _truncated(path: Path, found: int, expected: int | None, why: str) -> FootageError:
    missing = (f"frames {found} to {expected - 1} are missing" if expected and expected > found
               else f"frames from {found} on are missing")
    return FootageError(f"{path} is truncated or damaged: {why}, but only {found} frame(s) could be read "
                        f"({missing}). Copy or export the file again.")


# where a transport stream's last packet starts its sync byte (0x47), counted from the end:
# MPEG-TS, M2TS (AVCHD, Blu-ray: a 4-byte timestamp first), DVB with 16 bytes of parity after
TS_LAST_SYNC = (188, 192 - 4, 204)


def _ends_with_a_whole_packet(path: Path, size: int) -> bool:
    with open(path, "rb") as f:
        f.seek(max(0, size - max(TS_LAST_SYNC)))
        tail = f.read()
    return any(len(tail) >= back and tail[-back] == 0x47 for back in TS_LAST_SYNC)


def _check_whole(path: Path, size: int, container, stream, total: int, pts: list[int] | None,
                 last_duration: int | None, last_cut_short: bool, demux_error) -> None:
    """Raises FootageError for a file that is not whole. `total`: the frames demuxed; `pts`: their
    timestamps in presentation order (None when unusable)."""
    header_frames = stream.frames or 0
    tb = stream.time_base or Fraction(1, 1)
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    tag = _duration_tag(stream)  # (Matroska's, in seconds)
    declared = _declared_seconds(container, stream, header_frames, tb)
    start = stream.start_time if stream.start_time is not None else (pts[0] if pts else 0)
    missing = _seconds_missing(tag, declared, start, tb, pts, last_duration, rate) if pts and rate else None
    half_a_frame = 0.5 / float(rate) if rate else 0.0
    # fewer frames than its header lists, that also end before the time it gives (an edit list, as a
    # cut without re-encoding leaves, hides listed frames from a whole clip)
    if header_frames and total < header_frames and (missing is None or missing > half_a_frame):
        raise _truncated(path, total, header_frames, f"its header lists {header_frames} frames")
    # without a count (Matroska, fragmented MP4): frames that end before the time its header gives
    lasts = tag if tag is not None else declared if container.format.name.startswith("mov") else None
    if not header_frames and lasts and missing is not None and missing > half_a_frame:
        raise _truncated(path, len(pts), int(round(lasts * float(rate))), f"its header says it lasts {lasts:.3f}s")
    if last_cut_short:
        raise _truncated(path, total - 1, header_frames or None, "its last frame is cut short")
    # a transport stream is whole packets: a copy that stopped leaves part of one (and of a frame)
    if container.format.name == "mpegts" and not _ends_with_a_whole_packet(path, size):
        raise _truncated(path, total - 1, None, "it ends part-way through a transport packet")
    if demux_error is not None and not header_frames and missing is None:  # (nothing else to go by)
        raise _truncated(path, total, None, f"reading stopped with {demux_error.strerror or demux_error}")


def build_index(path: str | Path) -> VideoIndex:
    """Demuxes `path` once and records its frames. Raises FootageError for files that are not whole."""
    import av

    path = Path(path)
    resolved, size, mtime = _file_key(path)
    with open_container(path) as container:
        stream = video_stream(container, path)
        stream_index = stream.index
        entries: list[tuple] = []  # (pts, dts, keyframe, duration)
        total = 0
        demux_error = None
        last_cut_short = False  # (the demuxer hands on a last frame whose bytes end with the file)
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                total += 1
                last_cut_short = packet.is_corrupt
                if packet.is_discard:
                    continue
                entries.append((packet.pts, packet.dts, packet.is_keyframe, packet.duration))
        except av.error.FFmpegError as e:
            demux_error = e
        tb = stream.time_base or Fraction(1, 1)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not entries:
            raise FootageError(f"{path} holds no video frames" + (f" ({demux_error})" if demux_error else ""))
        seekable = all(e[0] is not None for e in entries) and len({e[0] for e in entries}) == len(entries)
        if seekable:
            order = sorted(range(len(entries)), key=lambda k: entries[k][0])
            pts = [entries[k][0] for k in order]
            keyframes = [pos for pos, k in enumerate(order) if entries[k][2]]
        _check_whole(path, size, container, stream, total, pts if seekable else None,
                     entries[order[-1]][3] if seekable else None, last_cut_short, demux_error)
        timecode = _timecode(container, stream)
        codec = stream.codec_context.name
        sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
        pixel_aspect = float(sar) if sar else 1.0

    # decode from the start: frames before the first one the decoder gives are not decodable
    # (leading frames of an open GOP cut at its start), and the first frame tells the orientation
    with open_container(path) as container:
        stream = container.streams[stream_index]
        probe: list = []  # the first frames' timestamps, as the decoder gives them
        first = None
        try:
            for frame in container.decode(stream):
                first = first or frame
                probe.append(frame.pts)
                if len(probe) >= PROBE_FRAMES:
                    break
        except av.error.FFmpegError as e:
            if first is None:
                raise FootageError(f"Cannot decode frame 0 of {path}: {e.strerror or e}. The file is damaged.") from e
        if first is None:
            raise FootageError(f"Cannot decode frame 0 of {path}: the decoder gave no picture. The file is damaged.")
        first_pts = first.pts
        orientation = _orientation(first, stream)
        width, height, pix_fmt = first.width, first.height, first.format.name
        bits = max(c.bits for c in first.format.components) if first.format.components else 8

    if seekable and first_pts is not None and first_pts > pts[0]:
        start = bisect.bisect_left(pts, first_pts)
        pts = pts[start:]
        keyframes = [k - start for k in keyframes if k >= start]
    if seekable and probe != pts[:len(probe)]:
        seekable = False  # timestamps that do not follow presentation order (AVI with B-frames): count instead
    if not seekable:
        pts, keyframes = _count_frames(path, stream_index)
    if not keyframes or keyframes[0] != 0:
        keyframes = [0] + keyframes
    return VideoIndex(path=resolved, file_size=size, mtime_ns=mtime, stream_index=stream_index, codec=codec,
                      time_base=(tb.numerator, tb.denominator), pts=pts, keyframes=keyframes,
                      rate=(rate.numerator, rate.denominator) if rate else None, start_timecode=timecode,
                      width=width, height=height, pix_fmt=pix_fmt, bits=int(bits), pixel_aspect=pixel_aspect,
                      orientation=orientation.to_list(), seekable=seekable)


def _count_frames(path: Path, stream_index: int) -> tuple[list[int], list[int]]:
    """For streams without usable timestamps: decode everything once and count the pictures."""
    import av

    with open_container(path) as container:
        n = 0
        try:
            for _ in container.decode(container.streams[stream_index]):
                n += 1
        except av.error.FFmpegError:
            pass
    if n == 0:
        raise FootageError(f"{path} holds no decodable video frames")
    return list(range(n)), [0]


def video_index(path: str | Path, index_dir: str | Path | None = None) -> VideoIndex:
    """The index of `path`: from the cache if the file has not changed, else built and cached."""
    index = load_index(path, index_dir)
    if index is None:
        index = build_index(path)
        save_index(index, index_dir)
    return index

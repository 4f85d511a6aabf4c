"""Video files: every read returns exactly the frame asked for, in every codec, whatever the order."""

import errno
import pickle
import random
from fractions import Fraction

import av
import numpy as np
import pytest

from sam2_core.media import FootageError, VideoSource, as_source, open_source
from sam2_core.media import video_index as vi
from tests.sam2_core.media.footage import H, W, burn, decode_all, encode_video, read_code

# (file name, codec, pixel format, encoder options, frame size)
CODECS = [
    ("h264_bframes.mp4", "libx264", "yuv420p", {"g": "6", "bf": "3"}, (W, H)),
    ("h264_open_gop.mkv", "libx264", "yuv420p",
     {"x264-params": "open-gop=1:keyint=8:min-keyint=8:bframes=3:b-pyramid=normal:scenecut=0"}, (W, H)),
    ("h264_10bit_422.mov", "libx264", "yuv422p10le", {"g": "8", "bf": "2"}, (W, H)),
    ("h265_10bit_open_gop.mp4", "libx265", "yuv420p10le",
     {"x265-params": "keyint=8:min-keyint=8:bframes=3:open-gop=1:log-level=error"}, (W, H)),
    ("h265_12bit_444.mov", "libx265", "yuv444p12le", {"x265-params": "keyint=10:log-level=error"}, (W, H)),
    ("prores_422hq.mov", "prores_ks", "yuv422p10le", {"profile": "3"}, (W, H)),
    ("prores_4444.mov", "prores_ks", "yuva444p10le", {"profile": "4"}, (W, H)),
    ("dnxhr_hqx.mov", "dnxhd", "yuv422p10le", {"profile": "dnxhr_hqx"}, (256, 144)),
    ("dnxhr_sq.mxf", "dnxhd", "yuv422p", {"profile": "dnxhr_sq"}, (256, 144)),
    ("vp9.webm", "libvpx-vp9", "yuv420p", {"g": "8", "deadline": "realtime", "cpu-used": "8"}, (W, H)),
    ("ffv1_16bit.mkv", "ffv1", "yuv444p16le", {}, (W, H)),
    ("mjpeg.avi", "mjpeg", "yuvj420p", {}, (W, H)),
]
N = 24
# forward, backward, the last frame, jumps across GOPs both ways, repeats
ORDER = (list(range(N)) + list(range(N - 1, -1, -1)) + [N - 1, 0, N - 1, 12, 11, 13, 7, 20, 2, 23, 8, 8]
         + random.Random(4).sample(range(N), N))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return {name: encode_video(folder / name, codec, fmt, N, options=opts, size=size)
            for name, codec, fmt, opts, size in CODECS}


@pytest.mark.parametrize("name", [c[0] for c in CODECS])
def test_random_access_is_frame_exact(clips, name):
    path = clips[name]
    src = open_source(path)
    assert isinstance(src, VideoSource)
    assert len(src) == N == len(decode_all(path))  # the index counts what the decoder gives
    assert src.frame_numbers == list(range(N))
    assert src.size == next(c[4] for c in CODECS if c[0] == name)
    for i in ORDER:
        frame = src.read(i)
        assert frame.shape == (src.size[1], src.size[0], 3) and frame.dtype == np.uint8
        assert read_code(frame) == i, f"{name}: read({i}) gave frame {read_code(frame)}"


@pytest.mark.parametrize("name", ["h264_bframes.mp4", "h265_10bit_open_gop.mp4", "vp9.webm"])
def test_pixels_equal_a_straight_decode(clips, name):
    """Not just the right code: the very pixels a decode from the start gives, after any seek
    (8-bit sources converted straight to RGB, deeper ones through 16 bits and rounded)."""
    flags = av.video.reformatter.Interpolation.BILINEAR | av.video.reformatter.Interpolation.ACCURATE_RND
    with av.open(str(clips[name])) as container:
        reference = []
        for f in container.decode(video=0):
            if max(c.bits for c in f.format.components) > 8:
                deep = f.to_ndarray(format="rgb48le", interpolation=flags).astype(np.uint32)
                reference.append(((deep * 255 + 32767) // 65535).astype(np.uint8))
            else:
                reference.append(f.to_ndarray(format="rgb24", interpolation=flags))
    src = open_source(clips[name])
    for i in (17, 3, 23, 0, 9, 8):
        assert np.array_equal(src.read(i), reference[i])


def test_sequential_reads_keep_the_decoder_open(clips, monkeypatch):
    seeks = []
    real_seek = VideoSource._seek
    monkeypatch.setattr(VideoSource, "_seek", lambda self, k: (seeks.append(k), real_seek(self, k)))
    for name in ("prores_422hq.mov", "h264_bframes.mp4"):  # every frame a keyframe; GOPs of 6 with B-frames
        seeks.clear()
        src = open_source(clips[name])
        for i in range(N):
            assert read_code(src.read(i)) == i
        assert seeks == []  # decoded forward from the start, never sought
    src._cache.clear()  # (recent frames are kept: forget them to make the decoder work)
    assert read_code(src.read(3)) == 3  # backwards: one seek, to the keyframe at or before frame 3
    assert seeks == [0]
    assert read_code(src.read(19)) == 19  # far ahead: a seek to the GOP starting at 18
    assert seeks == [0, 18]
    assert read_code(src.read(21)) == 21  # just ahead: decoded on
    assert seeks == [0, 18]


def test_a_frame_read_and_read_as_stored_is_decoded_once(clips, monkeypatch):
    """(A premultiplied export reads both.)"""
    seeks = []
    real_seek = VideoSource._seek
    monkeypatch.setattr(VideoSource, "_seek", lambda self, k: (seeks.append(k), real_seek(self, k)))
    src = open_source(clips["h264_bframes.mp4"])
    for i in range(N):
        assert read_code(src.read(i)) == i and read_code(src.read_raw(i)) == i
    assert seeks == []


def test_recent_frames_are_kept(clips, monkeypatch):
    src = open_source(clips["prores_422hq.mov"])
    first = src.read(5)
    monkeypatch.setattr(VideoSource, "_frame_at", lambda self, i: pytest.fail("decoded again"))
    again = src.read(5)
    assert np.array_equal(first, again)
    again[:] = 0  # callers get their own copy
    assert np.array_equal(src.read(5), first)


def test_variable_frame_rate_in_presentation_order(tmp_path):
    pts = [0, 40, 80, 200, 210, 220, 400, 433, 466, 500, 700, 1000]
    for name in ("vfr.mp4", "vfr.mkv"):
        path = encode_video(tmp_path / name, n=len(pts), pts=pts, options={"bf": "2", "g": "4"})
        src = open_source(path)
        assert len(src) == len(pts) == len(decode_all(path))
        assert src.variable_rate
        assert np.allclose(src.frame_times, [p / 1000 for p in pts], atol=1e-3)
        for i in [11, 0, 5, 3, 9, 10, 1, 6, 2, 4, 7, 8]:
            assert read_code(src.read(i)) == i


@pytest.mark.parametrize("hidden", [2, 7, 13])
def test_edit_list_trimmed_start(tmp_path, hidden):
    """A clip cut without re-encoding: an MP4 edit list hides its first frames; they are not
    frames. Cut past a keyframe, the demuxer drops the packets before it: the clip is still whole."""
    full = encode_video(tmp_path / "full.mp4", options={"g": "6", "bf": "3"})
    cut = tmp_path / "cut.mp4"
    with av.open(str(full)) as src, av.open(str(cut), "w") as dst:
        stream = src.streams.video[0]
        out = dst.add_stream_from_template(stream)
        shift = hidden * int(1 / (24 * stream.time_base))
        for packet in src.demux(stream):
            if packet.dts is None:
                continue
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = out
            dst.mux(packet)
    src = open_source(cut)
    assert len(src) == N - hidden == len(decode_all(cut))
    for i in [0, N - hidden - 1, 5, 1, 9]:
        assert read_code(src.read(i)) == i + hidden


def test_matroska_starting_after_zero(tmp_path):
    """A grab whose timestamps start at 1 s: Matroska's DURATION is where it ends, not how long it is."""
    pts = [1000 + 40 * i for i in range(30)]
    path = encode_video(tmp_path / "grab.mkv", n=len(pts), pts=pts, rate=25, options={"g": "5"})
    src = open_source(path)
    assert len(src) == 30 and [read_code(src.read(i)) for i in (0, 29)] == [0, 29]


@pytest.mark.parametrize("name", ["elementary.h264", "bframes.avi"])
def test_streams_without_usable_timestamps(tmp_path, name):
    """A raw H.264 stream has no timestamps; AVI gives B-frame streams made-up ones. Such clips are
    counted by decoding once and reached by decoding from the start, slowly but exactly."""
    path = encode_video(tmp_path / name, n=16, options={"g": "6", "bf": "3"})
    src = open_source(path)
    assert len(src) == 16 == len(decode_all(path)) and not src.index.seekable
    for i in [0, 5, 15, 3, 3, 9, 10]:
        assert read_code(src.read(i)) == i


ROTATIONS = [(90, False, False), (-90, False, False), (180, False, False), (90, True, False), (0, True, False),
             (0, False, True)]


@pytest.mark.parametrize("rotation", ROTATIONS)
def test_rotation_metadata_makes_frames_upright(tmp_path, rotation):
    """PyAV's set_display_rotation: turn counter-clockwise by `degrees`, then mirror. PNG-in-MOV is lossless."""
    pictures = [burn(i) for i in range(3)]
    path = encode_video(tmp_path / "turned.mov", "png", "rgb24", frames=pictures, rotation=rotation)
    src = open_source(path)
    degrees, hflip, vflip = rotation
    expected = np.rot90(pictures[1], k=degrees // 90)
    if hflip:
        expected = expected[:, ::-1]
    if vflip:
        expected = expected[::-1]
    assert src.size == (expected.shape[1], expected.shape[0])
    assert np.array_equal(src.read(1), expected)


def test_rate_timecode_and_pixel_aspect(tmp_path):
    path = encode_video(tmp_path / "tc.mov", "prores_ks", "yuv422p10le", 4, rate=Fraction(24000, 1001),
                        timecode="01:00:00:12", options={"profile": "2"})
    src = open_source(path)
    assert src.rate == Fraction(24000, 1001)
    assert src.start_timecode == "01:00:00:12"
    assert src.pixel_aspect == 1.0
    anamorphic = open_source(encode_video(tmp_path / "ana.mp4", n=4, sar=Fraction(2, 1)))
    assert anamorphic.pixel_aspect == 2.0 and anamorphic.size == (W, H)  # plate pixels, not display pixels
    assert open_source(encode_video(tmp_path / "plain.mp4", n=4)).start_timecode is None


COLOURS = [(0, 200, 0), (200, 30, 30), (40, 60, 220), (230, 220, 40)]


def _patches(width, height):
    """Four flat, saturated patches side by side (where BT.601 and BT.709 differ most)."""
    img = np.zeros((height, width, 3), np.uint8)
    for k, colour in enumerate(COLOURS):
        img[:, k * width // 4:(k + 1) * width // 4] = colour
    return img


def _patch_error(decoded, width):
    """The largest error in code values at the middle of each patch."""
    return max(np.abs(decoded[8, (2 * k + 1) * width // 8].astype(int) - colour).max()
               for k, colour in enumerate(COLOURS))


@pytest.mark.parametrize("size,matrix,tagged", [((1280, 720), "ITU709", False),  # untagged HD: BT.709
                                                ((720, 576), "ITU601", False),  # untagged SD: BT.601
                                                ((1280, 720), "ITU601", True),  # a tag is obeyed
                                                ((720, 480), "ITU709", True)])
def test_yuv_matrix_as_tagged_or_guessed_from_the_size(tmp_path, size, matrix, tagged):
    """Y'CbCr becomes RGB by the stream's matrix; an untagged stream gets BT.709 from HD up and BT.601
    below, as players and hosts guess it (FFmpeg alone decodes every untagged stream as BT.601, and an
    untagged HD green of (0, 200, 0) came out as (15, 234, 5))."""
    colourspace = getattr(av.video.reformatter.Colorspace, matrix)
    picture = _patches(*size)
    path = encode_video(tmp_path / "patches.mkv", "libx264", "yuv444p",
                        frames=[picture], size=size, options={"qp": "0"}, matrix=colourspace, tag_matrix=tagged)
    src = open_source(path)
    assert _patch_error(src.read(0), size[0]) <= 2
    assert _patch_error(src.read_raw(0), size[0]) <= 2


def _ramp(width=W, height=32):
    """8-bit code values with fractions (100.0 .. 108.0 across), and the same as 16-bit RGB."""
    x = np.linspace(100.0, 108.0, width)[None, :]
    ideal = np.zeros((height, width, 3))
    ideal[..., 0], ideal[..., 1], ideal[..., 2] = x, x + 20, x + 40
    return ideal, np.round(ideal * 257).astype(np.uint16)


def test_16bit_video_is_exact(tmp_path):
    ideal, r16 = _ramp()
    path = encode_video(tmp_path / "rgb16.mkv", "ffv1", "gbrp16le", frames=[r16, r16], size=(W, 32),
                        src_format="rgb48le")
    src = open_source(path)
    assert np.array_equal(src.read_raw(0), r16)
    assert np.array_equal(src.read(0), ((r16.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8))


@pytest.mark.parametrize("codec,fmt,opts", [("prores_ks", "yuv422p10le", {"profile": "3"}),
                                            ("libx265", "yuv444p12le", {"x265-params": "lossless=1:log-level=error"}),
                                            ("libx264", "yuv420p10le", {"crf": "0"})])
def test_high_bit_depth_without_banding(tmp_path, codec, fmt, opts):
    """A fine ramp through 10/12-bit video lands on the nearest 8-bit values, unbiased (an 8-bit
    YUV path truncates: about one code value low on average)."""
    ideal, r16 = _ramp()
    path = encode_video(tmp_path / "ramp.mkv", codec, fmt, frames=[r16, r16], size=(W, 32), options=opts,
                        src_format="rgb48le")
    err = open_source(path).read(0).astype(float) - np.round(ideal)
    assert np.abs(err).max() <= 1
    assert np.abs(err).mean() < 0.2
    assert abs(err.mean()) < 0.1


def test_index_is_built_once_and_kept(clips, index_dir, monkeypatch):
    path = clips["h264_bframes.mp4"]
    open_source(path)
    kept = list(index_dir.glob("*.json"))
    assert len(kept) == 1 and kept[0].name.startswith("h264_bframes.mp4-")
    monkeypatch.setattr(vi, "build_index", lambda p: pytest.fail("index built again"))
    src = open_source(path)
    assert len(src) == N and read_code(src.read(N - 1)) == N - 1


def test_index_follows_the_file(tmp_path, monkeypatch):
    path = encode_video(tmp_path / "clip.mp4", n=10)
    assert len(open_source(path)) == 10
    encode_video(path, n=14)  # the file is replaced: its index must be too
    assert len(open_source(path)) == 14
    elsewhere = tmp_path / "elsewhere"
    open_source(path, index_dir=elsewhere)
    assert len(list(elsewhere.glob("clip.mp4-*.json"))) == 1


def test_unwritable_index_folder_only_warns(tmp_path):
    path = encode_video(tmp_path / "clip.mp4", n=5)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.warns(UserWarning, match="frame index"):
        src = open_source(path, index_dir=not_a_folder / "index")
    assert read_code(src.read(4)) == 4


def test_a_disk_full_while_the_index_is_written_leaves_nothing_behind(tmp_path, monkeypatch):
    path = encode_video(tmp_path / "clip.mp4", n=5)
    folder = tmp_path / "index"
    import sam2_core.atomic

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sam2_core.atomic.os, "fsync", full)
    with pytest.warns(UserWarning, match="No space left on device"):
        src = open_source(path, index_dir=folder)
    assert read_code(src.read(4)) == 4
    assert list(folder.iterdir()) == []  # no half-written index, no temporary file


def test_source_survives_pickling_and_identity(clips):
    src = open_source(clips["prores_422hq.mov"])
    src.read(3)
    copy = pickle.loads(pickle.dumps(src))
    assert read_code(copy.read(9)) == 9
    assert copy.identity == src.identity
    assert open_source(clips["prores_422hq.mov"], colorspace="ACEScct").identity != src.identity
    assert open_source(clips["vp9.webm"]).identity != src.identity


def test_as_source_opens_video_files(clips):
    src = as_source(str(clips["vp9.webm"]))
    assert isinstance(src, VideoSource) and len(src) == N


def test_reading_outside_the_clip(clips):
    src = open_source(clips["mjpeg.avi"])
    with pytest.raises(IndexError):
        src.read(N)
    with pytest.raises(IndexError):
        src.read(-1)
    assert not isinstance(IndexError(), FootageError)

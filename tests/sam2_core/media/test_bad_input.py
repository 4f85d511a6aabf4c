"""Bad footage gets a clear FootageError naming the file (and frame) and saying what to do; nothing
escapes from deep inside a decoder."""

import re
from fractions import Fraction

import av
import numpy as np
import pytest

from sam2_core.media import FootageError, open_source
from tests.sam2_core.media.footage import H, W, burn, encode_video, read_code, write_image


def cut(path, fraction):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    return path


def test_truncated_mp4_without_its_index(tmp_path):
    path = cut(encode_video(tmp_path / "render.mp4", n=24), 0.6)  # the moov box comes last: it is gone
    with pytest.raises(FootageError, match=r"Cannot open .*render\.mp4 as a video.*truncated"):
        open_source(path)


def test_truncated_mov_with_its_index_first(tmp_path):
    path = cut(encode_video(tmp_path / "copy.mov", n=24, options={"g": "6"},
                            container_options={"movflags": "faststart"}), 0.6)
    with pytest.raises(FootageError) as e:
        open_source(path)
    message = str(e.value)
    assert "copy.mov is truncated or damaged: its header lists 24 frames" in message
    assert re.search(r"frames \d+ to 23 are missing\)\. Copy or export the file again", message)


def test_truncated_with_a_start_offset_or_by_a_frame_or_two(tmp_path):
    """A clip starting at 5 s is not given those 5 s as slack; two missing frames are missing."""
    late = encode_video(tmp_path / "late.mp4", n=60, pts=[5000 + 40 * i for i in range(60)], rate=25,
                        options={"g": "6"}, container_options={"movflags": "faststart"})
    short = encode_video(tmp_path / "short.mp4", n=48, options={"g": "6"}, container_options={"movflags": "faststart"})
    for path, frames in ((late, 60), (short, 48)):
        assert len(open_source(path)) == frames  # whole, it opens
        data = path.read_bytes()
        path.write_bytes(data[:-4000 if path is late else -200])
        with pytest.raises(FootageError, match=rf"{path.name} is truncated .*its header lists {frames} frames"):
            open_source(path)


def test_truncated_in_its_last_frame(tmp_path):
    """A file cut by a byte: its last frame's data ends with it."""
    path = encode_video(tmp_path / "cut.mov", n=24, options={"bf": "3", "g": "12"},
                        container_options={"movflags": "faststart"})
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(FootageError, match=r"cut\.mov is truncated or damaged: its last frame is cut short"):
        open_source(path)


def test_truncated_matroska(tmp_path):
    path = cut(encode_video(tmp_path / "grab.mkv", n=48, options={"g": "6"}), 0.5)
    with pytest.raises(FootageError, match=r"grab\.mkv is truncated .*lasts 2\.000s.*frames \d+ to 47 are missing"):
        open_source(path)


def packet_ends(path):
    """Where each of the video's packets ends in the file, in file order."""
    with av.open(str(path)) as container:
        return sorted(p.pos + p.size for p in container.demux(video=0) if p.size)


def test_truncated_avi_whose_index_is_lost(tmp_path):
    """An AVI's index comes last, so a cut loses it: the demuxer then rebuilds the clip's length from
    the frames it finds, and only the header's count of frames tells what is missing."""
    path = encode_video(tmp_path / "capture.avi", codec="mjpeg", pix_fmt="yuvj420p", n=24)
    data, ends = path.read_bytes(), packet_ends(path)
    path.write_bytes(data[:ends[-1]])  # every frame, but no index: whole
    assert len(open_source(path)) == 24
    path.write_bytes(data[:ends[20]])  # cut after a frame: 21 of 24
    with pytest.raises(FootageError, match=r"capture\.avi is truncated .*header lists 24 frames.*frames 21 to 23"):
        open_source(path)


def test_avi_with_dropped_frames_is_whole(tmp_path):
    """Capture tools write an empty chunk for a frame they dropped; the header counts it."""
    path = tmp_path / "dropped.avi"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mjpeg", rate=24)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuvj420p"
        for i in range(10):
            if i in (4, 5):
                packet = av.Packet(b"")
                packet.stream, packet.pts, packet.dts, packet.time_base = stream, i, i, Fraction(1, 24)
                out.mux(packet)
                continue
            frame = av.VideoFrame.from_ndarray(burn(i), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 24)
            for packet in stream.encode(frame):
                out.mux(packet)
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 10
    src = open_source(path)
    assert [read_code(src.read(i)) for i in range(len(src))] == [0, 1, 2, 3, 6, 7, 8, 9]


def test_truncated_fragmented_mp4(tmp_path):
    """A fragmented MP4 (as screen and live recorders write) has no count of frames; each fragment
    lists its own, so a cut inside a fragment shows."""
    path = encode_video(tmp_path / "stream.mp4", n=24, options={"g": "6"},
                        container_options={"movflags": "frag_keyframe+empty_moov"})
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0
    assert len(open_source(path)) == 24
    path.write_bytes(path.read_bytes()[:packet_ends(path)[8]])
    with pytest.raises(FootageError, match=r"stream\.mp4 is truncated .*lasts .*only 9 frame"):
        open_source(path)


@pytest.mark.parametrize("m2ts", [False, True], ids=["ts", "m2ts"])
def test_truncated_transport_stream(tmp_path, m2ts):
    """MPEG-TS has no count of frames or length; it is whole 188-byte packets (192 in M2TS, as AVCHD
    cameras write), so a copy that stopped part-way shows."""
    name = "camera.mts" if m2ts else "broadcast.ts"
    path = encode_video(tmp_path / name, n=24, container_options={"mpegts_m2ts_mode": "1"} if m2ts else {})
    assert len(open_source(path)) == 24
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(FootageError, match=rf"{name} is truncated .*part-way through a transport packet"):
        open_source(path)


def test_whole_transport_streams_of_other_packings_open(tmp_path):
    """DVB's 204-byte packets (16 bytes of parity each), and a capture that began part-way
    through a packet: whole, though their sizes are no multiple of 188."""
    plain = encode_video(tmp_path / "plain.ts", n=24).read_bytes()
    packets = [plain[k:k + 188] for k in range(0, len(plain), 188)]
    (tmp_path / "dvb.ts").write_bytes(b"".join(p + bytes(16) for p in packets))
    (tmp_path / "late.ts").write_bytes(plain[100:])
    for name in ("dvb.ts", "late.ts"):
        assert len(open_source(tmp_path / name)) == 24, name


def test_unknown_codec(tmp_path):
    path = encode_video(tmp_path / "odd.mkv", n=4)
    data = path.read_bytes()
    assert data.count(b"V_MPEG4/ISO/AVC") == 1
    path.write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_ZZZZZ/ISO/AVC"))  # a codec no FFmpeg knows
    with pytest.raises(FootageError, match=r"odd\.mkv: the video codec is unknown .*Transcode"):
        open_source(path)


def test_empty_missing_and_non_video_files(tmp_path):
    (tmp_path / "empty.mov").write_bytes(b"")
    with pytest.raises(FootageError, match=r"empty\.mov is empty \(0 bytes\)"):
        open_source(tmp_path / "empty.mov")
    (tmp_path / "notes.mov").write_text("not a video at all\n" * 50)
    with pytest.raises(FootageError, match=r"Cannot open .*notes\.mov as a video"):
        open_source(tmp_path / "notes.mov")
    with pytest.raises(FootageError, match=r"Footage not found: .*nothing\.mov"):
        open_source(tmp_path / "nothing.mov")
    (tmp_path / "empty.1001.exr").write_bytes(b"")
    with pytest.raises(FootageError, match=r"frame 1001 \(.*empty\.1001\.exr\): the file is empty"):
        open_source(tmp_path / "empty.1001.exr")
    with pytest.raises(FootageError, match=r"Footage not found: .*gone\.1001\.exr"):
        open_source(tmp_path / "gone.1001.exr")
    with pytest.raises(ValueError, match="missing_frames"):
        open_source(tmp_path / "empty.1001.exr", missing_frames="skip")


def test_corrupt_exr_in_the_middle_of_a_sequence(tmp_path):
    for n in range(1001, 1006):
        write_image(tmp_path / f"plate.{n}.exr", burn(n - 1000).astype(np.float32) / 255, "half",
                    attrs={"compression": "zip"})
    cut(tmp_path / "plate.1003.exr", 0.5)
    data = bytearray((tmp_path / "plate.1004.exr").read_bytes())
    data[len(data) // 2:] = bytes(len(data) - len(data) // 2)  # zeros where the pixels were
    (tmp_path / "plate.1004.exr").write_bytes(bytes(data))
    src = open_source(tmp_path / "plate.####.exr", mode="passthrough")
    assert len(src) == 5 and read_code(src.read(4)) == 5 and read_code(src.read(1)) == 2
    for index, number in ((2, 1003), (3, 1004)):
        with pytest.raises(FootageError, match=rf"Cannot read frame {number} \(.*plate\.{number}\.exr\): .*again"):
            src.read(index)
    cut(tmp_path / "plate.1001.exr", 0.01)  # when the first frame is broken, opening says so
    with pytest.raises(FootageError, match=r"frame 1001 \(.*plate\.1001\.exr\)"):
        open_source(tmp_path / "plate.####.exr")


def test_a_jpeg_cut_short_in_a_sequence(tmp_path):
    """OpenImageIO still gives pixels for it (grey where the data is missing): it is an error."""
    for n in range(1, 4):
        write_image(tmp_path / f"shot_{n:03d}.jpg", burn(n), "uint8")
    cut(tmp_path / "shot_002.jpg", 0.5)
    src = open_source(tmp_path / "shot_001.jpg")
    assert len(src) == 3 and read_code(src.read(2)) == 3
    with pytest.raises(FootageError, match=r"Cannot read frame 2 \(.*shot_002\.jpg\): .*again"):
        src.read(1)


def test_names_with_a_hash_that_are_files_not_patterns(tmp_path):
    video = encode_video(tmp_path / "take #2.mp4", n=6)
    assert len(open_source(video)) == 6
    write_image(tmp_path / "ref #1.jpg", burn(9), "uint8")
    still = open_source(tmp_path / "ref #1.jpg")
    assert len(still) == 1 and read_code(still.read(0)) == 9
    shot = tmp_path / "take #2"
    shot.mkdir()
    for n in range(1, 4):
        write_image(shot / f"take#2.{n:04d}.png", burn(n), "uint8")
    for opened in (shot / "take#2.0002.png", shot):  # a frame of it, or its folder: the whole sequence
        src = open_source(opened)
        assert src.frame_numbers == [1, 2, 3] and read_code(src.read(2)) == 3, opened


def test_a_damaged_frame_in_a_video(tmp_path):
    path = encode_video(tmp_path / "edit.mov", "prores_ks", "yuv422p10le", 12, options={"profile": "3"})
    with av.open(str(path)) as container:
        packets = sorted((p.pts, p.pos, p.size) for p in container.demux(video=0) if p.size)
    _, pos, size = packets[6]
    data = bytearray(path.read_bytes())
    data[pos + 8:pos + size] = b"\xff" * (size - 8)
    path.write_bytes(bytes(data))
    src = open_source(path)
    with pytest.raises(FootageError, match=r"Cannot decode frame 6 of .*edit\.mov: .*damaged"):
        src.read(6)
    assert [read_code(src.read(i)) for i in (7, 5, 11, 0)] == [7, 5, 11, 0]


def test_pattern_matching_nothing(tmp_path):
    write_image(tmp_path / "plate.001.exr", np.zeros((4, 4, 3), np.float32), "half")
    with pytest.raises(FootageError, match=r"No frames match .*plate\.%04d\.exr\. Files there ending in '\.exr': "
                                           r"plate\.001\.exr\. Check the name and the number of digits"):
        open_source(tmp_path / "plate.####.exr")
    with pytest.raises(FootageError, match=r"No such folder"):
        open_source(tmp_path / "elsewhere" / "plate.%04d.exr")
    (tmp_path / "docs").mkdir()
    with pytest.raises(FootageError, match=r"No image sequence in the folder .*docs"):
        open_source(tmp_path / "docs")


def test_frames_of_another_size_or_without_colour_channels(tmp_path):
    write_image(tmp_path / "s.1.png", burn(1), "uint8")
    write_image(tmp_path / "s.2.png", burn(2, 80, 60), "uint8")
    src = open_source(tmp_path / "s.1.png")
    with pytest.raises(FootageError, match=r"Frame 2 \(.*s\.2\.png\) is 80x60, the first frame is 160x120"):
        src.read(1)
    write_image(tmp_path / "depth.1.exr", np.zeros((4, 4, 2), np.float32), "float", channels=("Z", "ZBack"))
    with pytest.raises(FootageError, match=r"depth\.1\.exr\): no RGB \(or grey\) channels in it \(channels: Z, ZBack"):
        open_source(tmp_path / "depth.1.exr")


def test_errors_are_value_errors():
    assert issubclass(FootageError, ValueError)

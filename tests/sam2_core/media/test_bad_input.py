"""Bad footage gets a clear FootageError naming the file (and frame) and saying what to do; nothing
escapes from deep inside a decoder."""

import re

import av
import numpy as np
import pytest

from sam2_core.media import FootageError, open_source
from tests.sam2_core.media.footage import burn, encode_video, read_code, write_image


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

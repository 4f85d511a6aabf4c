"""Matte writers: every format reads back as written (names, size, frame numbers, pixel aspect,
values within the format's precision); no half-written file; a full disk and a busy output
folder give clear errors and lose nothing already written."""

import errno
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import numpy as np
import OpenImageIO as oiio
import pytest

from sam2_core.mattes import writers
from sam2_core.mattes.writers import (
    AlphaSequenceWriter,
    AlphaVideoWriter,
    ExportError,
    LayeredExrWriter,
    MatteWriter,
    PremultipliedWriter,
    prepare_output_dir,
    safe_name,
)

ROOT = Path(__file__).resolve().parents[3]
H, W = 48, 64
FRAMES = list(range(1001, 1006))
OBJECTS = ("car", "my person")


def matte(frame: int, k: int = 0) -> np.ndarray:
    """A soft-edged disc that moves with the frame, like a real matte (flat 0/1 areas, soft edge)."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    cx, cy, r = 16 + 4 * (frame - 1000) + 20 * k, 20 + 3 * k, 12 + 2 * k
    return np.clip((r - np.hypot(xx - cx, yy - cy)) / 4 + 0.5, 0, 1).astype(np.float32)


def mattes(frame: int) -> dict:
    return {name: matte(frame, k) for k, name in enumerate(OBJECTS)}


def plate(frame: int) -> np.ndarray:
    rng = np.random.default_rng(frame)
    yy, xx = np.mgrid[0:H, 0:W]
    smooth = np.stack([xx * 255 / W, yy * 255 / H, np.full((H, W), 128.0)], axis=2)
    return np.clip(smooth + rng.normal(0, 6, (H, W, 3)), 0, 255).astype(np.uint8)


def read_image(path: Path):
    inp = oiio.ImageInput.open(str(path))
    assert inp is not None, oiio.geterror()
    spec = inp.spec()
    pixels = inp.read_image(oiio.FLOAT)
    info = {"size": (spec.width, spec.height), "channels": tuple(spec.channelnames), "format": str(spec.format),
            "compression": spec.get_string_attribute("compression"), "par": spec.getattribute("PixelAspectRatio")}
    inp.close()
    return pixels, info


def _plane(p) -> np.ndarray:
    return np.frombuffer(p, np.uint16).reshape(p.height, p.line_size // 2)[:, : p.width]


def read_video(path: Path):
    """Decoded frames as planes scaled to [0, 1] (Y, Cb, Cr, A for ProRes; grey for FFV1), and stream facts."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        meta = {k.lower(): v for k, v in s.metadata.items()}
        info = {"codec": s.codec_context.name, "size": (s.codec_context.width, s.codec_context.height),
                "profile": s.profile, "timecode": meta.get("timecode"), "sar": s.sample_aspect_ratio}
        frames = []
        for f in c.decode(s):
            planes = [_plane(p).astype(np.float64) for p in f.planes]
            if f.format.name == "gray16le":
                frames.append([planes[0] / 65535])
                continue
            bits = int(f.format.name.split("p")[-1][:2])  # yuva444p12le -> 12
            k = 2 ** (bits - 8)
            y, cb, cr, a = planes
            frames.append([(y - 16 * k) / (219 * k), (cb - 128 * k) / (224 * k), (cr - 128 * k) / (224 * k),
                           a / (2**bits - 1)])
        info["pix_fmt"] = f.format.name
    return frames, info


def ycbcr_to_rgb(y, cb, cr) -> np.ndarray:
    return np.stack([y + 1.5748 * cr, y - 0.1873 * cb - 0.4681 * cr, y + 1.8556 * cb], axis=2)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# -- each writer reads back as written ------------------------------------------------------


def test_alpha_sequence_exr_half_zip_named_by_frame(tmp_path):
    with AlphaSequenceWriter(tmp_path, "exr", pixel_aspect=2.0) as w:
        assert isinstance(w, MatteWriter)
        for n in FRAMES:
            assert w.write(n, mattes(n)) == [tmp_path / "car" / f"car.{n}.exr",
                                             tmp_path / "my_person" / f"my_person.{n}.exr"]
    assert files_under(tmp_path) == sorted(f"{o}/{o}.{n}.exr" for o in ("car", "my_person") for n in FRAMES)
    assert sorted(w.expected_files(FRAMES, OBJECTS)) == sorted(tmp_path / f for f in files_under(tmp_path))
    for n in FRAMES:
        for k, obj in enumerate(("car", "my_person")):
            pixels, info = read_image(tmp_path / obj / f"{obj}.{n}.exr")
            assert info == {"size": (W, H), "channels": ("A",), "format": "half", "compression": "zip", "par": 2.0}
            assert np.abs(pixels[:, :, 0] - matte(n, k)).max() <= 1e-3


@pytest.mark.parametrize("fmt, ext", [("png16", "png"), ("tiff16", "tif")])
def test_alpha_sequence_16bit(tmp_path, fmt, ext):
    with AlphaSequenceWriter(tmp_path, fmt, pattern="{object}.{frame:05d}.{ext}", pixel_aspect=2.0) as w:
        for n in FRAMES:
            w.write(n, mattes(n))
    assert files_under(tmp_path) == sorted(f"{o}.{n:05d}.{ext}" for o in ("car", "my_person") for n in FRAMES)
    for n in FRAMES:
        pixels, info = read_image(tmp_path / f"car.{n:05d}.{ext}")
        assert info["size"] == (W, H) and info["format"] == "uint16" and len(info["channels"]) == 1
        assert info["par"] == pytest.approx(2.0)
        assert np.abs(pixels[:, :, 0] - matte(n)).max() <= 1 / 65535  # round(alpha * 65535)


def test_layered_exr_has_a_named_layer_per_object(tmp_path):
    with LayeredExrWriter(tmp_path, pixel_aspect=0.9) as w:
        for n in FRAMES:
            assert w.write(n, mattes(n)) == [tmp_path / f"mattes.{n}.exr"]
    assert files_under(tmp_path) == [f"mattes.{n}.exr" for n in FRAMES]
    for n in FRAMES:
        pixels, info = read_image(tmp_path / f"mattes.{n}.exr")
        assert sorted(info["channels"]) == ["car.A", "my_person.A"]
        assert info["size"] == (W, H) and info["format"] == "half" and info["compression"] == "zip"
        assert info["par"] == pytest.approx(0.9)
        for k, layer in enumerate(("car.A", "my_person.A")):
            assert np.abs(pixels[:, :, info["channels"].index(layer)] - matte(n, k)).max() <= 1e-3


def test_alpha_video_prores4444_matte_in_luma_and_alpha(tmp_path):
    path = tmp_path / "car.mov"
    with AlphaVideoWriter(path, 24, (W, H), pixel_aspect=2.0, object_name="car") as w:
        for n in FRAMES:
            assert w.write(n, mattes(n)) == []
        assert not path.exists()  # only a finished video takes its name
    assert files_under(tmp_path) == ["car.mov"]
    frames, info = read_video(path)
    assert len(frames) == len(FRAMES)
    assert info["codec"] == "prores" and info["profile"] == "4444" and info["pix_fmt"].startswith("yuva444p")
    assert info["size"] == (W, H) and info["sar"] == 2 and info["timecode"] == "00:00:41:17"  # frame 1001 at 24
    for n, (y, cb, cr, a) in zip(FRAMES, frames):
        assert np.abs(y - matte(n)).max() < 0.02 and np.abs(a - matte(n)).max() < 0.02
        assert np.abs(cb).max() < 0.01 and np.abs(cr).max() < 0.01  # no colour: a grey matte


def test_alpha_video_ffv1_is_lossless_16bit(tmp_path):
    path = tmp_path / "person.mkv"
    with AlphaVideoWriter(path, "24000/1001", (W, H), codec="ffv1") as w:
        for n in FRAMES:
            w.write(n, {"person": matte(n, 1)})
    frames, info = read_video(path)
    assert info["codec"] == "ffv1" and info["pix_fmt"] == "gray16le" and info["size"] == (W, H)
    assert info["timecode"] == "00:00:41:17"  # 23.976 counts timecode at 24
    assert len(frames) == len(FRAMES)
    for n, (grey,) in zip(FRAMES, frames):
        assert np.abs(grey - matte(n, 1)).max() <= 0.5 / 65535
    with pytest.raises(ValueError, match="pixel aspect"):
        AlphaVideoWriter(tmp_path / "x.mkv", 24, (W, H), codec="ffv1", pixel_aspect=2.0)


@pytest.mark.parametrize("rate, footage, first_written, expected", [
    (24, (1001, "01:00:00:12"), 1001, "01:00:00:12"),  # the plates' own timecode, for an editor to conform to
    (24, (1000, "01:00:00:23"), 1001, "01:00:01:00"),  # counted on from it
    ("30000/1001", (1001, "01:00:00;12"), 1001, "01:00:00;12"),  # drop-frame: taken as it is
])
def test_alpha_video_takes_the_footages_timecode(tmp_path, rate, footage, first_written, expected):
    from types import SimpleNamespace

    from sam2_core.mattes.export import writer_for

    source = SimpleNamespace(start_timecode=footage[1], frame_numbers=[footage[0]], size=(W, H), rate=rate,
                             pixel_aspect=1.0)
    w = writer_for("prores", tmp_path, source)
    for n in range(first_written, first_written + 2):
        w.write(n, {"car": matte(n)})
    w.close()
    assert read_video(tmp_path / "car.mov")[1]["timecode"] == expected
    w = writer_for("premult-prores", tmp_path / "premult", source)
    w.write(first_written, {"car": matte(first_written)}, plate(first_written))
    w.close()
    assert read_video(tmp_path / "premult" / "car_premult.mov")[1]["timecode"] == expected


def test_premultiplied_exr_is_plate_times_alpha(tmp_path):
    with PremultipliedWriter(tmp_path, "exr", pixel_aspect=2.0) as w:
        for n in FRAMES:
            w.write(n, mattes(n), plate(n))
    assert files_under(tmp_path) == sorted(f"{o}_premult/{o}_premult.{n}.exr"
                                           for o in ("car", "my_person") for n in FRAMES)
    for n in FRAMES:
        for k, obj in enumerate(("car", "my_person")):
            pixels, info = read_image(tmp_path / f"{obj}_premult" / f"{obj}_premult.{n}.exr")
            assert info["channels"] == ("R", "G", "B", "A") and info["format"] == "half" and info["par"] == 2.0
            a = matte(n, k)
            assert np.abs(pixels[:, :, :3] - plate(n) / 255.0 * a[:, :, None]).max() <= 1e-3
            assert np.abs(pixels[:, :, 3] - a).max() <= 1e-3
    # a float (scene-linear) plate is written as given, values above 1 included
    bright = plate(1006).astype(np.float32) / 64.0
    w = PremultipliedWriter(tmp_path, "exr", pattern="{object}.{frame}.exr")
    w.write(1006, {"car": matte(1006)}, bright)
    pixels, _ = read_image(tmp_path / "car.1006.exr")
    assert pixels.max() > 1 and np.allclose(pixels[:, :, :3], bright * matte(1006)[:, :, None], rtol=1e-3, atol=1e-3)


def test_mattes_are_tagged_as_data_and_bright_plates_stay_finite(tmp_path):
    """A 16-bit PNG matte says gamma 1.0 (no sRGB chunk: a colour-managed reader must not decode
    alpha 0.5 as 0.21); a plate brighter than half float's range stays finite; a long name that
    fits the file system writes (its temporary file's name is short)."""
    name = "n" * 200
    AlphaSequenceWriter(tmp_path, "png16").write(1001, {name: matte(1001)})
    data = (tmp_path / name / f"{name}.1001.png").read_bytes()
    assert data[data.index(b"gAMA") + 4:][:4] == (100000).to_bytes(4, "big")
    assert b"sRGB" not in data and b"cHRM" not in data
    PremultipliedWriter(tmp_path, "exr", pattern="{object}.{frame}.exr").write(
        1001, {"car": np.ones((H, W), np.float32)}, np.full((H, W, 3), 1e5, np.float32))
    pixels, _ = read_image(tmp_path / "car.1001.exr")
    assert np.isfinite(pixels).all() and pixels[..., :3].max() == 65504.0


def test_premultiplied_prores4444_with_alpha(tmp_path):
    with PremultipliedWriter(tmp_path, "prores4444", rate=25) as w:
        for n in FRAMES:
            assert w.write(n, mattes(n), plate(n)) == []
    assert files_under(tmp_path) == ["car_premult.mov", "my_person_premult.mov"]
    frames, info = read_video(tmp_path / "car_premult.mov")
    assert len(frames) == len(FRAMES) and info["size"] == (W, H) and info["timecode"] == "00:00:40:01"
    for n, (y, cb, cr, a) in zip(FRAMES, frames):
        expected = plate(n) / 255.0 * matte(n)[:, :, None]
        assert np.abs(ycbcr_to_rgb(y, cb, cr) - expected).max() < 0.02  # ProRes is lossy, but not by much
        assert np.abs(a - matte(n)).max() < 0.02


# -- nothing half-written --------------------------------------------------------------------


KILLED_RUN = """
import os, signal
import numpy as np
from sam2_core.mattes import writers
from tests.sam2_core.mattes.test_writers import FRAMES, mattes

real_write = writers._oiio_write

def dying_write(path, pixels, spec, fmt):
    real_write(path, pixels, spec, fmt)
    if ".1003." in path.name:  # frame 1003: the image is half on disk when the process dies
        os.truncate(path, path.stat().st_size // 2)
        os.kill(os.getpid(), signal.SIGKILL)

writers._oiio_write = dying_write
video = writers.AlphaVideoWriter("{out}/car.mov", 24, (64, 48), object_name="car")
seq = writers.AlphaSequenceWriter("{out}")
for n in FRAMES:
    video.write(n, mattes(n))
    seq.write(n, mattes(n))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_killed_run_loses_only_the_frame_in_flight(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_RUN.format(out=tmp_path))],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == -signal.SIGKILL, run.stderr
    finals = [f for f in files_under(tmp_path) if f.endswith(".exr")]
    assert finals == ["car/car.1001.exr", "car/car.1002.exr", "my_person/my_person.1001.exr",
                      "my_person/my_person.1002.exr"]
    for n in (1001, 1002):
        assert np.abs(read_image(tmp_path / "car" / f"car.{n}.exr")[0][:, :, 0] - matte(n)).max() <= 1e-3
    leftovers = sorted(set(files_under(tmp_path)) - set(finals))
    assert leftovers[0] == "car.partial.mov" and re.fullmatch(r"car/\.1003\.[0-9a-f]{8}\.\d+\.partial", leftovers[1])
    assert not (tmp_path / "car.mov").exists()  # an unfinished video never takes its final name
    # the next export is refused until forced, and forcing clears the leftovers but keeps the frames
    with pytest.raises(ExportError, match="already holds 6 file"):
        prepare_output_dir(tmp_path)
    prepare_output_dir(tmp_path, force=True)
    assert files_under(tmp_path) == finals


def test_failed_rename_leaves_no_partial_file(tmp_path, monkeypatch):
    real_replace = os.replace

    def failing_replace(src, dst):
        if ".1003." in str(dst):
            assert Path(src).stat().st_size > 0  # the temporary file was fully written
            raise OSError(errno.EIO, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(writers.os, "replace", failing_replace)
    w = AlphaSequenceWriter(tmp_path)
    for n in (1001, 1002):
        w.write(n, mattes(n))
    with pytest.raises(ExportError, match=r"cannot write .*car\.1003\.exr \(frame 1003\): Input/output error"):
        w.write(1003, mattes(1003))
    assert files_under(tmp_path) == ["car/car.1001.exr", "car/car.1002.exr",
                                     "my_person/my_person.1001.exr", "my_person/my_person.1002.exr"]


def test_unfinished_video_is_removed_when_the_export_fails(tmp_path):
    with pytest.raises(RuntimeError), AlphaVideoWriter(tmp_path / "car.mov", 24, (W, H), object_name="car") as w:
        w.write(1001, mattes(1001))
        raise RuntimeError("tracking failed")
    assert files_under(tmp_path) == []


# -- a full disk ---------------------------------------------------------------------------


DISK_FULL = ("the disk is full while writing {path} (frame 1003): free space and export again; "
             "frames already written are complete")


@pytest.mark.parametrize("writer", ["sequence", "layered"])
def test_disk_full_mid_export(tmp_path, monkeypatch, writer):
    real_write = writers._oiio_write

    def filling_write(path, pixels, spec, fmt):
        if ".1003." in path.name:
            path.write_bytes(b"\x76\x2f\x31\x01" + bytes(100))  # the disk fills part-way through the file
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(path, pixels, spec, fmt)

    monkeypatch.setattr(writers, "_oiio_write", filling_write)
    w = AlphaSequenceWriter(tmp_path) if writer == "sequence" else LayeredExrWriter(tmp_path)
    first = tmp_path / "car" / "car.1003.exr" if writer == "sequence" else tmp_path / "mattes.1003.exr"
    with pytest.raises(ExportError) as caught:
        for n in FRAMES:
            w.write(n, mattes(n))
    assert str(caught.value) == DISK_FULL.format(path=first)
    assert caught.value.errno == errno.ENOSPC and caught.value.frame == 1003 and caught.value.path == first
    assert all(".1003." not in f and ".partial" not in f for f in files_under(tmp_path))
    for n in (1001, 1002):
        path = tmp_path / "car" / f"car.{n}.exr" if writer == "sequence" else tmp_path / f"mattes.{n}.exr"
        assert np.abs(read_image(path)[0][:, :, 0] - matte(n)).max() <= 1e-3


def test_silently_short_write_is_caught(tmp_path, monkeypatch):
    # OpenImageIO's PNG writer reports success on a full disk; the read-back must catch the short file
    real_write = writers._oiio_write

    def short_write(path, pixels, spec, fmt):
        real_write(path, pixels, spec, fmt)
        if ".1003." in path.name:
            os.truncate(path, path.stat().st_size // 2)

    monkeypatch.setattr(writers, "_oiio_write", short_write)
    monkeypatch.setattr(writers, "_free_bytes", lambda folder: 0)
    w = AlphaSequenceWriter(tmp_path, "png16")
    with pytest.raises(ExportError, match=r"^the disk is full while writing .*car\.1003\.png \(frame 1003\)"):
        for n in FRAMES:
            w.write(n, mattes(n))
    assert files_under(tmp_path) == ["car/car.1001.png", "car/car.1002.png",
                                     "my_person/my_person.1001.png", "my_person/my_person.1002.png"]


def test_disk_full_while_encoding_video(tmp_path):
    w = AlphaVideoWriter(tmp_path / "car.mov", 24, (W, H), object_name="car")
    w.write(1001, mattes(1001))
    w.write(1002, mattes(1002))

    class FullDisk:  # the muxer's next write hits a full disk, as FFmpeg reports it
        def __init__(self, container):
            self.container = container

        def mux(self, packet):
            raise av.error.OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def close(self):
            self.container.close()

    w._video.container = FullDisk(w._video.container)
    with pytest.raises(ExportError, match=r"^the disk is full while writing .*car\.partial\.mov \(frame 1003\): "
                                          r"free space and export again") as caught:
        w.write(1003, mattes(1003))
    assert caught.value.errno == errno.ENOSPC
    assert files_under(tmp_path) == []  # the unusable video is removed, freeing its space


# -- the output folder ---------------------------------------------------------------------


def test_prepare_output_dir(tmp_path):
    missing = tmp_path / "new" / "mattes"
    assert prepare_output_dir(missing) == missing and missing.is_dir()
    assert prepare_output_dir(missing) == missing  # empty: fine
    (missing / ".DS_Store").write_bytes(b"")  # the OS's own clutter does not count

    busy = tmp_path / "busy"
    (busy / "car").mkdir(parents=True)
    (busy / "notes.txt").write_text("keep me")
    (busy / "car" / "car.1001.exr").write_bytes(b"old")
    expected = AlphaSequenceWriter(busy).expected_files(FRAMES, ["car"])
    with pytest.raises(ExportError) as caught:
        prepare_output_dir(busy, expected=expected)
    message = str(caught.value)
    assert str(busy) in message and "notes.txt" in message and "car/car.1001.exr" in message
    assert "2 file(s) (1 of them would be overwritten" in message and "--force" in message
    assert caught.value.errno == errno.EEXIST

    assert prepare_output_dir(busy, force=True, expected=expected) == busy
    assert (busy / "notes.txt").read_text() == "keep me"  # force overwrites our files, never deletes others

    (tmp_path / "afile").write_text("x")
    with pytest.raises(ExportError, match="is a file"):
        prepare_output_dir(tmp_path / "afile", force=True)


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad, why", [
    (np.zeros((H, W, 1), np.float32), r"expected an H x W array"),
    (np.zeros((H // 2, W), np.float32), r"expected 64x48"),
    (np.full((H, W), np.nan, np.float32), r"NaN"),
    (np.full((H, W), 1.5, np.float32), r"from 1.5 to 1.5, expected \[0, 1\]"),
    (np.zeros((H, W), np.uint8), r"uint8"),
])
@pytest.mark.parametrize("make", [
    lambda out: AlphaSequenceWriter(out),
    lambda out: LayeredExrWriter(out),
    lambda out: PremultipliedWriter(out),
])
def test_bad_matte_names_object_and_frame_and_writes_nothing(tmp_path, bad, why, make):
    w = make(tmp_path)
    w.write(1001, mattes(1001), plate(1001))
    frame = {"car": matte(1002), "broken one": bad}  # the good object comes first: nothing of 1002 may land
    with pytest.raises(ValueError, match=rf"frame 1002, object 'broken one': .*{why}"):
        w.write(1002, frame, plate(1002))
    assert files_under(tmp_path) and all("1002" not in f for f in files_under(tmp_path))


def test_names_patterns_and_order_are_checked(tmp_path):
    assert safe_name("my car.v2") == "my_car_v2" and safe_name("2nd") == "_2nd" and safe_name("a/b") == "a_b"
    with pytest.raises(ValueError, match="'my car' and 'my.car' both become 'my_car'"):
        LayeredExrWriter(tmp_path).write(1001, {"my car": matte(1001), "my.car": matte(1001)})
    with pytest.raises(ValueError, match="'Car' and 'car' become 'Car' and 'car' in file names, the same files on "
                                         "Windows and macOS"):
        AlphaSequenceWriter(tmp_path).write(1001, {"Car": matte(1001), "car": matte(1001)})
    layered = LayeredExrWriter(tmp_path / "layers").write(1001, {"Car": matte(1001), "car": matte(1001, 1)})
    assert read_image(layered[0])[1]["channels"] == ("Car.A", "car.A")  # (layers of one file: both fine)
    with pytest.raises(ValueError, match="object name 'xxx.*' is too long for file names: shorten it"):
        AlphaSequenceWriter(tmp_path).write(1001, {"x" * 250: matte(1001)})
    with pytest.raises(ValueError, match="must use {frame}"):
        LayeredExrWriter(tmp_path, pattern="mattes.exr")
    with pytest.raises(ValueError, match="inside the output folder"):
        AlphaSequenceWriter(tmp_path, pattern="../{object}.{frame}.exr")
    with pytest.raises(ValueError, match="needs the plate"):
        PremultipliedWriter(tmp_path).write(1001, mattes(1001))
    video = AlphaVideoWriter(tmp_path / "car.mov", 24, (W, H), object_name="car")
    video.write(1002, mattes(1002))
    with pytest.raises(ValueError, match="increasing order"):
        video.write(1001, mattes(1001))
    video.abort()
    with pytest.raises(ValueError, match="written as .mov"):
        AlphaVideoWriter(tmp_path / "car.mp4", 24, (W, H))
    assert files_under(tmp_path) == ["layers/mattes.1001.exr"]


def test_export_error_survives_pickling():
    e = ExportError("the disk is full while writing x", errno=errno.ENOSPC, path=Path("x"), frame=1003)
    again = pickle.loads(pickle.dumps(e))
    assert (str(again), again.errno, again.path, again.frame) == (str(e), errno.ENOSPC, Path("x"), 1003)
    assert isinstance(again, OSError)


def test_an_export_stopped_midway_leaves_no_unfinished_video(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from sam2_core.mattes import export

    def two_frames_then_ctrl_c(*_args, **_kwargs):
        for n in FRAMES[:2]:
            yield n - FRAMES[0], n, {"car": matte(n)}, plate(n)
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "mattes_of", two_frames_then_ctrl_c)
    source = SimpleNamespace(frame_numbers=FRAMES, size=(W, H), rate=24, pixel_aspect=1.0)
    tracker = SimpleNamespace(source=FRAMES)
    for fmt in ("prores", "ffv1"):
        with pytest.raises(KeyboardInterrupt):
            export.export(tracker, {1: "car"}, export.writer_for(fmt, tmp_path / fmt, source))
        assert files_under(tmp_path / fmt) == []


def test_a_video_that_cannot_be_finished_takes_the_unfinished_others_with_it(tmp_path, monkeypatch):
    """One object's video fails as it is finished (its name taken by a folder): the others still
    unfinished are removed, not left as .partial files with their files open."""
    from types import SimpleNamespace

    from sam2_core.mattes import export

    monkeypatch.setattr(export, "mattes_of", lambda *_a, **_k: (
        (n - FRAMES[0], n, mattes(n), plate(n)) for n in FRAMES[:2]))
    source = SimpleNamespace(frame_numbers=FRAMES, size=(W, H), rate=24, pixel_aspect=1.0)
    (tmp_path / "car.mov").mkdir()
    with pytest.raises(ExportError, match=r"car\.partial\.mov"):
        export.export(SimpleNamespace(source=FRAMES), {1: "car", 2: "my person"},
                      export.writer_for("prores", tmp_path, source))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["car.mov"] and not any((tmp_path / "car.mov").iterdir())


def test_a_premultiplied_export_takes_the_plate_as_stored(tmp_path):
    """A linear EXR plate stays linear (values above 1 too), not the model's 8-bit sRGB view."""
    from types import SimpleNamespace

    from sam2_core.mattes import export
    from sam2_core.media import open_source
    from tests.sam2_core.media.footage import write_image

    linear = np.zeros((H, W, 3), np.float32)
    linear[:, : W // 2] = 0.18
    linear[:, W // 2:] = 4.0
    for n in (1001, 1002):
        stored = linear.copy()
        stored[0, 0] = [np.nan, np.inf, -np.inf]  # (a render's stray pixel: not a failed export)
        write_image(tmp_path / f"plate.{n}.exr", stored, "half")
    linear[0, 0] = [0.0, 65504.0, -65504.0]
    source = open_source(tmp_path / "plate.####.exr", "ACEScg")
    tracker = SimpleNamespace(source=source, logits=lambda i, obj: np.full((H, W), 20.0, np.float32))
    export.export(tracker, {1: "car"}, export.writer_for("premult-exr", tmp_path / "out", source), guided=False)
    pixels, _ = read_image(tmp_path / "out" / "car_premult" / "car_premult.1002.exr")
    assert np.allclose(pixels[:, :, :3], linear, atol=2e-3) and np.allclose(pixels[:, :, 3], 1.0, atol=1e-3)

"""Image sequences: patterns, frame numbers as the files have them, gaps, and every format read back
bit-exact (or within the format's precision)."""

from fractions import Fraction

import numpy as np
import OpenImageIO as oiio
import pytest

from sam2_core.media import FolderSource, FootageError, SequenceSource, as_source, open_source
from sam2_core.media.exr_luma_chroma import luminance_weights
from sam2_core.media.open import open_still
from tests.sam2_core.media.footage import (
    REC709_LUMINANCE,
    H,
    W,
    burn,
    read_code,
    write_image,
    write_luma_chroma_exr,
)

FIRST = 1001


def exr_picture(code: int) -> np.ndarray:
    """The burnt-in picture as a half-float EXR holds it."""
    return (burn(code).astype(np.float32) / 255).astype(np.float16).astype(np.float32)


def exr_sequence(folder, numbers, name="plate"):
    folder.mkdir(exist_ok=True)
    for n in numbers:
        write_image(folder / f"{name}.{n:04d}.exr", exr_picture(n - FIRST), "half")
    return folder


@pytest.mark.parametrize("spelling", ["plate.%04d.exr", "plate.####.exr", "plate.1003.exr", "plate.1001.exr", ""])
def test_sequence_from_a_pattern_or_one_file(tmp_path, spelling):
    folder = exr_sequence(tmp_path / "seq", range(FIRST, FIRST + 5))
    src = open_source(folder / spelling if spelling else folder)
    assert isinstance(src, SequenceSource)
    assert src.frame_numbers == [1001, 1002, 1003, 1004, 1005]
    assert src.size == (W, H) and src.pixel_aspect == 1.0
    assert src.path == str(folder / "plate.%04d.exr")
    for i in (4, 0, 2):
        assert np.array_equal(src.read_raw(i), exr_picture(i))
    linear = open_source(folder / spelling if spelling else folder, "Linear Rec.709 (sRGB)", mode="convert")
    assert [read_code(linear.read(i)) for i in range(5)] == [0, 1, 2, 3, 4]


def test_padding_and_unpadded_numbers(tmp_path):
    for n in (998, 999, 1000, 1001):
        write_image(tmp_path / f"p.{n:04d}.png", burn(n - 990), "uint8")
    for spelling in ("p.1000.png", "p.0998.png", "p.####.png", "p.%04d.png"):
        assert open_source(tmp_path / spelling).frame_numbers == [998, 999, 1000, 1001]
    for n in (8, 9, 10, 11, 12):
        write_image(tmp_path / f"u_{n}.png", burn(n), "uint8")
    for spelling in ("u_10.png", "u_8.png", "u_%d.png", "u_#.png"):
        src = open_source(tmp_path / spelling)
        assert src.frame_numbers == [8, 9, 10, 11, 12]
        assert read_code(src.read(2)) == 10
    write_image(tmp_path / "still.png", burn(7), "uint8")
    still = open_source(tmp_path / "still.png")
    assert still.frame_numbers == [0] and read_code(still.read(0)) == 7


def test_negative_frame_numbers_as_printf_writes_them(tmp_path):
    """Pre-roll frames: -3 written %04d is "plate.-003.png"; a minus after a letter separates."""
    for n in range(-3, 3):
        write_image(tmp_path / f"plate.{n:04d}.png", burn(n + 10), "uint8")
    for spelling in ("plate.%04d.png", "plate.####.png", "plate.-001.png", "plate.0002.png"):
        src = open_source(tmp_path / spelling)
        assert src.frame_numbers == [-3, -2, -1, 0, 1, 2], spelling
        assert [read_code(src.read(i)) for i in (0, 3, 5)] == [7, 10, 12]
    for n in (1001, 1002):
        write_image(tmp_path / f"take-{n}.png", burn(n - 1000), "uint8")
    assert open_source(tmp_path / "take-1001.png").frame_numbers == [1001, 1002]


def test_a_gap_is_an_error_naming_the_frames(tmp_path):
    folder = exr_sequence(tmp_path / "seq", [1001, 1002, 1004, 1005, 1009])
    with pytest.raises(FootageError, match=r"frames 1003, 1006-1008 are missing .*missing_frames='hold'") as e:
        open_source(folder / "plate.####.exr")
    assert str(folder / "plate.%04d.exr") in str(e.value)


def test_a_gap_can_hold_the_previous_frame(tmp_path):
    folder = exr_sequence(tmp_path / "seq", [1001, 1002, 1004, 1005])
    src = open_source(folder / "plate.1001.exr", missing_frames="hold")
    assert src.frame_numbers == [1001, 1002, 1003, 1004, 1005]
    assert src.held == [1003]
    assert np.array_equal(src.read_raw(2), src.read_raw(1))
    assert src.file(2).name == "plate.1002.exr"
    assert np.array_equal(src.read_raw(3), exr_picture(3))
    assert src.identity != open_source(folder / "plate.1001.exr", missing_frames="hold", mode="passthrough").identity


def test_identity_is_the_same_through_a_relative_path(tmp_path, monkeypatch):
    folder = exr_sequence(tmp_path / "seq", [1001, 1002])
    monkeypatch.chdir(tmp_path)
    # (a shot opened by a relative path must find the cache it made through an absolute one)
    assert open_source("seq/plate.####.exr").identity == open_source(folder / "plate.1001.exr").identity


@pytest.mark.parametrize("ext,fmt,attrs", [("png", "uint8", {}), ("png", "uint16", {}), ("tif", "uint8", {}),
                                           ("tif", "uint16", {}), ("tif", "float", {}), ("exr", "half", {}),
                                           ("exr", "float", {}), ("dpx", "uint16", {"oiio:BitsPerSample": 10,
                                                                                   "dpx:Transfer": "SMPTE 274M"})])
def test_formats_read_back_exactly(tmp_path, ext, fmt, attrs):
    rng = np.random.default_rng(1)
    if fmt == "uint8":
        data = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        expected = data
    elif fmt == "uint16" and ext != "dpx":
        data = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
        expected = data
    elif ext == "dpx":  # 10-bit codes, read back scaled to 16 bits
        codes = rng.integers(0, 1024, (H, W, 3))
        data = (codes / 1023).astype(np.float32)
        expected = codes
    else:
        data = (rng.random((H, W, 3), dtype=np.float32) * 4 - 0.5).astype(np.float16 if fmt == "half" else np.float32)
        expected = data.astype(np.float32)
    for n in (FIRST, FIRST + 1):
        write_image(tmp_path / f"f.{n}.{ext}", data, fmt, attrs=attrs)
    src = open_source(tmp_path / f"f.####.{ext}")
    raw = src.read_raw(1)
    if ext == "dpx":
        assert raw.dtype == np.uint16 and np.array_equal(np.round(raw / 65535 * 1023), expected)
    else:
        assert raw.dtype == expected.dtype and np.array_equal(raw, expected)
    model = src.read(1)
    assert model.shape == (H, W, 3) and model.dtype == np.uint8
    if src.colour.mode == "passthrough":  # display-referred: rounded to 8 bits, nothing else
        want = expected if fmt == "uint8" else np.round(raw.astype(np.float64) / 65535 * 255)
        assert np.array_equal(model, want.astype(np.uint8))


def test_jpeg_within_its_precision(tmp_path):
    picture = burn(5)
    for n in (1, 2):
        write_image(tmp_path / f"j_{n:03d}.jpg", picture, "uint8", attrs={"Compression": "jpeg:98"})
    src = open_source(tmp_path / "j_001.jpg")
    assert src.frame_numbers == [1, 2] and src.colour.mode == "passthrough"
    frame = src.read(0)
    assert np.abs(frame.astype(int) - picture).mean() < 2 and read_code(frame) == 5


def test_exr_data_window_inside_and_outside_the_display_window(tmp_path):
    data = np.full((20, 30, 3), 0.5, np.float32)
    write_image(tmp_path / "in.1.exr", data, "half", origin=(10, 5), display=(64, 48))
    src = open_source(tmp_path / "in.1.exr")
    assert src.size == (64, 48)
    raw = src.read_raw(0)
    assert raw.shape == (48, 64, 3)
    assert np.all(raw[5:25, 10:40] == 0.5) and raw.sum() == 0.5 * 20 * 30 * 3
    overscan = np.arange(80 * 60 * 3, dtype=np.float32).reshape(60, 80, 3) / 1e4
    write_image(tmp_path / "over.1.exr", overscan, "float", origin=(-8, -6), display=(64, 48))
    raw = open_source(tmp_path / "over.1.exr").read_raw(0)
    assert raw.shape == (48, 64, 3) and np.array_equal(raw, overscan[6:54, 8:72])


def test_exr_layers_alpha_and_pixel_aspect(tmp_path):
    rgba = np.random.default_rng(2).random((H, W, 4), dtype=np.float32)
    write_image(tmp_path / "rgba.1.exr", rgba, "float", attrs={"PixelAspectRatio": 2.0})
    src = open_source(tmp_path / "rgba.1.exr")
    assert np.array_equal(src.read_raw(0), rgba[..., :3]) and src.pixel_aspect == 2.0 and src.layer is None
    layered = np.random.default_rng(3).random((H, W, 6), dtype=np.float32)
    write_image(tmp_path / "layers.1.exr", layered, "float",
                channels=("diffuse.R", "diffuse.G", "diffuse.B", "beauty.R", "beauty.G", "beauty.B"))
    src = open_source(tmp_path / "layers.1.exr")
    assert src.layer == "beauty" and np.array_equal(src.read_raw(0), layered[..., 3:])


def colour_field(h: int = H, w: int = W) -> np.ndarray:
    """Smooth colours: reds to the right, blues down, all above black."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([0.1 + 0.8 * x / w, 0.3 + 0.2 * np.sin(x / 9 + y / 13), 0.1 + 0.8 * y / h], axis=-1)


@pytest.mark.parametrize("sampling", [2, 1])
def test_luminance_chroma_exr(tmp_path, sampling):
    """OpenEXR's luminance/chroma files (Y, RY, BY; chroma usually at half resolution) read as colour,
    not grey, and a data window inside a larger display window stays where it is."""
    rgb = colour_field()
    write_luma_chroma_exr(tmp_path / "yc.1001.exr", rgb, sampling=sampling, origin=(10, 6), display=(W + 20, H + 12))
    src = open_source(tmp_path / "yc.1001.exr")
    assert src.size == (W + 20, H + 12) and src.frame_numbers == [1001]
    raw = src.read_raw(0)
    assert raw.dtype == np.float32 and raw.shape == (H + 12, W + 20, 3)
    assert not raw[:6].any() and not raw[:, :10].any() and not raw[6 + H:].any()
    inside = raw[6:6 + H, 10:10 + W]
    luminance = rgb @ REC709_LUMINANCE
    assert np.allclose(inside @ REC709_LUMINANCE, luminance, rtol=2e-3)  # (Y is stored at full resolution)
    error = np.abs(inside - rgb)  # (half floats; chroma between samples interpolated, past the last held)
    assert error[:-1, :-1].max() < (0.01 if sampling == 2 else 0.003) and error.max() < 0.05
    assert src.read(0).shape == (H + 12, W + 20, 3)


def test_luminance_chroma_exr_of_other_primaries(tmp_path):
    """Y weighs R, G and B by the file's own primaries (here ACEScg's)."""
    ap1 = (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767)
    weights = np.array([0.2722287, 0.6740818, 0.0536895], np.float32)  # (ACEScg's published luminance row)
    assert np.allclose(luminance_weights(ap1), weights, atol=1e-5)
    assert np.allclose(luminance_weights(), REC709_LUMINANCE, atol=1e-4)
    rgb = colour_field()
    write_luma_chroma_exr(tmp_path / "ap1.1.exr", rgb, sampling=1, weights=weights, chromaticities=ap1)
    assert np.abs(open_source(tmp_path / "ap1.1.exr").read_raw(0) - rgb).max() < 0.003


def test_a_sequence_that_changes_from_luminance_chroma_to_rgb(tmp_path):
    write_luma_chroma_exr(tmp_path / "mix.1.exr", colour_field())
    write_image(tmp_path / "mix.2.exr", colour_field(), "half")
    src = open_source(tmp_path / "mix.1.exr")
    with pytest.raises(FootageError, match=r"Cannot read frame 2 \(.*mix\.2\.exr\): its channels \(.*\) are not Y"):
        src.read(1)


def test_grey_images_and_orientation(tmp_path):
    grey = np.random.default_rng(4).integers(0, 256, (H, W), dtype=np.uint8)
    write_image(tmp_path / "g.1.png", grey[..., None], "uint8")
    assert np.array_equal(open_source(tmp_path / "g.1.png").read(0), np.repeat(grey[..., None], 3, axis=2))
    picture = burn(9)
    write_image(tmp_path / "turned.1.tif", picture, "uint8", attrs={"Orientation": 6})  # "turn 90 clockwise"
    src = open_source(tmp_path / "turned.1.tif")
    assert src.size == (H, W)
    assert np.array_equal(src.read(0), np.rot90(picture, k=-1))


def test_folders_and_as_source(tmp_path):
    exr = exr_sequence(tmp_path / "exr", range(FIRST, FIRST + 3))
    assert isinstance(as_source(exr), SequenceSource)
    assert isinstance(as_source(str(exr / "plate.####.exr")), SequenceSource)
    assert as_source(exr / "plate.1002.exr").frame_numbers == [1001, 1002, 1003]
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    for n in range(3):
        write_image(pngs / f"{n:05d}.png", burn(n), "uint8")
    assert isinstance(as_source(pngs), FolderSource)  # folders of JPEG/PNG frames read as before
    (pngs / "00001.png").unlink()  # a gap: tracked across, frames 0 and 2 would be neighbours
    with pytest.raises(FootageError, match=r"pngs: frame 1 is missing \(the frames run 0-2\)\. Render or copy"):
        as_source(pngs)
    write_image(exr / "preview_v01.jpg", burn(7), "uint8")  # a still beside EXR plates is not the footage
    with pytest.raises(FootageError, match=r"several image sequences"):
        as_source(exr)
    (exr / "preview_v01.jpg").unlink()
    exr_sequence(exr, range(FIRST, FIRST + 2), name="other")
    with pytest.raises(FootageError, match=r"several image sequences \(plate\.1001\.exr \(3 frames\), other"):
        open_source(exr)


@pytest.mark.parametrize("ext", ["tga", "bmp", "sgi", "webp", "ppm"])
def test_other_still_formats_are_sequences_too(tmp_path, ext):
    """One frame's file opens its sequence (it used to open as a one-frame video)."""
    for n in range(FIRST, FIRST + 3):
        write_image(tmp_path / f"plate.{n}.{ext}", burn(n - FIRST), "uint8")
    src = open_source(tmp_path / f"plate.{FIRST + 1}.{ext}")
    assert src.frame_numbers == [FIRST, FIRST + 1, FIRST + 2]
    assert [read_code(src.read(i)) for i in range(3)] == [0, 1, 2] and src.colour.mode == "passthrough"
    still = open_still(tmp_path / f"plate.{FIRST + 2}.{ext}")  # (as `segment` reads a still)
    assert still.frame_numbers == [FIRST + 2] and read_code(still.read(0)) == 2


def test_a_png_with_alpha_gives_its_colour_as_stored(tmp_path):
    """Not multiplied by its alpha (half transparent darker, transparent black): the official
    predictor drops alpha and keeps the colour, and a folder of such frames reads the same."""
    import cv2

    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = burn(5)
    rgba[:, : W // 2, 3] = 128
    for n in (1, 2):
        cv2.imwrite(str(tmp_path / f"{n:04d}.png"), rgba[..., [2, 1, 0, 3]])
    assert np.array_equal(open_source(tmp_path / "0001.png").read(0), rgba[..., :3])
    assert np.array_equal(as_source(tmp_path).read(0), rgba[..., :3])


def test_a_folder_of_16_bit_pngs_is_rounded_as_a_sequence_is(tmp_path):
    """Both ways of reading PNG frames give the same 8 bits: rounded, not truncated (51200 is 199.2 x 257)."""
    wide = (np.arange(H * W * 3, dtype=np.uint32).reshape(H, W, 3) * 37 % 65536).astype(np.uint16)
    wide[0, 0] = 51200
    folder = tmp_path / "deep"
    folder.mkdir()
    for n in range(2):
        write_image(folder / f"{n:04d}.png", wide, "uint16")
    as_folder = as_source(folder)
    assert isinstance(as_folder, FolderSource) and as_folder.read(0)[0, 0, 0] == 199
    assert np.array_equal(as_folder.read(1), open_source(folder / "0000.png").read(0))


def test_rate_and_timecode_from_headers(tmp_path):
    tc = (0x01000012, 0)  # 01:00:00:12 in SMPTE 12M binary-coded decimal
    write_image(tmp_path / "a.1001.exr", np.zeros((4, 4, 3), np.float32), "half",
                attrs={"FramesPerSecond": (oiio.TypeRational, (24000, 1001)),
                       "smpte:TimeCode": (oiio.TypeTimeCode, tc)})
    src = open_source(tmp_path / "a.1001.exr")
    assert src.rate == Fraction(24000, 1001) and src.start_timecode == "01:00:00:12"
    write_image(tmp_path / "b.1001.dpx", np.zeros((4, 4, 3), np.float32), "uint16",
                attrs={"oiio:BitsPerSample": 10, "dpx:FrameRate": 25.0, "dpx:Transfer": "Linear",
                       "smpte:TimeCode": (oiio.TypeTimeCode, (0x10203004, 0))})
    src = open_source(tmp_path / "b.1001.dpx")
    assert src.rate == 25 and src.start_timecode == "10:20:30:04"
    write_image(tmp_path / "df.1001.exr", np.zeros((4, 4, 3), np.float32), "half",
                attrs={"smpte:TimeCode": (oiio.TypeTimeCode, (0x01000052, 0))})  # (flagged drop frame)
    assert open_source(tmp_path / "df.1001.exr").start_timecode == "01:00:00;12"
    write_luma_chroma_exr(tmp_path / "yc.1001.exr", colour_field(8, 8), rate=(24000, 1001), timecode=0x01000052)
    src = open_source(tmp_path / "yc.1001.exr")  # (read by the OpenEXR library, not OpenImageIO)
    assert src.rate == Fraction(24000, 1001) and src.start_timecode == "01:00:00;12"
    for stored, rate in ((23.976, Fraction(24000, 1001)), (29.97, Fraction(30000, 1001)),
                         (59.94, Fraction(60000, 1001)), (23.98, Fraction(24000, 1001))):
        write_image(tmp_path / "d.1001.dpx", np.zeros((4, 4, 3), np.float32), "uint16",
                    attrs={"oiio:BitsPerSample": 10, "dpx:FrameRate": stored, "dpx:Transfer": "Linear"})
        assert open_source(tmp_path / "d.1001.dpx").rate == rate, stored
    write_image(tmp_path / "z.1.exr", np.zeros((4, 4, 3), np.float32), "half",
                attrs={"FramesPerSecond": (oiio.TypeRational, (24, 0))})  # (a writer's slip: no rate)
    assert open_source(tmp_path / "z.1.exr").rate is None
    write_image(tmp_path / "c.1.png", np.zeros((4, 4, 3), np.uint8), "uint8")
    assert open_source(tmp_path / "c.1.png").rate is None and open_source(tmp_path / "c.1.png").start_timecode is None


def test_a_still_is_its_own_frame_even_within_a_sequence(tmp_path):
    from sam2_core.media import open_still

    for n in (1001, 1002):
        write_image(tmp_path / f"plate.{n}.png", np.full((4, 6, 3), 100 * (n - 1000), np.uint8), "uint8")
    still = open_still(tmp_path / "plate.1002.png")
    assert len(still) == 1 and still.frame_numbers == [1002] and still.read(0)[0, 0, 0] == 200
    with pytest.raises(FootageError, match="Image not found"):
        open_still(tmp_path / "plate.1003.png")
    for name, value in (("a.0001.png", 7), ("a.2.png", 8), ("a.3.png", 9)):  # (two numberings side by side)
        write_image(tmp_path / name, np.full((4, 6, 3), value, np.uint8), "uint8")
    assert open_still(tmp_path / "a.0001.png").read(0)[0, 0, 0] == 7
    named = open_source(tmp_path / "a.0001.png")  # (the sequence the named file is in)
    assert named.frame_numbers == [1] and named.read(0)[0, 0, 0] == 7
    with pytest.raises(FootageError, match="not an image file"):
        open_still(tmp_path / "clip.mov")

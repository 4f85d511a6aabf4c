"""Colour through OpenColorIO: known values through known transforms, the defaults per file type,
overrides, studio configs, and settings recorded so a shot reopens the same way."""

import numpy as np
import pytest
from PyOpenColorIO import Config, DisplayViewTransform

from sam2_core.media import ColourError, ColourSettings, colorspace_names, open_source
from sam2_core.media.colour import BUILTIN_CONFIG
from tests.sam2_core.media.footage import encode_video, write_image

SRGB = "sRGB Encoded Rec.709 (sRGB)"
DISPLAY, VIEW = "sRGB - Display", "ACES 2.0 - SDR 100 nits (Rec.709)"
# FOOTAGE_NOTES: 8-bit code values measured with OCIO 2.6's built-in studio config
GREY_CONVERT, GREY_VIEW = 117.6, 89.0

CUSTOM_CONFIG = """ocio_profile_version: 2

roles:
  default: lin_custom
  scene_linear: lin_custom

displays:
  Monitor sRGB:
    - !<View> {name: Standard, colorspace: sRGB}
    - !<View> {name: Raw, colorspace: lin_custom}

colorspaces:
  - !<ColorSpace>
    name: lin_custom
    isdata: false

  - !<ColorSpace>
    name: sRGB
    isdata: false
    to_scene_reference: !<ExponentWithLinearTransform> {gamma: 2.4, offset: 0.055}
"""


def flat(tmp_path, name, value, fmt="float", attrs=None):
    """A one-frame image of 16 x 8 pixels, all `value`."""
    dtype = {"float": np.float32, "half": np.float16, "uint16": np.uint16, "uint8": np.uint8}[fmt]
    if name.endswith(".dpx"):
        dtype = np.float32
    return write_image(tmp_path / name, np.full((8, 16, 3), value, dtype), fmt, attrs=attrs)


def value(src) -> float:
    frame = src.read(0)
    assert frame.dtype == np.uint8 and frame.shape[2] == 3
    assert frame.min() == frame.max() or np.ptp(frame) <= 1
    return float(frame.mean())


def test_acescg_grey_in_both_modes(tmp_path):
    path = flat(tmp_path, "grey.1001.exr", 0.18)
    src = open_source(path)  # EXR: the config's scene_linear role (ACEScg), through the sRGB display's view
    assert src.colour == ColourSettings(colorspace="ACEScg", mode="view", config=BUILTIN_CONFIG,
                                        config_name=src.colour.config_name, display=DISPLAY, view=VIEW,
                                        chosen_by="default", config_id=src.colour.config_id)
    assert abs(value(src) - GREY_VIEW) <= 1
    converted = open_source(path, mode="convert")
    assert converted.colour.target == SRGB and converted.colour.colorspace == "ACEScg"
    assert abs(value(converted) - GREY_CONVERT) <= 1


@pytest.mark.parametrize("name,code,fmt,attrs", [("logc.1.tif", round(0.391 * 65535), "uint16", {}),
                                                 ("logc.1.dpx", 400 / 1023, "uint16", {"oiio:BitsPerSample": 10}),
                                                 ("logc.1.exr", 0.391, "half", {})])
def test_logc3_grey_in_both_modes(tmp_path, name, code, fmt, attrs):
    path = flat(tmp_path, name, code, fmt, attrs)
    src = open_source(path, "ARRI LogC3 (EI800)")
    assert src.colour.mode == "view" and src.colour.chosen_by == "user"  # log: the display rendering
    assert abs(value(src) - GREY_VIEW) <= 1
    assert abs(value(open_source(path, "LogC3", mode="convert")) - GREY_CONVERT) <= 1


def test_linear_white_and_highlights(tmp_path):
    ramp = np.zeros((8, 16, 3), np.float32)
    ramp[:, :4], ramp[:, 4:8], ramp[:, 8:12], ramp[:, 12:] = 0.5, 1.0, 4.0, 16.0
    path = write_image(tmp_path / "hi.1.exr", ramp, "float")
    converted = open_source(path, "Linear Rec.709 (sRGB)", mode="convert").read(0)[0, ::4, 0]
    assert converted[1:].tolist() == [255, 255, 255]  # a plain conversion clips
    viewed = open_source(path, "lin_srgb").read(0)[0, ::4, 0]  # (an alias of the same colour space)
    assert viewed[0] < viewed[1] < viewed[2] < viewed[3] < 255  # the view tone-maps highlights instead


@pytest.mark.parametrize("fmt", ["float", "half"])
def test_linear_exr_equals_its_srgb_png_twin(tmp_path, fmt):
    rng = np.random.default_rng(7)
    picture = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    picture[0, :3] = [0, 255, 128]
    encoded = picture / 255.0
    linear = np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)  # IEC 61966-2-1
    write_image(tmp_path / "twin.1001.png", picture, "uint8")
    write_image(tmp_path / "twin.1001.exr", linear.astype(np.float32), fmt)
    png = open_source(tmp_path / "twin.1001.png")
    exr = open_source(tmp_path / "twin.1001.exr", "Linear Rec.709 (sRGB)", mode="convert")
    assert png.colour.mode == "passthrough"
    assert np.abs(exr.read(0).astype(int) - png.read(0)).max() <= 1
    assert np.array_equal(png.read(0), picture)


@pytest.mark.parametrize("name,fmt,attrs,expected", [
    ("a.1.png", "uint8", {}, ("passthrough", None)),
    ("a.1.jpg", "uint8", {}, ("passthrough", None)),
    ("a.1.tif", "uint16", {}, ("passthrough", None)),
    ("a.1.tif", "float", {}, ("view", "ACEScg")),
    ("a.1.exr", "half", {}, ("view", "ACEScg")),
    ("a.1.dpx", "uint16", {"oiio:BitsPerSample": 10, "dpx:Transfer": "Printing density"}, ("view", "ADX10")),
    ("a.1.dpx", "uint16", {"oiio:BitsPerSample": 10, "dpx:Transfer": "Logarithmic"}, ("view", "ADX10")),
    ("a.1.dpx", "uint16", {"oiio:BitsPerSample": 10, "dpx:Transfer": "Linear"}, ("view", "ACEScg")),
    ("a.1.dpx", "uint16", {"oiio:BitsPerSample": 10, "dpx:Transfer": "ITU-R 709-4"}, ("passthrough", None)),
    # (12-bit codes are scaled to 0..1 as 10-bit ones are: the same curve; ADX16 is its own encoding)
    ("a.1.dpx", "uint16", {"oiio:BitsPerSample": 12, "dpx:Transfer": "Printing density"}, ("view", "ADX10")),
    ("a.1.dpx", "uint16", {"oiio:BitsPerSample": 16, "dpx:Transfer": "Printing density"}, ("view", "ADX16")),
    ("a.1.exr", "half", {"acesImageContainerFlag": 1, "compression": "none"}, ("view", "ACES2065-1")),
    ("a.1.exr", "half", {"chromaticities": ("float[8]", (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.077, 0.32168, 0.33767))},
     ("view", "ACES2065-1")),
])
def test_defaults_per_file_type(tmp_path, name, fmt, attrs, expected):
    src = open_source(flat(tmp_path, name, 0.25 if fmt in ("float", "half") else 100, fmt, attrs))
    assert (src.colour.mode, src.colour.colorspace) == expected
    said = ("dpx:Transfer" in attrs and expected[1]) or {"acesImageContainerFlag", "chromaticities"} & set(attrs)
    assert src.colour.chosen_by == ("header" if said else "default")


def test_a_12_bit_log_scan_reads_as_its_10_bit_twin(tmp_path):
    """The same density as 10-bit and 12-bit code values gives the same picture (not white)."""
    ten = flat(tmp_path, "ten.1.dpx", 445 / 1023, "uint16",
               {"oiio:BitsPerSample": 10, "dpx:Transfer": "Printing density"})
    twelve = flat(tmp_path, "twelve.1.dpx", 1780 / 4095, "uint16",
                  {"oiio:BitsPerSample": 12, "dpx:Transfer": "Printing density"})
    assert np.abs(open_source(ten).read(0).astype(int) - open_source(twelve).read(0)).max() <= 1


def test_dpx_that_states_nothing_needs_a_colour_space(tmp_path):
    path = flat(tmp_path, "scan.1001.dpx", 0.5, "uint16", {"oiio:BitsPerSample": 10})
    with pytest.raises(ColourError, match=r"scan\.1001\.dpx.*no usable transfer.*colorspace="):
        open_source(path)
    assert open_source(path, "ACEScct").colour.mode == "view"
    assert open_source(path, mode="passthrough").colour.mode == "passthrough"


BUILT_IN = [("ACEScg", "ACEScg", "view"), ("ACES2065-1", "ACES2065-1", "view"), ("ACEScct", "ACEScct", "view"),
            ("Linear Rec.709 (sRGB)", "Linear Rec.709 (sRGB)", "view"), ("ARRI LogC3 (EI800)", None, "view"),
            ("ARRI LogC4", None, "view"), ("S-Log3 S-Gamut3", None, "view"), ("S-Log3 S-Gamut3.Cine", None, "view"),
            ("Log3G10 REDWideGamutRGB", None, "view"), ("Rec.709", "Camera Rec.709", "convert"),
            ("sRGB", SRGB, "convert"), ("acescg", "ACEScg", "view"), ("lin_ap1", "ACEScg", "view")]


@pytest.mark.parametrize("given,name,mode", BUILT_IN)
def test_built_in_colour_spaces_with_no_config_file(tmp_path, given, name, mode):
    src = open_source(flat(tmp_path, "x.1.exr", 0.3), given)
    assert src.colour.colorspace == (name or given) and src.colour.mode == mode
    assert src.colour.config == BUILTIN_CONFIG
    assert src.read(0).dtype == np.uint8


def test_unknown_colour_space_lists_close_matches(tmp_path):
    path = flat(tmp_path, "x.1.exr", 0.3)
    with pytest.raises(ColourError, match=r"x\.%d\.exr: unknown colour space 'ACES cg'.*'ACEScg'"):
        open_source(path, "ACES cg")
    with pytest.raises(ColourError, match=r"'S-Log3 S-Gamut3', 'S-Log3 S-Gamut3.Cine'"):
        open_source(path, "S-Log3")
    with pytest.raises(ColourError) as nothing_like_it:  # no close match: the config's colour spaces
        open_source(path, "qwertz")
    assert all(repr(name) in str(nothing_like_it.value) for name in colorspace_names())
    assert "ACEScg" in colorspace_names() and "ARRI LogC4" in colorspace_names()


def test_bad_modes_displays_and_views(tmp_path):
    path = flat(tmp_path, "x.1.exr", 0.3)
    with pytest.raises(ColourError, match="unknown colour mode 'tonemap'"):
        open_source(path, mode="tonemap")
    with pytest.raises(ColourError, match="passthrough.*colorspace='ACEScg' would be ignored"):
        open_source(path, "ACEScg", mode="passthrough")
    with pytest.raises(ColourError, match=r"Unknown view 'Filmic'.*Un-tone-mapped"):
        open_source(path, view="Filmic")
    with pytest.raises(ColourError, match=r"Unknown display 'Cinema'.*sRGB - Display"):
        open_source(path, display="Cinema")
    plain = open_source(path, view="Un-tone-mapped")
    assert plain.colour.view == "Un-tone-mapped" and plain.colour.display == DISPLAY
    png = flat(tmp_path, "y.1.png", 100, "uint8")  # (display-referred: its default is a plain conversion)
    shown = open_source(png, "sRGB", view="Un-tone-mapped").colour
    assert (shown.mode, shown.view) == ("view", "Un-tone-mapped")  # (a view asked for is not dropped)
    with pytest.raises(ColourError, match="display= and view= choose what mode='view' shows; with mode='convert'"):
        open_source(png, "sRGB", mode="convert", view="Un-tone-mapped")


def test_settings_are_recorded_and_reopen_the_same(tmp_path):
    path = flat(tmp_path, "x.1.exr", 0.18)
    src = open_source(path, "ACEScg", view="Video (colorimetric)")
    record = src.colour.to_dict()
    assert record["colorspace"] == "ACEScg" and record["mode"] == "view" and record["view"] == "Video (colorimetric)"
    assert ColourSettings.from_dict(record) == src.colour
    again = open_source(path, **ColourSettings.from_dict(record).open_kwargs())
    assert again.colour.key() == src.colour.key() and again.identity == src.identity
    keys = {open_source(path, mode=m).colour.key() for m in ("view", "convert", "passthrough")}
    identities = {open_source(path, mode=m).identity for m in ("view", "convert", "passthrough")}
    assert len(keys) == 3 and len(identities) == 3  # caches never mix colour choices
    assert open_source(path, mode="passthrough").colour.open_kwargs() == {"mode": "passthrough"}


def test_a_studio_config_by_path_or_ocio_variable(tmp_path, monkeypatch):
    config = tmp_path / "studio.ocio"
    config.write_text(CUSTOM_CONFIG)
    path = flat(tmp_path, "x.1.exr", 0.18)
    src = open_source(path, config=config)
    assert (src.colour.colorspace, src.colour.mode, src.colour.display, src.colour.view) == \
        ("lin_custom", "view", "Monitor sRGB", "Standard")
    assert src.colour.config == str(config.resolve())
    assert abs(value(src) - GREY_CONVERT) <= 1  # this config's view is a plain sRGB encoding
    assert open_source(path, mode="convert", config=config).colour.target == "sRGB"
    monkeypatch.setenv("OCIO", str(config))
    assert open_source(path).colour.colorspace == "lin_custom"
    with pytest.raises(ColourError, match="unknown colour space 'ACEScg'"):
        open_source(path, "ACEScg")
    assert open_source(path, "ACEScg", config=BUILTIN_CONFIG).colour.config == BUILTIN_CONFIG
    monkeypatch.setenv("OCIO", str(tmp_path / "gone.ocio"))
    with pytest.raises(ColourError, match="OCIO config not found.*gone.ocio"):
        open_source(path)
    assert open_source(flat(tmp_path, "p.1.png", 9, "uint8")).colour.mode == "passthrough"  # needs no config


def test_log_video_through_ocio(tmp_path):
    code = 0.41
    frame = np.full((32, 64, 3), round(code * 65535), np.uint16)
    path = encode_video(tmp_path / "slog3.mkv", "ffv1", "gbrp16le", frames=[frame, frame], size=(64, 32),
                        src_format="rgb48le")
    assert open_source(path).colour.mode == "passthrough"  # video is display-referred unless told
    src = open_source(path, "S-Log3 S-Gamut3.Cine")
    assert src.colour.mode == "view"
    cfg = Config.CreateFromFile(BUILTIN_CONFIG)
    cpu = cfg.getProcessor(DisplayViewTransform(src="S-Log3 S-Gamut3.Cine", display=DISPLAY, view=VIEW))
    pixel = np.full((1, 1, 3), round(code * 65535) / 65535, np.float32)
    cpu.getDefaultCPUProcessor().applyRGB(pixel)
    assert abs(value(src) - pixel[0, 0, 0] * 255) <= 1


def test_nan_and_infinity_do_not_break_the_frame(tmp_path):
    bad = np.full((8, 16, 3), 0.18, np.float32)
    bad[0, 0], bad[0, 1], bad[0, 2] = np.nan, np.inf, -np.inf
    path = write_image(tmp_path / "bad.1.exr", bad, "float")
    for mode in ("view", "convert", "passthrough"):
        frame = open_source(path, mode=mode).read(0)
        assert frame.dtype == np.uint8 and frame[0, 0].tolist() == [0, 0, 0]

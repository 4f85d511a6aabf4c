"""Colour: turning a shot's pixels into the display-referred sRGB the model was trained on.

Each source gets a `ColourPipeline`: the `ColourSettings` chosen for the shot (recorded in the shot
manifest) and the OpenColorIO processor that applies them. Three modes:

- ``passthrough``: the file's code values go to the model as they are (display-referred video, PNG,
  JPEG, 8/16-bit TIFF: what the official predictor does);
- ``view``: the config's display rendering for an sRGB display (the built-in ACES config tone-maps
  highlights instead of clipping them); the default for scene-linear and log footage;
- ``convert``: a plain colour-space conversion to sRGB-encoded Rec.709; the default for
  display-referred colour spaces, or when the user asks for it.

With no config file at all, OCIO's built-in studio config is used (`ocio://studio-config-latest`);
a studio's own config comes from ``$OCIO`` or a path.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .errors import ColourError

BUILTIN_CONFIG = "ocio://studio-config-latest"
MODES = ("view", "convert", "passthrough")

# Names people (and Blender) use for colour spaces that the built-in config spells otherwise.
# Tried only when the config itself knows no colour space (or alias, or role) by that name.
FRIENDLY_NAMES = {
    "srgb": "sRGB Encoded Rec.709 (sRGB)",
    "rec.709": "Camera Rec.709",
    "rec709": "Camera Rec.709",
    "linear rec.709": "Linear Rec.709 (sRGB)",
    "linear srgb": "Linear Rec.709 (sRGB)",
    "logc3": "ARRI LogC3 (EI800)",
    "arri logc3": "ARRI LogC3 (EI800)",
    "logc": "ARRI LogC3 (EI800)",
    "logc4": "ARRI LogC4",
    "log3g10": "Log3G10 REDWideGamutRGB",
    "red log3g10": "Log3G10 REDWideGamutRGB",
    "non-color": "Raw",
    "rec.1886": "Gamma 2.4 Encoded Rec.709",
    "display p3": "sRGB Encoded P3-D65",
}

# The sRGB-encoded Rec.709 colour space `convert` aims at, by the names configs give it.
SRGB_TARGETS = ("sRGB Encoded Rec.709 (sRGB)", "srgb_tx", "sRGB - Texture", "Utility - sRGB - Texture",
                "srgb_texture", "sRGB", "srgb")


@dataclass(frozen=True)
class ColourSettings:
    """What was chosen for a shot's colour; recorded with the shot so it can be reopened the same way.

    colorspace: the OCIO name of the footage's colour space (None for passthrough).
    mode: "view", "convert" or "passthrough".
    config: the config as given (a path or an ``ocio://`` URI); config_name: the config's own name.
    display, view: the display rendering (mode "view"); target: the sRGB space (mode "convert").
    chosen_by: "user", "default" (the file type's default) or "header" (the file's header said so).
    config_id: a short hash of the config's contents, so a changed config changes `key()`.
    """

    colorspace: str | None = None
    mode: str = "passthrough"
    config: str | None = None
    config_name: str | None = None
    display: str | None = None
    view: str | None = None
    target: str | None = None
    chosen_by: str = "default"
    config_id: str | None = None

    def key(self) -> str:
        """A string that differs whenever the pixels given to the model would (caches use it)."""
        if self.mode == "passthrough":
            return "passthrough"
        parts = [self.mode, self.colorspace, self.config_name, self.config_id]
        parts += [self.display, self.view] if self.mode == "view" else [self.target]
        return "|".join(str(p) for p in parts)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ColourSettings:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def open_kwargs(self) -> dict:
        """The `open_source` keyword arguments that choose these settings again."""
        if self.mode == "passthrough":
            return {"mode": "passthrough"}
        kwargs = {"colorspace": self.colorspace, "mode": self.mode, "config": self.config}
        if self.mode == "view":
            kwargs.update(display=self.display, view=self.view)
        return kwargs


@dataclass(frozen=True)
class FileColour:
    """What a file says (or its type implies) about its colour, before the user has a say.

    kind: "display" (display-referred: passes through by default), "scene" (a scene-referred colour
    space: `colorspace`, which may be an OCIO role such as "scene_linear"), or "unknown" (the user
    must say; `note` tells why).
    """

    kind: str
    colorspace: str | None = None
    note: str = ""
    source: str = "default"  # "default" or "header": how `colorspace` was found


DISPLAY_REFERRED = FileColour("display")
SCENE_LINEAR = FileColour("scene", "scene_linear")


# -- configs ---------------------------------------------------------------------------------------

def _ocio():
    try:
        import PyOpenColorIO
    except ImportError as e:  # pragma: no cover - opencolorio is a dependency
        raise ColourError("OpenColorIO is not installed: pip install opencolorio") from e
    return PyOpenColorIO


def config_spec(config: str | os.PathLike | None = None) -> str:
    """The config to use: the one given, else $OCIO, else OCIO's built-in studio config."""
    if config is not None:
        spec = str(config)
    else:
        spec = os.environ.get("OCIO", "").strip() or BUILTIN_CONFIG
    if spec.startswith("ocio://"):
        return spec
    path = Path(spec).expanduser()
    if not path.is_file():
        origin = "the OCIO environment variable" if config is None else "config="
        raise ColourError(f"OCIO config not found: {spec} (from {origin}). Give the path of a config.ocio "
                          f"file, or {BUILTIN_CONFIG!r} for OCIO's built-in studio config.")
    return str(path.resolve())


@functools.lru_cache(maxsize=8)
def _load_config(spec: str, stamp: int):
    ocio = _ocio()
    try:
        return ocio.Config.CreateFromFile(spec)
    except Exception as e:  # OCIO raises its own Exception type
        raise ColourError(f"Cannot load the OCIO config {spec}: {e}") from e


def load_config(config: str | os.PathLike | None = None):
    """(OCIO config, the spec it came from). Configs are cached; an edited file is loaded again."""
    spec = config_spec(config)
    stamp = 0 if spec.startswith("ocio://") else Path(spec).stat().st_mtime_ns
    return _load_config(spec, stamp), spec


def colorspace_names(config: str | os.PathLike | None = None) -> list[str]:
    """The colour space names of a config (default: $OCIO or the built-in studio config)."""
    cfg, _ = load_config(config)
    return [cs.getName() for cs in cfg.getColorSpaces()]


def _config_label(cfg, spec: str) -> str:
    name = cfg.getName()
    return f"{name} ({spec})" if name and name not in spec else spec


def resolve_colorspace(cfg, name: str, *, spec: str = "", where: str = "") -> str:
    """The config's own name for `name`: a colour space name, alias or role, case-insensitively,
    or a common name such as "sRGB" or "LogC3". Unknown names raise ColourError with close matches."""
    cs = cfg.getColorSpace(name)
    if cs is not None:
        return cs.getName()
    friendly = FRIENDLY_NAMES.get(name.strip().lower())
    if friendly and cfg.getColorSpace(friendly) is not None:
        return cfg.getColorSpace(friendly).getName()
    known: dict[str, str] = {}
    for cs in cfg.getColorSpaces():
        known[cs.getName().lower()] = cs.getName()
        for alias in cs.getAliases():
            known.setdefault(alias.lower(), cs.getName())
    low = name.strip().lower()
    if low in known:
        return known[low]
    close = [known[k] for k in difflib.get_close_matches(low, list(known), n=8, cutoff=0.6)]
    if len(low) >= 3:
        close += [known[k] for k in known if low in k]
    close = list(dict.fromkeys(close))[:6]
    if close:
        hint = f" Close matches: {', '.join(repr(c) for c in close)}."
    else:  # (nothing like it: what there is, for a command-line user too)
        hint = f" Its colour spaces: {', '.join(repr(cs.getName()) for cs in cfg.getColorSpaces())}."
    prefix = f"{where}: " if where else ""
    raise ColourError(f"{prefix}unknown colour space {name!r} in the OCIO config {_config_label(cfg, spec)}.{hint} "
                      "sam2_core.media.colorspace_names() lists them all.")


def _find_srgb_target(cfg, spec: str) -> str:
    for cand in SRGB_TARGETS:
        cs = cfg.getColorSpace(cand)
        if cs is not None:
            return cs.getName()
    raise ColourError(f"The OCIO config {_config_label(cfg, spec)} has no sRGB-encoded Rec.709 colour space "
                      f"(tried {', '.join(SRGB_TARGETS)}), which mode='convert' converts to: use mode='view'.")


def _match_name(wanted: str, names: list[str]) -> str | None:
    """`wanted` as the config spells it (exact, else ignoring case), or None."""
    return next((n for n in names if n == wanted or n.lower() == wanted.lower()), None)


def _pick_display(cfg, display: str | None, spec: str) -> str:
    displays = list(cfg.getDisplays())
    if not displays:
        raise ColourError(f"The OCIO config {_config_label(cfg, spec)} defines no display: use mode='convert'.")
    if display is not None:
        if (found := _match_name(display, displays)) is not None:
            return found
        raise ColourError(f"Unknown display {display!r} in the OCIO config {_config_label(cfg, spec)}; "
                          f"it has: {', '.join(displays)}.")
    default = cfg.getDefaultDisplay()
    if "srgb" in default.lower():
        return default
    return next((d for d in displays if "srgb" in d.lower()), default)


def _pick_view(cfg, display: str, view: str | None, colorspace: str, spec: str) -> str:
    views = list(cfg.getViews(display))
    if view is not None:
        if (found := _match_name(view, views)) is not None:
            return found
        raise ColourError(f"Unknown view {view!r} for display {display!r} in the OCIO config "
                          f"{_config_label(cfg, spec)}; it has: {', '.join(views)}.")
    try:
        return cfg.getDefaultView(display, colorspace)
    except TypeError:  # pragma: no cover - OCIO < 2.3 has no viewing rules
        return cfg.getDefaultView(display)


def default_mode(cfg, colorspace: str) -> str:
    """`view` for scene-linear and log colour spaces, `convert` for display-referred ones and data."""
    ocio = _ocio()
    cs = cfg.getColorSpace(colorspace)
    encoding = (cs.getEncoding() or "").lower()
    if encoding in ("scene-linear", "log"):
        return "view"
    if encoding or cs.isData() or cs.getReferenceSpaceType() == ocio.REFERENCE_SPACE_DISPLAY:
        return "convert"
    # configs that state no encoding: the scene_linear role, or the name, tells
    linear = cfg.getColorSpace(ocio.ROLE_SCENE_LINEAR)
    if linear is not None and linear.getName() == cs.getName():
        return "view"
    low = cs.getName().lower()
    return "view" if any(w in low for w in ("lin", "log", "aces", "scene")) else "convert"


# -- pixels ----------------------------------------------------------------------------------------

def quantise(rgb: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] (values outside are clipped, NaN is black) to uint8, rounding to nearest."""
    out = np.nan_to_num(rgb, nan=0.0, posinf=1.0, neginf=0.0)
    out = np.clip(out * 255.0 + 0.5, 0.0, 255.0)
    return out.astype(np.uint8)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Code values (uint8, uint16 or float in [0, 1]) to uint8 without any colour change, rounded."""
    if pixels.dtype == np.uint8:
        return np.ascontiguousarray(pixels)
    if pixels.dtype == np.uint16:
        wide = pixels.astype(np.uint32)
        return ((wide * 255 + 32767) // 65535).astype(np.uint8)
    return quantise(pixels.astype(np.float32, copy=False))


def to_float(pixels: np.ndarray) -> np.ndarray:
    """Code values as float32 in [0, 1] for integer data, unchanged for float data (a new array)."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / np.float32(255.0)
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / np.float32(65535.0)
    out = np.array(pixels, dtype=np.float32, order="C", copy=True)
    # OCIO's tone mapping handles large values; infinities and NaN become values it can take
    np.nan_to_num(out, copy=False, nan=0.0, posinf=65504.0, neginf=-65504.0)
    return out


class ColourPipeline:
    """Applies a shot's ColourSettings: pixels as read from the file in, the model's uint8 sRGB out."""

    def __init__(self, settings: ColourSettings, processor=None):
        self.settings = settings
        self._processor = processor

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        if self._processor is None:
            return to_uint8(pixels)
        rgb = to_float(pixels)
        self._processor.applyRGB(rgb)
        return quantise(rgb)

    def __repr__(self) -> str:
        return f"ColourPipeline({self.settings.key()!r})"


PASSTHROUGH = ColourPipeline(ColourSettings())


def colour_pipeline(file: FileColour = DISPLAY_REFERRED, colorspace: str | None = None, mode: str | None = None,
                    config: str | os.PathLike | None = None, display: str | None = None, view: str | None = None,
                    *, where: str = "") -> ColourPipeline:
    """The pipeline for one shot: the user's choices where given, else what the file implies.

    `where` names the footage in error messages.
    """
    prefix = f"{where}: " if where else ""
    if mode is not None and mode not in MODES:
        raise ColourError(f"{prefix}unknown colour mode {mode!r}: use 'view', 'convert' or 'passthrough' "
                          "(or None for the file type's default)")
    if display is not None or view is not None:  # (a view asked for: the view mode, not silently another)
        if mode in ("convert", "passthrough"):
            raise ColourError(f"{prefix}display= and view= choose what mode='view' shows; with mode={mode!r} "
                              "they would be ignored: drop them, or use mode='view'")
        mode = "view"
    if mode == "passthrough":
        if colorspace is not None:
            raise ColourError(f"{prefix}mode='passthrough' gives the file's code values to the model unchanged, so "
                              f"colorspace={colorspace!r} would be ignored: drop it, or use mode='view' or 'convert'")
        return ColourPipeline(ColourSettings(mode="passthrough", chosen_by="user"))
    if colorspace is None and mode is None:
        if file.kind == "display":
            return PASSTHROUGH
        if file.kind == "unknown":
            raise ColourError(f"{prefix}{file.note} Say which colour space the footage is in, e.g. "
                              "colorspace='ACEScg' or 'ARRI LogC3 (EI800)' (or mode='passthrough' to use the "
                              "code values as they are).")
    cfg, spec = load_config(config)
    if colorspace is not None:
        name = resolve_colorspace(cfg, colorspace, spec=spec, where=where)
        chosen_by = "user"
    elif file.kind == "scene":
        try:
            name = resolve_colorspace(cfg, file.colorspace, spec=spec, where=where)
        except ColourError as e:
            raise ColourError(f"{prefix}{file.note or 'the file type implies'} colour space {file.colorspace!r}, "
                              f"which the OCIO config {_config_label(cfg, spec)} lacks: pass colorspace=...") from e
        chosen_by = file.source
    elif file.kind == "display":
        name = _find_srgb_target(cfg, spec)
        chosen_by = "default"
    else:
        raise ColourError(f"{prefix}{file.note} Say which colour space the footage is in (colorspace=...).")
    chosen_mode = mode or default_mode(cfg, name)
    if mode is not None:
        chosen_by = "user"
    ocio = _ocio()
    config_id = hashlib.blake2b(cfg.getCacheID().encode(), digest_size=6).hexdigest()
    common = dict(colorspace=name, mode=chosen_mode, config=spec, config_name=cfg.getName() or None,
                  chosen_by=chosen_by, config_id=config_id)
    try:
        if chosen_mode == "view":
            disp = _pick_display(cfg, display, spec)
            v = _pick_view(cfg, disp, view, name, spec)
            settings = ColourSettings(display=disp, view=v, **common)
            transform = ocio.DisplayViewTransform(src=name, display=disp, view=v)
            processor = cfg.getProcessor(transform)
        else:
            target = _find_srgb_target(cfg, spec)
            settings = ColourSettings(target=target, **common)
            processor = cfg.getProcessor(name, target)
        cpu = processor.getDefaultCPUProcessor()
    except ColourError:
        raise
    except Exception as e:  # OCIO's own exception: a missing LUT file, a broken transform
        raise ColourError(f"{prefix}OCIO cannot build the {chosen_mode} transform from {name!r} in "
                          f"{_config_label(cfg, spec)}: {e}") from e
    return ColourPipeline(settings, cpu)

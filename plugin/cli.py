"""The `sam2roto` command line."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _xy(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y in pixels (e.g. 640,360), got {text!r}") from None
    return x, y


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X0,Y0,X1,Y1 in plate pixels, got {text!r}") from None
    if x1 <= x0 or y1 <= y0:
        raise argparse.ArgumentTypeError(f"box {text!r}: X1 must be right of X0 and Y1 below Y0")
    return x0, y0, x1, y1


def _model_args(p: argparse.ArgumentParser) -> None:
    from sam2_core.model.configs import CONFIGS, DEFAULT_MODEL

    p.add_argument("--model", default=DEFAULT_MODEL, choices=list(CONFIGS), metavar="NAME",
                   help=f"official SAM 2 model (default {DEFAULT_MODEL}; see `sam2roto weights list`)")
    p.add_argument("--checkpoint", type=Path, metavar="FILE",
                   help="use this checkpoint file instead of the official download")
    p.add_argument("--device", default="auto", help="auto (CUDA, then Apple MPS, then CPU), cuda, mps or cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="working precision (bfloat16 is about twice as fast on CPUs with AMX or "
                        "AVX512-BF16, several times slower on CPUs without them)")
    p.add_argument("--image-size", type=int, metavar="PIXELS",
                   help="the network's square input: 1024 as the models were trained (default); "
                        "512 is a draft, several times faster on a CPU, with coarser mattes")


def _missing_frames_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--missing-frames", default="error", choices=["error", "hold"],
                   help="frames missing from an image sequence: an error naming them (default), or hold (the "
                        "previous frame stands in, as a compositor's Read can)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sam2roto",
        description="SAM 2 rotoscoping: click an object, get its matte.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser(
        "segment", help="matte one object in a still image",
        description="Matte one object in a still image from clicks and/or a box. Writes an 8-bit "
                    "alpha PNG the size of the image (255 = object).")
    seg.add_argument("image", type=Path, help="the image (PNG, JPEG, TIFF, EXR, DPX, ...; one frame of a sequence "
                                              "is that frame alone)")
    seg.add_argument("--colorspace", help="the image's colour space (default: as the file type implies; see "
                                          "README, Footage)")
    seg.add_argument("--point", type=_xy, action="append", default=[], metavar="X,Y",
                     help="a click on the object, in image pixels from the top-left (repeatable)")
    seg.add_argument("--neg-point", type=_xy, action="append", default=[], metavar="X,Y",
                     help="a click on something that is NOT the object (repeatable)")
    seg.add_argument("--box", type=_box, metavar="X0,Y0,X1,Y1", help="a box around the object")
    seg.add_argument("--out", type=Path, required=True, metavar="MASK.png", help="where to write the matte")
    _model_args(seg)

    tr = sub.add_parser(
        "track", help="matte objects through a whole shot",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Track objects through a shot from a few clicks and write one matte per source frame\n"
                    "(same size and frame numbers as the source).\n\n"
                    "Prompts and clean-up options belong to the --object named before them (the first object\n"
                    "is 'object' if none is named; clean-up given before any --object applies to all). X,Y are\n"
                    "plate pixels from the top-left corner; FRAME is a frame number of the source (default:\n"
                    "its first frame).\n\n"
                    "example:\n"
                    "  sam2roto track plate.%04d.exr --object car --point 640,360,1001 --feather 2 \\\n"
                    "      --object rider --box 100,80,300,400,1001 --out mattes/")
    tr.add_argument("source", help="a folder of numbered frames, an image sequence, or a video file")
    _prompt_args(tr)
    tr.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the mattes")
    _export_args(tr)
    tr.add_argument("--colorspace", help="the footage's colour space (e.g. ACEScg, 'ARRI LogC3 (EI800)')")
    _missing_frames_arg(tr)
    tr.add_argument("--resume", action="store_true",
                    help="continue an interrupted run in DIR (its source and prompts are kept in DIR), "
                         "or export a finished one again, e.g. in another --format, without tracking again")
    tr.add_argument("--force", action="store_true", help="write into DIR even if it holds other files")
    _model_args(tr)

    _shot_parsers(sub)

    sv = sub.add_parser("serve", help="the service hosts (Blender, compositors) talk to",
                        description="Speak JSON-RPC 2.0 with LSP framing on stdin/stdout (plugin/PROTOCOL.md). "
                                    "Hosts start this themselves; there is no network listener.")
    sv.add_argument("--stdio", action="store_true", required=True, help="talk over stdin/stdout (the only transport)")
    sv.add_argument("--device", default="auto", help="auto (CUDA, then Apple MPS, then CPU), cuda, mps or cpu")

    w = sub.add_parser("weights", help="list, fetch or verify the official checkpoints")
    wsub = w.add_subparsers(dest="action", required=True)
    wsub.add_parser("list", help="the official models and which are installed")
    for action, text in (("fetch", "download (and verify) a model's checkpoint"),
                         ("verify", "check an installed checkpoint against its official SHA-256")):
        a = wsub.add_parser(action, help=text)
        a.add_argument("name", help="model name, e.g. sam2.1_hiera_tiny")
    return parser


def _prompt_args(p: argparse.ArgumentParser, *, masks: bool = False) -> None:
    p.add_argument("--object", action=PromptAction, metavar="NAME", help="the object the following options belong to")
    p.add_argument("--point", action=PromptAction, metavar="X,Y[,FRAME]", help="a click on the object (repeatable)")
    p.add_argument("--neg-point", action=PromptAction, metavar="X,Y[,FRAME]", help="a click on what is NOT the object")
    p.add_argument("--box", action=PromptAction, metavar="X0,Y0,X1,Y1[,FRAME]", help="a box around the object")
    if masks:
        p.add_argument("--mask", action=PromptAction, metavar="FILE[,FRAME]",
                       help="a rough matte of the object (an image the plate's size; white = object)")
    p.set_defaults(prompts=[])


DEFAULT_FORMAT = "png16"


def _export_args(p: argparse.ArgumentParser) -> None:
    from sam2_core.mattes.export import FORMATS

    p.add_argument("--format", default=DEFAULT_FORMAT, choices=list(FORMATS),
                   help="png16 (default), tiff16, exr (half), layered-exr (one EXR per frame, a layer per "
                        "object), prores / ffv1 (alpha video), premult-exr / premult-prores (plate with alpha)")
    p.add_argument("--shapes", action="store_true", help="also write each object's outline as vector shapes (JSON)")
    p.add_argument("--shape-tolerance", type=_pixels, default=None, metavar="PX",
                   help="with --shapes: keep a key only where the shape moves more than PX pixels from the "
                        "blend of its neighbours (sparse keys, easier to edit); default: a key on every frame")
    clean = p.add_argument_group("clean-up (per object: give after --object NAME; before any --object: all objects)")
    for flag, metavar, text in CLEANUP_OPTIONS:
        clean.add_argument(flag, action=PromptAction, metavar=metavar, help=text)
    p.set_defaults(prompts=[])


CLEANUP_OPTIONS = [
    ("--grow", "PX", "grow the matte by PX pixels (negative shrinks)"),
    ("--feather", "PX", "soften the matte's edge over PX pixels"),
    ("--fill-holes", "AREA", "fill holes in the matte up to AREA pixels"),
    ("--remove-islands", "AREA", "remove specks apart from the object up to AREA pixels"),
    ("--temporal", "N", "average each frame with N frames each side against flicker"),
]


def _shot_parsers(sub) -> None:
    shot = sub.add_parser(
        "shot", help="work on a shot step by step (create, prompt, propagate, export, info)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A shot folder keeps the footage's path, its colour settings, the model, the objects\n"
                    "and their prompts, the tracking results and the frame cache. Work on it in steps:\n\n"
                    "  sam2roto shot create car.shot plate.%04d.exr --colorspace ACEScg\n"
                    "  sam2roto shot prompt car.shot --object car --point 640,360,1001\n"
                    "  sam2roto shot propagate car.shot\n"
                    "  sam2roto shot prompt car.shot --object car --neg-point 700,300,1040   # a correction\n"
                    "  sam2roto shot propagate car.shot        # re-tracks only what the correction changes\n"
                    "  sam2roto shot export car.shot --out mattes/ --format exr --shapes\n"
                    "  sam2roto shot info car.shot\n"
                    "  sam2roto shot rename car.shot car hero_car   # or: shot remove car.shot car\n"
                    "  sam2roto shot clear-cache car.shot      # frees the disk; frames are encoded again when needed")
    ssub = shot.add_subparsers(dest="action", required=True)
    c = ssub.add_parser("create", help="make a new shot folder for a piece of footage")
    c.add_argument("shot", type=Path, help="the new shot folder")
    c.add_argument("source", help="a folder of numbered frames, an image sequence, or a video file")
    c.add_argument("--colorspace", help="the footage's colour space (e.g. ACEScg)")
    _missing_frames_arg(c)
    _model_args(c)
    pr = ssub.add_parser("prompt", help="add objects and their clicks, boxes or masks",
                         description="Add prompts. Clicks on a frame add to the clicks already there; a box "
                                     "replaces the frame's box; a mask replaces the frame's prompts. A prompt on "
                                     "a tracked frame is a correction: it sticks, and the next propagate "
                                     "re-tracks from it.")
    pr.add_argument("shot", type=Path, help="the shot folder")
    _prompt_args(pr, masks=True)
    pr.add_argument("--device", default="auto", help="auto, cuda, mps or cpu")
    pg = ssub.add_parser("propagate", help="track the objects through the shot")
    pg.add_argument("shot", type=Path, help="the shot folder")
    pg.add_argument("--from", dest="start", type=int, metavar="FRAME",
                    help="start at this frame number (default: what needs tracking: new objects through the "
                         "whole shot, corrections up to the next prompted frame, frames an interrupted run missed)")
    pg.add_argument("--to", dest="end", type=int, metavar="FRAME", help="stop at this frame number (inclusive)")
    pg.add_argument("--direction", default="both", choices=["forward", "backward", "both"])
    pg.add_argument("--objects", nargs="+", metavar="NAME", help="only these objects (default: all)")
    pg.add_argument("--device", default="auto", help="auto, cuda, mps or cpu")
    ex = ssub.add_parser("export", help="write the mattes (and shapes) from the tracking results")
    ex.add_argument("shot", type=Path, help="the shot folder")
    ex.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the mattes")
    ex.add_argument("--force", action="store_true", help="write into DIR even if it holds other files")
    ex.add_argument("--object", action=PromptAction, metavar="NAME", help="the object the clean-up options belong to")
    _export_args(ex)
    rl = ssub.add_parser("relink", help="tell the shot where its footage (or its checkpoint file) is now",
                         description="The footage moved: the shot uses it from its new place, its tracking kept "
                                     "where the frames are the same. (A shot folder moved together with its "
                                     "footage finds it by itself.) A checkpoint file of the shot's own (--checkpoint "
                                     "at create) that moved: give its new place with --checkpoint.")
    rl.add_argument("shot", type=Path, help="the shot folder")
    rl.add_argument("source", nargs="?", help="the footage's new place: a video, a sequence or a folder of frames")
    rl.add_argument("--checkpoint", type=Path, metavar="FILE", help="the shot's checkpoint file's new place")
    rl.add_argument("--force", action="store_true",
                    help="take a checkpoint with other weights than the shot was tracked with (it is tracked afresh)")
    rn = ssub.add_parser("rename", help="rename an object (its mattes are then written under the new name)")
    rn.add_argument("shot", type=Path, help="the shot folder")
    rn.add_argument("object", help="the object's name now")
    rn.add_argument("name", help="its new name")
    rm = ssub.add_parser("remove", help="remove an object with its prompts and tracking results")
    rm.add_argument("shot", type=Path, help="the shot folder")
    rm.add_argument("object", help="the object's name")
    i = ssub.add_parser("info", help="what the shot holds")
    i.add_argument("shot", type=Path, help="the shot folder")
    cc = ssub.add_parser("clear-cache", help="delete the shot's cached frames and features to free disk space "
                                             "(computed again when needed; prompts and tracking results stay)")
    cc.add_argument("shot", type=Path, help="the shot folder")




def _pixels(text: str) -> float:
    """A distance in pixels, 0 or more (argparse names the option when this refuses)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected pixels, 0 or more; got {text!r}")
    return value


class PromptAction(argparse.Action):
    """Keeps --object, prompts and clean-up options in the order given, so each belongs to
    the object named before it."""

    def __call__(self, parser, namespace, value, option_string=None):
        kind = option_string.lstrip("-")
        if kind in ("point", "neg-point", "box"):
            value = self._coords(parser, kind, value, option_string)
        elif kind == "mask":
            path, _, frame = value.partition(",")
            try:
                value = (Path(path), int(frame) if frame else None)
            except ValueError:
                parser.error(f"{option_string} {value!r}: expected FILE[,FRAME]")
        elif kind != "object":  # a clean-up setting: refused here, before any model runs
            from sam2_core.mattes.cleanup import checked_setting, setting_rule

            name = kind.replace("-", "_")
            try:
                value = checked_setting(name, float(value))
            except ValueError:
                parser.error(f"{option_string} {value!r}: expected {setting_rule(name)}")
        namespace.prompts = [*namespace.prompts, (kind, value)]

    @staticmethod
    def _coords(parser, kind, value, option_string):
        numbers = value.split(",")
        want = 4 if kind == "box" else 2
        try:
            floats = [float(v) for v in numbers[:want]]
            frame = int(numbers[want]) if len(numbers) == want + 1 else None
            if len(numbers) not in (want, want + 1) or not all(math.isfinite(v) for v in floats):
                raise ValueError
        except ValueError:
            form = "X0,Y0,X1,Y1[,FRAME]" if kind == "box" else "X,Y[,FRAME]"
            parser.error(f"{option_string} {value!r}: expected {form}")
        return floats, frame


@dataclass
class ObjectRequest:
    """What the command line asked of one object."""

    prompts: dict[int, dict] = field(default_factory=dict)  # frame number -> points, labels, box, mask
    cleanup: dict = field(default_factory=dict)


def _requests(prompts, default_frame: int, shot_objects: list[str] = (),
              default_object: str | None = "object") -> dict[str, ObjectRequest]:
    """The command line's options, object by object, in the order given. Clean-up given before
    any --object is for every object: those named, else `shot_objects` (a shot made before).
    Prompts before any --object are for `default_object` (None: they must name one)."""
    objects: dict[str, ObjectRequest] = {}
    everyone: dict = {}  # clean-up given before any --object
    current = None
    for kind, value in prompts:
        if kind == "object":
            current = value
            objects.setdefault(current, ObjectRequest())
            continue
        if kind.replace("-", "_") in CLEANUP_KEYS:
            target = everyone if current is None else objects[current].cleanup
            target[kind.replace("-", "_")] = value
            continue
        if current is None:
            if default_object is None:
                raise UserError(f"Which object is --{kind} for? Name it first: --object NAME (the shot's objects: "
                                f"{', '.join(shot_objects)}).")
            current = default_object
        request = objects.setdefault(current, ObjectRequest())
        coords, frame = value
        frame = default_frame if frame is None else frame
        p = request.prompts.setdefault(frame, {"points": [], "labels": [], "box": None, "mask": None})
        if kind == "box":
            p["box"] = coords
        elif kind == "mask":
            p["mask"] = coords
        else:
            p["points"].append(coords)
            p["labels"].append(1 if kind == "point" else 0)
    if everyone:
        for name in shot_objects:
            objects.setdefault(name, ObjectRequest())
    for request in objects.values():
        request.cleanup = {**everyone, **request.cleanup}
    return objects


CLEANUP_KEYS = {flag.lstrip("-").replace("-", "_") for flag, _, _ in CLEANUP_OPTIONS}


class Progress:
    """A one-line progress bar on stderr: how far, frames per second, time left. In percent:
    a frame that two objects' runs pass (objects prompted on different frames) is run twice,
    so a count of runs would say more frames than the shot has."""

    def __init__(self, what: str):
        self.what = what
        self.start = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        elapsed = time.monotonic() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (total - done) / rate if rate > 0 else 0.0
        print(f"\r{self.what}: {100 * done // max(total, 1)}%, {rate:.2f} fps, {left:.0f} s left   ", end="",
              file=sys.stderr, flush=True)
        if done == total:
            print(file=sys.stderr)


def _check_source(source: str) -> None:
    if not Path(source).exists() and "%" not in source and "#" not in source:
        raise UserError(f"Source not found: {source}")


def _give_prompts(session, requests: dict[str, ObjectRequest]) -> None:
    """Every prompt the command line named, each checked before the model runs."""
    from sam2_core.shot.session import read_mask_file

    known = {o.name for o in session.objects}
    for name, request in requests.items():
        for frame in request.prompts:
            session.index(frame)
        if not request.prompts and not request.cleanup:
            raise UserError(f"Object {name!r} has nothing after it: give it a --point, --box or --mask.")
        found = any(p["labels"].count(1) or p["box"] is not None or p["mask"] is not None
                    for p in request.prompts.values())
        if request.prompts and name.strip() not in known and not found:
            raise UserError(f"Object {name!r} is new: give it a --point, --box or --mask (a --neg-point only says "
                            "what is not the object).")
    for name, request in requests.items():
        for frame, p in request.prompts.items():
            logits = None
            if p["mask"] is not None:
                logits = session.add_prompt(name, frame, mask=read_mask_file(p["mask"], frame))
            if p["points"] or p["box"] is not None:
                logits = session.add_prompt(name, frame, points=p["points"] or None, labels=p["labels"] or None,
                                            box=p["box"])
            if logits is not None:
                print(f"{name}, frame {frame}: {int((logits > 0).sum())} pixels in the mask", file=sys.stderr)
        if request.cleanup:
            session.set_cleanup(name, request.cleanup)


def _set_cleanup(session, prompts, no_prompts_here: str) -> None:
    """The clean-up options of a command line that may not prompt (refused with `no_prompts_here`)."""
    for name, request in _requests(prompts, session.numbers[0], [o.name for o in session.objects]).items():
        if request.prompts:
            raise UserError(no_prompts_here)
        session.set_cleanup(name, request.cleanup)


def _track_all(session, what: str = "tracking", **kwargs) -> int:
    """How many frames were tracked (a frame that two objects' runs passed counts once)."""
    return len({frame for frame, _ in session.track(progress=Progress(what), **kwargs)})


PROMPTING = "prompting"  # in a run's shot folder while its first prompts are given


def _same_footage(given: str, footage: Path) -> bool:
    """Whether SOURCE names footage in the run's footage folder (the clip, its folder, a frame,
    a sequence pattern); a path that is not there is not told apart."""
    given = Path(given)
    if "%" in given.name or "#" in given.name:
        given = given.parent
    if not given.exists():
        return True

    def folder(path: Path) -> Path:
        path = path.resolve()
        return path if path.is_dir() else path.parent

    return folder(Path(given)) == folder(Path(footage))


def cmd_track(args) -> int:
    import shutil

    from sam2_core.mattes.writers import prepare_output_dir
    from sam2_core.shot import ShotLock
    from sam2_core.shot.session import refuse_footage_folder

    out = args.out
    shot_dir = out / ".sam2roto"
    prompting = shot_dir / PROMPTING  # (there while the first run gives its prompts)
    if args.resume:
        if not (shot_dir / "shot.json").exists():
            raise UserError(f"Nothing to resume in {out}: run without --resume first.")
        if prompting.exists():
            raise UserError(f"The run in {out} stopped before it had given all its prompts: start it again, "
                            "with --force.")
        hint = "give its new place as SOURCE, with --resume"
        session = _finished_run(shot_dir, args.source, hint) if args.checkpoint is None else None
        if session is None:  # (to be tracked further: with the model)
            session = _open(shot_dir, args.device, moved_to=args.source, hint=hint,
                            checkpoint_hint="--resume with --checkpoint FILE", checkpoint=args.checkpoint)
        if not _same_footage(args.source, session.shot.source_path):
            print(f"sam2roto: note: --resume goes on with the run's own footage, {session.shot.source_path}; "
                  f"{args.source} is not used.", file=sys.stderr)
        try:
            session.check_export_folder(out, args.format)  # (refused now, not after tracking the rest)
        except BaseException:
            session.close()
            raise
    else:
        _check_source(args.source)
        if not any(kind in ("point", "box") for kind, _ in args.prompts):
            raise UserError("Give at least one --point or --box (a --neg-point only says what is not the object).")
        # (before "it holds files": --force would not help)
        from sam2_core.mattes.export import matte_files

        for folder in [out, *(Path(matte_files(args.format, out, name)).parent for name in _requests(args.prompts, 0))]:
            refuse_footage_folder(folder, args.source, out)
        if shot_dir.exists():
            if not args.force:
                raise UserError(f"{out} already holds a sam2roto run: add --resume to continue it, "
                                "or --force to start again.")
            lock = ShotLock(shot_dir)
            lock.acquire()  # (not a run that another process has open)
            lock.release()
            shutil.rmtree(shot_dir)
        prepare_output_dir(out, force=args.force)
        session = None
        try:
            session = _create_session(shot_dir, args)
            prompting.touch()
            _give_prompts(session, _requests(args.prompts, session.numbers[0]))
            session.check_export_folder(out, args.format)  # (refused now, not after tracking)
            prompting.unlink()
        except BaseException:
            # a run that never got going (weights missing, a bad prompt) must not block the next try
            if session is not None:
                session.close()
            shutil.rmtree(shot_dir, ignore_errors=True)
            raise
    with session:
        if args.resume and args.prompts:
            _set_cleanup(session, args.prompts, "--resume keeps the run's prompts; to change them, use `sam2roto "
                                                f"shot prompt {shot_dir}` and then `sam2roto shot propagate`.")
        if not session.shot.manifest.tracked:
            _track_all(session)
        result = session.export(out, args.format, shapes=args.shapes, shape_tolerance=args.shape_tolerance,
                                force=True, progress=Progress("writing mattes"))
    print(f"{out}: {result['frames']} frames of mattes for {', '.join(result['mattes'])}")
    _say_left_out(result, out)
    return EXIT_OK


def cmd_shot(args) -> int:
    if args.action == "create":
        from sam2_core.shot.shot import holds_other_files

        _check_source(args.source)
        if not (args.shot / "shot.json").exists() and holds_other_files(args.shot):
            raise UserError(f"{args.shot} holds other files: a shot needs a new or empty folder. Choose another.")
        with _create_session(args.shot, args) as session:
            _print_info(session.info())
        return EXIT_OK
    if args.action == "clear-cache":
        from sam2_core.shot.shot import clear_cache

        freed = clear_cache(args.shot)
        print(f"{args.shot}: {freed / (1 << 30):.2f} GiB of cached frames and features deleted")
        return EXIT_OK
    if args.action == "relink":
        from sam2_core.shot.shot import OtherWeights, Shot

        if args.source is None and args.checkpoint is None:
            raise UserError("Give the footage's new place (a video, a sequence or a folder of frames), "
                            "or --checkpoint FILE.")
        with Shot.open(args.shot, moved_to=args.source, relink=args.source is not None) as shot:
            if args.checkpoint is not None:
                try:
                    shot.relink_checkpoint(args.checkpoint, other_weights=args.force)
                except OtherWeights as e:
                    raise UserError(f"{e} To do that, add --force.") from None
        print(f"{args.shot}: footage {shot.source_path}"
              + (f", checkpoint {shot.manifest.model['checkpoint']}" if args.checkpoint is not None else ""))
        return EXIT_OK
    relink = f"sam2roto shot relink {args.shot}"
    if args.action == "info":  # (from the shot's record: no model, no lock)
        from sam2_core.shot.shot import FootageMissing, Shot

        try:
            with Shot.look(args.shot) as shot:
                _print_info(shot.info())
        except FootageMissing as e:
            raise UserError(f"{e} Here: {relink} NEW_PLACE.") from None
        return EXIT_OK
    if args.action == "export":
        results = _open_results(args.shot, hint=f"{relink} NEW_PLACE")
        if results is not None:  # (read from the disk: no model, no weights needed)
            with results:
                _export(args, results)
            return EXIT_OK
    with _open(args.shot, getattr(args, "device", "auto"), hint=f"{relink} NEW_PLACE",
               checkpoint_hint=f"{relink} --checkpoint FILE") as session:
        if args.action == "prompt":
            if not args.prompts:
                raise UserError("Give prompts: --object NAME --point X,Y,FRAME (or --neg-point, --box, --mask).")
            names = [o.name for o in session.objects]
            # (prompts without an --object are for the shot's one object, or the first of a new shot)
            default = "object" if not names else names[0] if len(names) == 1 else None
            _give_prompts(session, _requests(args.prompts, session.numbers[0], names, default))
        elif args.action == "propagate":
            frames = _track_all(session, direction=args.direction, start=args.start, end=args.end,
                                objects=args.objects)
            print(f"{args.shot}: {frames} frames tracked" if frames else f"{args.shot}: nothing needed tracking")
        elif args.action == "export":
            _export(args, session)
        elif args.action == "rename":
            session.rename_object(args.object, args.name)
            print(f"{args.shot}: {args.object!r} is now {args.name.strip()!r}")
        elif args.action == "remove":
            session.remove_object(args.object)
            print(f"{args.shot}: {args.object!r} removed, with its prompts and tracking results")
    return EXIT_OK


def _export(args, session) -> None:
    """`shot export`: the mattes (and shapes) of a ShotResults or ShotSession."""
    _set_cleanup(session, args.prompts, "export takes no prompts; use `sam2roto shot prompt`.")
    result = session.export(args.out, args.format, shapes=args.shapes, shape_tolerance=args.shape_tolerance,
                            force=args.force, progress=Progress("writing mattes"))
    print(f"{result['folder']}: {result['frames']} frames of mattes for {', '.join(result['mattes'])}")
    _say_left_out(result, args.out)
    if not result["complete"]:
        print(f"{args.shot}: tracking is not done (frames not tracked yet have empty mattes, and "
              f"a correction waits): run `sam2roto shot propagate {args.shot}`, then export again",
              file=sys.stderr)


def _open_results(folder: Path, moved_to: str | None = None, *, hint: str):
    """The shot's results read without the model (a ShotResults), or None where they need
    the model first."""
    from sam2_core.shot.session import ShotResults
    from sam2_core.shot.shot import FootageMissing

    try:
        return ShotResults.open(folder, moved_to=moved_to)
    except FootageMissing as e:
        raise UserError(f"{e} Here: {hint}.") from None


def _finished_run(folder: Path, source: str, hint: str):
    """A `track` run that is tracked to the end, read without the model (exporting it again
    needs none); None for one that still has tracking to do."""
    results = _open_results(folder, source, hint=hint)
    if results is not None and not (results.shot.manifest.tracked and results.tracking_done()):
        results.close()
        return None
    return results


def _open(folder: Path, device: str, moved_to: str | None = None, *, hint: str, checkpoint_hint: str,
          checkpoint: Path | None = None):
    """The shot session; a shot whose footage or own checkpoint file is missing is an error
    that says how to give its new place here (`hint`, `checkpoint_hint`)."""
    from sam2_core.shot.session import CheckpointMissing, ShotSession
    from sam2_core.shot.shot import FootageMissing, OtherWeights

    try:
        return ShotSession.open(folder, device=device, moved_to=moved_to, checkpoint=checkpoint)
    except FootageMissing as e:
        raise UserError(f"{e} Here: {hint}.") from None
    except CheckpointMissing as e:
        raise UserError(f"{e} Give its new place: {checkpoint_hint}.") from None
    except OtherWeights as e:
        raise UserError(f"{e} To track it with them, start the run again with --force.") from None


def _create_session(folder: Path, args):
    from sam2_core.shot.session import ShotSession

    source = Path(args.source).resolve() if Path(args.source).exists() else args.source
    return ShotSession.create(folder, source, colour={"colorspace": args.colorspace} if args.colorspace else {},
                              model_name=args.model, checkpoint=args.checkpoint, device=args.device, dtype=args.dtype,
                              image_size=args.image_size, missing_frames=args.missing_frames)


def _print_info(info: dict) -> None:
    w, h = info["size"]
    print(f"shot    {info['shot']}")
    print(f"source  {info['source']}  ({w}x{h}, frames {info['frames'][0]}-{info['frames'][1]})")
    print(f"colour  {_colour_words(info.get('colour') or {})}")
    print(f"model   {info['model']} (input {info['image_size']}x{info['image_size']})")
    if info.get("held"):
        print(f"held    frames {', '.join(map(str, info['held']))} are missing: the frame before stands in")
    print(f"tracked {'yes' if info['tracked'] else 'no'}")
    for o in info["objects"]:
        frames = ", ".join(map(str, o["prompted_frames"])) or "none"
        cleanup = ", ".join(f"{k} {v:g}" for k, v in o["cleanup"].items())
        print(f"object  {o['object']}: prompts on frames {frames}" + (f"; clean-up: {cleanup}" if cleanup else ""))


def _say_left_out(result: dict, out: Path) -> None:
    for name in result.get("left_out", []):
        print(f"sam2roto: note: no mattes for {name}: it has no prompt on the footage's frames (prompt it again); "
              f"files of an earlier export in {out} are not its mattes for this footage", file=sys.stderr)


def _colour_words(colour: dict) -> str:
    """A shot's colour settings as the artist chose them (or the file type's default)."""
    mode = colour.get("mode", "passthrough")
    how = {"user": "", "default": " (the file type's default)", "header": " (the file's header says so)"}
    said = how.get(colour.get("chosen_by", "default"), "")
    if mode == "passthrough":
        return f"the file's code values, unchanged{said}"
    if mode == "view":
        display, view = colour.get("display"), colour.get("view")
        return f"{colour.get('colorspace')} through the {display} display's {view} view{said}"
    return f"{colour.get('colorspace')} converted to {colour.get('target')}{said}"


def cmd_segment(args) -> int:
    import numpy as np

    from sam2_core import ImagePredictor, load_model
    from sam2_core.media import open_still
    from sam2_core.media.cv_files import write_image

    if args.out.suffix.lower() not in (".png", ".tif", ".tiff", ".jpg", ".jpeg") or args.out.is_dir():
        raise UserError(f"Cannot write the matte to {args.out}: give a file name ending .png, .tif or .jpg.")
    if args.out.exists() and args.image.exists() and os.path.samefile(args.out, args.image):
        raise UserError(f"--out {args.out} is the image itself: give another file name for the matte.")
    rgb = open_still(args.image, args.colorspace).read(0)  # (colour-managed as footage is)
    h, w = rgb.shape[:2]
    for x, y in args.point + args.neg_point:
        if not (0 <= x < w and 0 <= y < h):
            raise UserError(f"Point {x:g},{y:g} is outside {args.image} ({w}x{h} pixels).")

    model = load_model(args.model, checkpoint=args.checkpoint, device=args.device, dtype=args.dtype,
                       image_size=args.image_size)
    predictor = ImagePredictor(model)
    predictor.set_image(rgb)
    points = args.point + args.neg_point
    labels = [1] * len(args.point) + [0] * len(args.neg_point)
    # one click is ambiguous (part or whole?): ask for three answers and keep the best
    multimask = len(points) == 1 and args.box is None
    masks, scores, _ = predictor.predict(points=points or None, labels=labels or None, box=args.box,
                                         multimask=multimask)
    best = int(np.argmax(scores))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_image(args.out, masks[best].astype(np.uint8) * 255)
    except OSError as e:
        raise UserError(f"Cannot write {args.out}: {e.strerror}. Choose a writable folder.") from None
    area = int(masks[best].sum())
    print(f"{args.out}: {area} of {w * h} pixels in the matte (predicted IoU {scores[best]:.2f})")
    return EXIT_OK


def cmd_serve(args) -> int:
    from .service import serve_stdio

    return serve_stdio(args.device)


def cmd_weights(args) -> int:
    from sam2_core.model import weights

    if args.action == "list":
        folder = weights.weights_dir()
        print(f"weights folder: {folder}  (set SAM2ROTO_WEIGHTS_DIR to move it)")
        for w in weights.OFFICIAL_WEIGHTS.values():
            state = "installed" if (folder / w.filename).exists() else "not installed"
            print(f"  {w.name:24s} {w.size / 2**20:7.0f} MiB  {state}")
        return EXIT_OK
    path = weights.official_checkpoint(args.name, download_missing=(args.action == "fetch"),
                                       rehash=(args.action == "verify"))
    print(f"{args.name}: {path} (SHA-256 verified)")
    return EXIT_OK


class UserError(Exception):
    """Something the user can fix; printed without a traceback."""


def _check_usage(parser: argparse.ArgumentParser, args) -> None:
    """What options say together that argparse cannot check alone: a usage error (exit 2)."""
    if args.command == "segment" and not args.point and args.box is None:
        parser.error("segment: give at least one --point or a --box")
    if getattr(args, "shape_tolerance", None) is not None and not getattr(args, "shapes", False):
        parser.error("--shape-tolerance sets how sparse the --shapes keys are: add --shapes, or drop it")


COORDINATE_OPTIONS = ("--point", "--neg-point", "--box")


def _negative_coordinates_attached(argv: list[str]) -> list[str]:
    """`--box -10,20,300,400` as `--box=-10,20,300,400`: argparse takes a value that starts
    with a minus sign (and is not one plain number) for an option of its own."""
    out: list[str] = []
    for word in argv:
        if out and out[-1] in COORDINATE_OPTIONS and word[:1] == "-" and (word[1:2].isdigit() or word[1:2] == "."):
            out[-1] = f"{out[-1]}={word}"
        else:
            out.append(word)
    return out


def main(argv: list[str] | None = None) -> int:
    try:  # (PyTorch takes a second or two to load: a Ctrl-C meanwhile is no error)
        from sam2_core.cache.store import CacheError
        from sam2_core.mattes.writers import ExportError
        from sam2_core.model.checkpoint import CheckpointError
        from sam2_core.model.weights import WeightsError
        from sam2_core.shot import ManifestError, ShotInUseError
        from sam2_core.shot.session import SessionError

        parser = build_parser()
        args = parser.parse_args(_negative_coordinates_attached(sys.argv[1:] if argv is None else argv))
        _check_usage(parser, args)
    except KeyboardInterrupt:
        print("\nsam2roto: interrupted before it began; nothing was done", file=sys.stderr)
        return 130
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        commands = {"segment": cmd_segment, "track": cmd_track, "shot": cmd_shot, "serve": cmd_serve,
                    "weights": cmd_weights}
        return commands[args.command](args)
    except CacheError as e:  # (a full disk, mostly)
        again = f" To go on where it stopped: {_resume_command(args)}" if _resumable(args) else ""
        print(f"sam2roto: error: {e}{again}", file=sys.stderr)
        return EXIT_ERROR
    except (UserError, CheckpointError, WeightsError, ValueError, ExportError, ManifestError,
            ShotInUseError, SessionError, IndexError, KeyError, FileNotFoundError, FileExistsError) as e:
        print(f"sam2roto: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:  # (a folder that cannot be written, a disk gone): the system's words, and where
        where = f"{e.filename}: " if e.filename else ""
        print(f"sam2roto: error: {where}{e.strerror or e}. Check the path, its permissions and the free space.",
              file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        again = (f"to go on: {_resume_command(args)}" if _resumable(args) else
                 "propagate again" if getattr(args, "action", None) == "propagate" else
                 "run the same command again; a download goes on where it stopped")
        print(f"\nsam2roto: interrupted; what was done is kept ({again})", file=sys.stderr)
        return 130


def _resumable(args) -> bool:
    """Whether `track` stopped with a run that --resume goes on with (one stopped while giving its
    prompts is started again)."""
    if args.command != "track":
        return False
    shot_dir = args.out / ".sam2roto"
    return (shot_dir / "shot.json").exists() and not (shot_dir / PROMPTING).exists()


def _resume_command(args) -> str:
    """The command line that goes on with a stopped `track` run: the run keeps its prompts,
    clean-up and model; what to export, and where to run, are this command's own."""
    import shlex
    import subprocess

    words = ["sam2roto", "track", "--resume", str(args.source), "--out", str(args.out)]
    if args.format != DEFAULT_FORMAT:
        words += ["--format", args.format]
    if args.shapes:
        words.append("--shapes")
    if args.shape_tolerance is not None:
        words += ["--shape-tolerance", f"{args.shape_tolerance:g}"]
    if args.device != "auto":
        words += ["--device", args.device]
    return subprocess.list2cmdline(words) if sys.platform == "win32" else shlex.join(words)


if __name__ == "__main__":
    sys.exit(main())

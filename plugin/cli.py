"""The `sam2roto` command line."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from sam2_core.shot.manifest import PromptRecord

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _xy(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y in pixels (e.g. 640,360), got {text!r}") from None
    return x, y


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
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
                   help="working precision (bfloat16 is about twice as fast on recent CPUs)")


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
    seg.add_argument("image", type=Path, help="the image (PNG, JPEG, TIFF, ...; 8-bit RGB)")
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
                    "Prompts belong to the --object named before them (the first object is 'object' if\n"
                    "none is named). X,Y are plate pixels from the top-left corner; FRAME is a frame number\n"
                    "of the source (default: its first frame).\n\n"
                    "example:\n"
                    "  sam2roto track plate.%04d.exr --object car --point 640,360,1001 \\\n"
                    "      --object rider --box 100,80,300,400,1001 --out mattes/")
    tr.add_argument("source", help="a folder of numbered frames, an image sequence, or a video file")
    prompt = PromptAction
    tr.add_argument("--object", action=prompt, metavar="NAME", help="the object the following prompts belong to")
    tr.add_argument("--point", action=prompt, metavar="X,Y[,FRAME]", help="a click on the object (repeatable)")
    tr.add_argument("--neg-point", action=prompt, metavar="X,Y[,FRAME]", help="a click on what is NOT the object")
    tr.add_argument("--box", action=prompt, metavar="X0,Y0,X1,Y1[,FRAME]", help="a box around the object")
    tr.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the mattes")
    tr.add_argument("--format", default="png16", choices=list(FORMATS),
                    help="png16 (default), tiff16, exr (half), layered-exr (one EXR per frame, a layer per "
                         "object), prores / ffv1 (alpha video), premult-exr / premult-prores (plate with alpha)")
    tr.add_argument("--shapes", action="store_true", help="also write each object's outline as vector shapes (JSON)")
    tr.add_argument("--colorspace", help="the footage's colour space (e.g. ACEScg, 'ARRI LogC3 (EI800)')")
    tr.add_argument("--resume", action="store_true",
                    help="continue an interrupted run in DIR (its source and prompts are kept in DIR), "
                         "or export a finished one again, e.g. in another --format, without tracking again")
    tr.add_argument("--force", action="store_true", help="write into DIR even if it holds other files")
    _model_args(tr)
    tr.set_defaults(prompts=[])

    w = sub.add_parser("weights", help="list, fetch or verify the official checkpoints")
    wsub = w.add_subparsers(dest="action", required=True)
    wsub.add_parser("list", help="the official models and which are installed")
    for action, text in (("fetch", "download (and verify) a model's checkpoint"),
                         ("verify", "check an installed checkpoint against its official SHA-256")):
        a = wsub.add_parser(action, help=text)
        a.add_argument("name", help="model name, e.g. sam2.1_hiera_tiny")
    return parser


FORMATS = {
    "png16": ("sequence", "png16"), "tiff16": ("sequence", "tiff16"), "exr": ("sequence", "exr"),
    "layered-exr": ("layered", "exr"), "prores": ("video", "prores4444"), "ffv1": ("video", "ffv1"),
    "premult-exr": ("premult", "exr"), "premult-prores": ("premult", "prores4444"),
}


class PromptAction(argparse.Action):
    """Keeps --object/--point/--neg-point/--box in the order given, so prompts belong to
    the object named before them."""

    def __call__(self, parser, namespace, value, option_string=None):
        kind = option_string.lstrip("-")
        if kind != "object":
            numbers = value.split(",")
            want = 4 if kind == "box" else 2
            try:
                floats = [float(v) for v in numbers[:want]]
                frame = int(numbers[want]) if len(numbers) == want + 1 else None
                if len(numbers) not in (want, want + 1):
                    raise ValueError
            except ValueError:
                form = "X0,Y0,X1,Y1[,FRAME]" if kind == "box" else "X,Y[,FRAME]"
                parser.error(f"{option_string} {value!r}: expected {form}")
            value = (floats, frame)
        namespace.prompts = [*namespace.prompts, (kind, value)]


def _objects_from_prompts(prompts, default_frame: int) -> dict[str, dict[int, dict]]:
    """{object name: {frame number: {"points": [...], "labels": [...], "box": ...}}}"""
    objects: dict[str, dict[int, dict]] = {}
    current = None
    for kind, value in prompts:
        if kind == "object":
            current = value
            objects.setdefault(current, {})
            continue
        if current is None:
            current = "object"
        coords, frame = value
        frame = default_frame if frame is None else frame
        p = objects.setdefault(current, {}).setdefault(frame, {"points": [], "labels": [], "box": None})
        if kind == "box":
            p["box"] = coords
        else:
            p["points"].append(coords)
            p["labels"].append(1 if kind == "point" else 0)
    empty = [name for name, frames in objects.items() if not frames]
    if empty:
        raise UserError(f"Object {empty[0]!r} has no --point or --box after it.")
    return objects


def _make_writer(fmt: str, out: Path, source):
    from sam2_core.mattes import writers

    kind, codec = FORMATS[fmt]
    aspect = getattr(source, "pixel_aspect", 1.0)
    rate = getattr(source, "rate", None) or 24
    if kind == "sequence":
        return writers.AlphaSequenceWriter(out, fmt=codec, pixel_aspect=aspect)
    if kind == "layered":
        return writers.LayeredExrWriter(out, pixel_aspect=aspect)
    if kind == "premult":
        return writers.PremultipliedWriter(out, fmt=codec, rate=rate, pixel_aspect=aspect)
    return None  # videos: one writer per object, made by _VideoWriters


class _VideoWriters:
    """One alpha video per object, behind the MatteWriter interface."""

    def __init__(self, out: Path, codec: str, source):
        from sam2_core.mattes import writers

        self._new = lambda name: writers.AlphaVideoWriter(
            out / f"{writers.safe_name(name)}.{'mov' if codec == 'prores4444' else 'mkv'}",
            rate=getattr(source, "rate", None) or 24, size=source.size, codec=codec,
            pixel_aspect=getattr(source, "pixel_aspect", 1.0), object_name=name)
        self._writers = {}

    def write(self, frame_number, mattes, plate=None):
        for name, alpha in mattes.items():
            if name not in self._writers:
                self._writers[name] = self._new(name)
            self._writers[name].write(frame_number, {name: alpha})
        return []

    def close(self):
        for w in self._writers.values():
            w.close()


class Progress:
    """A one-line progress bar on stderr: frames done, frames per second, time left."""

    def __init__(self, what: str):
        self.what = what
        self.start = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        elapsed = time.monotonic() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (total - done) / rate if rate > 0 else 0.0
        print(f"\r{self.what}: {done}/{total} frames, {rate:.2f} fps, {left:.0f} s left   ", end="",
              file=sys.stderr, flush=True)
        if done == total:
            print(file=sys.stderr)


def cmd_track(args) -> int:
    import shutil

    from sam2_core import load_model
    from sam2_core.mattes.export import export
    from sam2_core.mattes.writers import prepare_output_dir
    from sam2_core.shot.shot import Shot

    out = args.out
    shot_dir = out / ".sam2roto"
    if args.resume:
        if not (shot_dir / "shot.json").exists():
            raise UserError(f"Nothing to resume in {out}: run without --resume first.")
        shot = Shot.open(shot_dir)
    else:
        if not Path(args.source).exists() and "%" not in str(args.source) and "#" not in str(args.source):
            raise UserError(f"Source not found: {args.source}")
        if not args.prompts:
            raise UserError("Give at least one --point or --box.")
        if shot_dir.exists():
            if not args.force:
                raise UserError(f"{out} already holds a sam2roto run: add --resume to continue it, "
                                "or --force to start again.")
            shutil.rmtree(shot_dir)
        prepare_output_dir(out, force=args.force)
        colour = {"colorspace": args.colorspace} if args.colorspace else {}
        model_info = {"name": args.model, "checkpoint": str(args.checkpoint) if args.checkpoint else None,
                      "dtype": args.dtype}
        shot = Shot.create(shot_dir, Path(args.source).resolve() if Path(args.source).exists() else args.source,
                           colour=colour, model=model_info)
    with shot:
        source = shot.source
        numbers = list(source.frame_numbers)
        m = shot.manifest.model
        checkpoint = m.get("checkpoint") or None
        model = load_model(m.get("name", args.model), checkpoint=checkpoint, device=args.device,
                           dtype=m.get("dtype", args.dtype))
        tracker = shot.tracker(model)
        if not args.resume:
            for name, frames in _objects_from_prompts(args.prompts, numbers[0]).items():
                record = shot.object(name)
                for frame_number, p in frames.items():
                    if frame_number not in numbers:
                        raise UserError(f"Frame {frame_number} (object {name!r}) is not in the source "
                                        f"(frames {numbers[0]}-{numbers[-1]}).")
                    tracker.add_prompt(numbers.index(frame_number), record.id, points=p["points"] or None,
                                       labels=p["labels"] or None, box=p["box"])
                    record.prompts.append(PromptRecord(frame=frame_number, points=p["points"], labels=p["labels"],
                                                       box=p["box"]))
            shot.save()

        objects = {o.id: o.name for o in shot.manifest.objects}
        if not shot.manifest.tracked:
            _track_whole_shot(tracker, Progress("tracking"))
            shot.manifest.tracked = True
            shot.save()

        writer = _make_writer(args.format, out, source) or _VideoWriters(out, FORMATS[args.format][1], source)
        frames = export(tracker, objects, writer, progress=Progress("writing mattes"))
        if args.shapes:
            _write_shapes(tracker, objects, out)
        shot.manifest.exports.append({"folder": str(out.resolve()), "format": args.format, "frames": frames})
        shot.save()
    print(f"{out}: {frames} frames of mattes for {', '.join(objects.values())}")
    return EXIT_OK


def _track_whole_shot(tracker, progress) -> None:
    """Forward from the earliest prompt to the end, then backward to the start. A resumed
    run starts each way at the first frame an earlier (killed) run did not finish."""
    ids = tracker.object_ids
    first = min(tracker.prompted_frames())
    fresh = tracker.has_pending()  # new prompts: everything is to be tracked

    def todo(frames):
        return [i for i in frames if fresh or any(tracker.logits(i, o) is None for o in ids)]

    forward, backward = todo(range(first, tracker.num_frames)), todo(range(first - 1, -1, -1))
    total, count = len(forward) + len(backward), 0
    for frames, direction in ((forward, "forward"), (backward, "backward")):
        if not frames:
            continue
        start = first if fresh else frames[0]
        for _ in tracker.propagate(start=start, direction=direction):
            count += 1
            progress(min(count, total), total)
    if 0 < count < total:
        progress(total, total)


def _write_shapes(tracker, objects, out: Path) -> None:
    from sam2_core.mattes.export import mattes_of
    from sam2_core.mattes.shapes import shapes_from_mattes, write_shapes_json
    from sam2_core.mattes.writers import safe_name

    for obj_id, name in objects.items():
        per_frame = ((number, mattes[name]) for _, number, mattes, _ in mattes_of(tracker, {obj_id: name}))
        write_shapes_json(out / f"{safe_name(name)}.shapes.json", shapes_from_mattes(per_frame), name)


def cmd_segment(args) -> int:
    import cv2
    import numpy as np

    from sam2_core import ImagePredictor, load_model

    if not args.point and not args.neg_point and args.box is None:
        raise SystemExit("sam2roto segment: give at least one --point or a --box")
    bgr = cv2.imread(str(args.image), cv2.IMREAD_COLOR)
    if bgr is None:
        raise UserError(f"Cannot read image {args.image}: missing, or not an image format OpenCV reads.")
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    h, w = rgb.shape[:2]
    for x, y in args.point + args.neg_point:
        if not (0 <= x < w and 0 <= y < h):
            raise UserError(f"Point {x:g},{y:g} is outside {args.image} ({w}x{h} pixels).")

    model = load_model(args.model, checkpoint=args.checkpoint, device=args.device, dtype=args.dtype)
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
    if not cv2.imwrite(str(args.out), masks[best].astype(np.uint8) * 255):
        raise UserError(f"Could not write {args.out}: use a .png, .tif or .jpg name in a writable folder.")
    area = int(masks[best].sum())
    print(f"{args.out}: {area} of {w * h} pixels in the matte (predicted IoU {scores[best]:.2f})")
    return EXIT_OK


def cmd_weights(args) -> int:
    from sam2_core.model import weights

    if args.action == "list":
        folder = weights.weights_dir()
        print(f"weights folder: {folder}  (set SAM2ROTO_WEIGHTS_DIR to move it)")
        for w in weights.OFFICIAL_WEIGHTS.values():
            state = "installed" if (folder / w.filename).exists() else "not installed"
            print(f"  {w.name:24s} {w.size / 2**20:7.0f} MiB  {state}")
        return EXIT_OK
    path = weights.official_checkpoint(args.name, download_missing=(args.action == "fetch"))
    print(f"{args.name}: {path} (SHA-256 verified)")
    return EXIT_OK


class UserError(Exception):
    """Something the user can fix; printed without a traceback."""


def main(argv: list[str] | None = None) -> int:
    from sam2_core.cache.store import CacheError
    from sam2_core.mattes.writers import ExportError
    from sam2_core.model.checkpoint import CheckpointError
    from sam2_core.model.weights import WeightsError
    from sam2_core.shot import ManifestError, ShotInUseError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return {"segment": cmd_segment, "track": cmd_track, "weights": cmd_weights}[args.command](args)
    except (UserError, CheckpointError, WeightsError, ValueError, CacheError, ExportError, ManifestError,
            ShotInUseError, IndexError, KeyError, FileNotFoundError) as e:
        print(f"sam2roto: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\nsam2roto: interrupted; what was done is kept (track: run again with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The `sam2roto` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

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

    w = sub.add_parser("weights", help="list, fetch or verify the official checkpoints")
    wsub = w.add_subparsers(dest="action", required=True)
    wsub.add_parser("list", help="the official models and which are installed")
    for action, text in (("fetch", "download (and verify) a model's checkpoint"),
                         ("verify", "check an installed checkpoint against its official SHA-256")):
        a = wsub.add_parser(action, help=text)
        a.add_argument("name", help="model name, e.g. sam2.1_hiera_tiny")
    return parser


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
    from sam2_core.model.checkpoint import CheckpointError
    from sam2_core.model.weights import WeightsError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return {"segment": cmd_segment, "weights": cmd_weights}[args.command](args)
    except (UserError, CheckpointError, WeightsError, ValueError) as e:
        print(f"sam2roto: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("sam2roto: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

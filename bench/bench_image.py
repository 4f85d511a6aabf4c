"""Image encoder and one predict: sam2roto against the official implementation, same
weights (random, official format), same process, same inputs, float32 and bfloat16.

    .venv/bin/python bench/bench_image.py [--models sam2.1_hiera_tiny sam2.1_hiera_small] [--repeats 3]

Prints seconds per call (median of the repeats, runs of the two implementations
interleaved) and the ratio official / ours (> 1: we are faster)."""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sam2_core import ImagePredictor, load_model  # noqa: E402
from sam2_core.model.transforms import image_to_input  # noqa: E402
from tests.conftest import make_image  # noqa: E402
from tests.official import build_official, official_image_predictor, save_official_checkpoint  # noqa: E402

CLICK = dict(xy=[(900, 500)], label=[1])


def compare(official_fn, ours_fn, repeats: int) -> tuple[float, float]:
    """Median seconds of each, after one warm-up call, runs interleaved."""
    official_fn(), ours_fn()
    t_official, t_ours = [], []
    for _ in range(repeats):
        for fn, out in ((official_fn, t_official), (ours_fn, t_ours)):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return statistics.median(t_official), statistics.median(t_ours)


def official_precision(dtype: str):
    """The official code runs reduced precision under autocast, as its README shows."""
    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=torch.bfloat16)


def bench_dtype(official, ckpt: Path, name: str, dtype: str, repeats: int):
    img = make_image(1080, 1920, seed=1)
    x = image_to_input(img, 1024, "cpu")
    ours = load_model(name, checkpoint=ckpt, device="cpu", dtype=dtype)

    def official_encode():
        with torch.no_grad(), official_precision(dtype):
            official.forward_image(x)

    def ours_encode():
        with torch.no_grad(), ours.precision():
            ours.encode_image(x)

    yield "image encoder", *compare(official_encode, ours_encode, repeats)

    op, ip = official_image_predictor(official), ImagePredictor(ours)
    with official_precision(dtype):
        op.set_image(img)
    ip.set_image(img)

    def official_predict():
        with official_precision(dtype):
            op.predict(point_coords=CLICK["xy"], point_labels=CLICK["label"], multimask_output=True)

    def ours_predict():
        ip.predict(points=CLICK["xy"], labels=CLICK["label"], multimask=True)

    yield "predict (1 click)", *compare(official_predict, ours_predict, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["sam2.1_hiera_tiny", "sam2.1_hiera_small"])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    header = ("model", "dtype", "what", "official s", "ours s", "official/ours")
    print("{:20s} {:9s} {:18s} {:>10s} {:>8s} {:>13s}".format(*header))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            official = build_official(name)
            ckpt = save_official_checkpoint(official, Path(tmp) / f"{name}.pt")
            for dtype in ("float32", "bfloat16"):
                for what, t_official, t_ours in bench_dtype(official, ckpt, name, dtype, args.repeats):
                    print(f"{name:20s} {dtype:9s} {what:18s} {t_official:10.3f} {t_ours:8.3f} "
                          f"{t_official / t_ours:13.2f}", flush=True)


if __name__ == "__main__":
    main()

"""Video tracking: sam2roto's VideoTracker against the official SAM2VideoPredictor
(build_sam2_video_predictor, add_all_frames_to_correct_as_cond), same random weights
in the official format, same frames (1920x1080, made on the fly), same prompts, one
after the other in one run. Prints:

- propagation seconds per frame, 1 and 3 objects: official float32 (its CPU default),
  official under bfloat16 autocast, ours float32 and bfloat16; cold feature cache; timed
  once the memory bank is full (from the 8th frame: the cost of every later frame of a
  long shot); both get their frames decoded and resized before the clock starts (the
  official's loader does it up front);
- click-to-mask latency on a frame whose features are cached: a new object, a correction,
  right after tracking (features in RAM) and in the shot opened again (read from disk);
- re-tracking after a correction in the middle of a shot, against the official
  re-running the shot from its first prompt;
- peak RSS of whole-shot tracking (ours, in a child process) for two shot lengths
  (with --device cuda also the peak GPU memory).

With --device cuda both run on the GPU; the official then runs as a pip-installed sam2
does (no CUDA extension, so no hole filling) and "its default" is float32, with the
bfloat16 autocast its README suggests shown beside it. Both hand every frame's masks to
the host (the official's are copied off the GPU as they come out).

    .venv/bin/python bench/bench_video.py --quick     # a few minutes
    .venv/bin/python bench/bench_video.py             # the figures the issue asks for (~30 min)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # (the official's progress bar; read when torch loads tqdm)
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.synthetic import MovingDiscSource  # noqa: E402
from sam2_core import VideoTracker, load_model  # noqa: E402
from sam2_core.cache.features import normalise, resize_to_input  # noqa: E402
from tests.official import build_official, build_official_video, official_video_state, save_official_checkpoint  # noqa: E402


def prompts(source: MovingDiscSource, n_objects: int) -> list[dict]:
    """One click per object on the first frame: the disc, then the squares."""
    centres = [source.disc_centre(0)] + [source.square_centre(k, 0) for k in range(2)]
    return [dict(obj_id=i + 1, points=[centres[i]], labels=[1]) for i in range(n_objects)]


def official_precision(dtype: str, device: str):
    return contextlib.nullcontext() if dtype == "float32" else torch.autocast(device, dtype=torch.bfloat16)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class Official:
    """The official predictor on a MovingDiscSource (frames preprocessed up front, not timed)."""

    def __init__(self, name: str, ckpt: Path, source: MovingDiscSource, device: str):
        self.predictor = build_official_video(name, ckpt, device=device, cpu_hole_filling=device == "cpu")
        # every frame as float32 model input, on the device, as its frame loader keeps them
        inputs = torch.empty(len(source), 3, 1024, 1024, device=device)
        for i in range(len(source)):
            inputs[i] = normalise(resize_to_input(source.read(i), 1024), device)[0]
        w, h = source.size
        p = self.predictor

        def features(i):  # its own encoder, as at init_state
            with torch.inference_mode():
                out = p.forward_image(inputs[i: i + 1])
            return out["backbone_fpn"], out["vision_pos_enc"]

        self.state = official_video_state(p, inputs, (h, w), features)
        self.state["cached_features"] = {}  # cold: it encodes frames as it goes, as it would

    def prompt(self, frame: int, obj_id: int, points, labels):
        return self.predictor.add_new_points_or_box(self.state, frame, obj_id, points=points, labels=labels)

    def propagate(self, start=None):
        """Yields each frame index as its masks reach the host, as ours are handed out as
        numpy arrays (so on a GPU both wait for each frame before going on)."""
        for frame, _, masks in self.predictor.propagate_in_video(self.state, start_frame_idx=start):
            masks.float().cpu()
            yield frame


def cpu_description() -> str:
    """The CPU's model and its bfloat16 instructions: the CPU figures depend on both."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "CPU"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "CPU")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    bf16 = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
    return f"{model} ({', '.join(bf16) if bf16 else 'no bfloat16 instructions'})"


MEMORY_FULL = 7  # from frame 8 on, a frame attends to all 7 memories of the tiny to large models


def first_timed_frame(n_frames: int) -> int:
    """Frames are timed after this one: once the memory bank is full (shorter shots: the
    last frame only)."""
    return min(MEMORY_FULL, n_frames - 2)


def per_frame(frames, n_frames: int, device: str) -> float:
    """Seconds per frame of a run (an iterator of frames) over the frames after the first timed one."""
    start = first_timed_frame(n_frames)
    stamps = {}
    for k, _ in enumerate(frames):
        sync(device)
        stamps[k] = time.perf_counter()
    return (stamps[n_frames - 1] - stamps[start]) / (n_frames - 1 - start)


def time_propagation(name, ckpt, n_frames, n_objects, who, dtype, device, tmp: Path,
                     image_size: int | None = None, compile_encoder: bool = False) -> float:
    source = MovingDiscSource(n_frames)
    if who == "official":
        off = Official(name, ckpt, source, device)
        with official_precision(dtype, device):
            for p in prompts(source, n_objects):
                off.prompt(0, p["obj_id"], p["points"], p["labels"])
            off.predictor.propagate_in_video_preflight(off.state)
            return per_frame(off.propagate(), n_frames, device)
    model = load_model(name, checkpoint=ckpt, device=device, dtype=dtype, image_size=image_size,
                       compile_encoder=compile_encoder)
    if compile_encoder:  # a one-off, reported apart
        size = model.cfg.image_size
        t = time.perf_counter()
        with torch.inference_mode(), model.precision():
            model.encode_image(torch.zeros(1, 3, size, size, device=device))
        sync(device)
        print(f"    compiling ours' encoder ({dtype}): {time.perf_counter() - t:.1f} s, not timed", flush=True)
    tracker = VideoTracker(model, source, cache_dir=tmp / f"prop-{dtype}-{n_objects}-{image_size}-{compile_encoder}")
    for i in range(n_frames):  # decoded and resized, as the official's are: its features stay cold
        tracker.frames.input_frame(i)
    for p in prompts(source, n_objects):
        tracker.add_prompt(0, **p)
    return per_frame(tracker.propagate(), n_frames, device)


def time_clicks(name, ckpt, dtype, device, tmp: Path) -> dict[str, tuple[float, float]]:
    """Median seconds of 3 clicks (new object, correction) on tracked frames: right after
    tracking, and in the shot opened again by a new tracker (features read from disk)."""
    source = MovingDiscSource(8)
    model = load_model(name, checkpoint=ckpt, device=device, dtype=dtype)
    folders = dict(cache_dir=tmp / f"clicks-{dtype}", session_dir=tmp / f"clicks-{dtype}-session")
    tracker = VideoTracker(model, source, **folders)
    tracker.add_prompt(0, obj_id=1, points=[source.disc_centre(0)])
    list(tracker.propagate())

    def clicks(tracker, frames, first_id):
        new, correction = [], []
        for k, f in enumerate(frames):
            t = time.perf_counter()
            tracker.add_prompt(f, obj_id=first_id + k, points=[source.square_centre(0, f)])
            new.append(time.perf_counter() - t)
            dx, dy = source.disc_centre(f)
            t = time.perf_counter()
            tracker.add_prompt(f, obj_id=1, points=[(dx, dy), (dx + 300, dy)], labels=[1, 0])
            correction.append(time.perf_counter() - t)
        return statistics.median(new), statistics.median(correction)

    times = {"after tracking": clicks(tracker, (5, 6, 7), 2)}
    tracker.close()
    times["shot opened again"] = clicks(VideoTracker(model, source, **folders), (2, 3, 4), 5)
    return times


def time_retrack(name, ckpt, n_frames, dtype, device, tmp: Path) -> float:
    """Ours: seconds to re-track after a correction at the middle of the shot."""
    source = MovingDiscSource(n_frames)
    mid = n_frames // 2
    model = load_model(name, checkpoint=ckpt, device=device, dtype=dtype)
    tracker = VideoTracker(model, source, cache_dir=tmp / f"retrack-{dtype}")
    tracker.add_prompt(0, obj_id=1, points=[source.disc_centre(0)])
    list(tracker.propagate())
    tracker.add_prompt(mid, obj_id=1, points=[source.disc_centre(mid)])
    sync(device)
    t = time.perf_counter()
    list(tracker.retrack(mid))
    sync(device)
    return time.perf_counter() - t


def time_official_rerun(name, ckpt, n_frames, device) -> float:
    """The official way to apply a correction: run the shot again from its first prompt
    (float32). Its first run is not timed, so it is skipped: both prompts are in place."""
    source = MovingDiscSource(n_frames)
    mid = n_frames // 2
    off = Official(name, ckpt, source, device)
    off.prompt(0, 1, [source.disc_centre(0)], [1])
    off.prompt(mid, 1, [source.disc_centre(mid)], [1])
    sync(device)
    t = time.perf_counter()
    list(off.propagate())
    sync(device)
    return time.perf_counter() - t


def peak_rss(name, ckpt, n_frames, who, dtype, device, tmp: Path) -> tuple[float, float]:
    """Peak RSS and peak GPU memory allocated (GiB) of a child process tracking a whole shot of n_frames."""
    if who == "ours":
        run = f"""
from sam2_core import VideoTracker, load_model
tracker = VideoTracker(load_model({name!r}, checkpoint={str(ckpt)!r}, device={device!r}, dtype={dtype!r}), src,
                       cache_dir={str(tmp / f"rss-{n_frames}")!r})
tracker.add_prompt(0, obj_id=1, points=[src.disc_centre(0)])
for _ in tracker.propagate():
    pass
"""
    else:
        run = f"""
from bench.bench_video import Official
off = Official({name!r}, {str(ckpt)!r}, src, {device!r})
off.prompt(0, 1, [src.disc_centre(0)], [1])
list(off.propagate())
"""
    code = f"""
import os
os.environ["TQDM_DISABLE"] = "1"
import sys, torch
sys.path.insert(0, {str(ROOT)!r})
from bench.synthetic import MovingDiscSource
src = MovingDiscSource({n_frames})
{run}
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
gpu = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
print(int(hwm.split()[1]) / 2**20, gpu / 2**30)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rss, gpu = out.stdout.split()[-2:]
    return float(rss), float(gpu)


def main() -> None:
    ap = argparse.ArgumentParser(description="VideoTracker against the official video predictor")
    ap.add_argument("--quick", action="store_true", help="small sizes: a few minutes")
    ap.add_argument("--model", default="sam2.1_hiera_tiny")
    ap.add_argument("--parts", default="propagation,clicks,retrack,rss",
                    help="add official-rss to measure the official predictor's memory beside ours "
                         "(on a CPU it tracks the whole long shot at its speed: an hour)")
    ap.add_argument("--rss-frames", type=int, nargs=2, metavar=("SHORT", "LONG"),
                    help="shot lengths for the memory measurement (default 100 400; quick 20 80)")
    ap.add_argument("--retrack-frames", type=int, help="shot length for the re-track measurement (default 100)")
    ap.add_argument("--prop-frames", type=int,
                    help="shot length for the propagation measurement (default 16: frames 9 to 16 timed)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--objects", type=int, nargs="+", default=[1, 3], help="object counts for the propagation part")
    ap.add_argument("--draft-size", type=int, metavar="PIXELS",
                    help="also time ours at this input size (e.g. 512: coarser mattes, not the official's quality)")
    ap.add_argument("--compile", action="store_true",
                    help="also time ours with the image encoder compiled (inductor, weights frozen)")
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"],
                    help="precisions to run (bfloat16 is slow on CPUs without bfloat16 instructions)")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    dev = args.device
    n_prop, n_retrack, rss_lengths = (4, 12, (20, 80)) if args.quick else (16, 100, (100, 400))
    n_prop = args.prop_frames or n_prop
    n_retrack = args.retrack_frames or n_retrack
    rss_lengths = tuple(args.rss_frames) if args.rss_frames else rss_lengths
    where = torch.cuda.get_device_name() if dev == "cuda" else cpu_description()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {where}; {args.model}, random weights; "
          f"frames 1920x1080{' (quick)' if args.quick else ''}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ckpt = save_official_checkpoint(build_official(args.model), tmp / "model.pt")
        if dev == "cuda":  # CUDA context, kernel selection: paid once, not timed below
            t = time.perf_counter()
            for who in ("official", "ours"):
                for dtype in ("float32", "bfloat16"):
                    time_propagation(args.model, ckpt, 3, 1, who, dtype, dev, tmp / "warm-up")
            print(f"warm-up {time.perf_counter() - t:.1f} s", flush=True)
        if "propagation" in parts:
            first = first_timed_frame(n_prop)
            print(f"\npropagation, s/frame over frames {first + 2} to {n_prop} (cold cache)")
            for n_obj in args.objects:
                row = {}
                for who in ("official", "ours"):
                    for dtype in args.dtypes:
                        row[f"{who} {dtype}"] = time_propagation(args.model, ckpt, n_prop, n_obj, who, dtype, dev,
                                                                 tmp)
                ratios = [f"official {a} / ours {b} = {row[f'official {a}'] / row[f'ours {b}']:.2f}x"
                          for a in args.dtypes for b in args.dtypes]
                print(f"  {n_obj} object(s): " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()) + "; "
                      + ", ".join(ratios), flush=True)
                if args.draft_size:
                    for dtype in args.dtypes:
                        draft = time_propagation(args.model, ckpt, n_prop, n_obj, "ours", dtype, dev, tmp,
                                                 image_size=args.draft_size)
                        row[f"ours {dtype} at {args.draft_size}"] = draft
                        print(f"    ours {dtype} at input {args.draft_size} (a draft): {draft:.3f}; official "
                              f"{args.dtypes[0]} at 1024 / this = {row[f'official {args.dtypes[0]}'] / draft:.2f}x",
                              flush=True)
                if args.compile:
                    for dtype in args.dtypes:
                        fast = time_propagation(args.model, ckpt, n_prop, n_obj, "ours", dtype, dev, tmp,
                                                compile_encoder=True)
                        row[f"ours {dtype} compiled"] = fast
                        print(f"    ours {dtype}, encoder compiled: {fast:.3f}; "
                              + ", ".join(f"official {a} / this = {row[f'official {a}'] / fast:.2f}x"
                                          for a in args.dtypes), flush=True)
                results[f"propagation_{n_obj}"] = row
        if "clicks" in parts:
            print("\nclick-to-mask on a cached frame, s (median of 3)")
            for dtype in args.dtypes:
                for when, (new, corr) in time_clicks(args.model, ckpt, dtype, dev, tmp).items():
                    print(f"  ours {dtype}, {when}: new object {new:.3f}, correction {corr:.3f}", flush=True)
                    results[f"clicks_{dtype}_{when}"] = (new, corr)
        if "retrack" in parts:
            print(f"\nre-track after a correction at frame {n_retrack // 2} of {n_retrack}, s")
            official = time_official_rerun(args.model, ckpt, n_retrack, dev)
            for dtype in args.dtypes:
                ours = time_retrack(args.model, ckpt, n_retrack, dtype, dev, tmp)
                print(f"  ours {dtype} {ours:.1f}, official float32 re-running the shot {official:.1f}: "
                      f"{official / ours:.1f}x", flush=True)
                results[f"retrack_{dtype}"] = (ours, official)
        if "rss" in parts:
            print("\npeak RSS (and GPU memory), whole shot, GiB")
            for who, dtype in [("ours", d) for d in args.dtypes] + [("official", "float32")]:
                if who == "official" and "official-rss" not in parts:
                    continue
                peaks = {n: peak_rss(args.model, ckpt, n, who, dtype, dev, tmp) for n in rss_lengths}
                (a, (ra, ga)), (b, (rb, gb)) = peaks.items()
                print(f"  {who} {dtype} RSS: {a} frames {ra:.2f}, {b} frames {rb:.2f} ({100 * (rb / ra - 1):+.1f}%)")
                if dev == "cuda":
                    print(f"  {who} {dtype} GPU: {a} frames {ga:.2f}, {b} frames {gb:.2f} "
                          f"({100 * (gb / ga - 1):+.1f}%)", flush=True)
                results[f"rss_{who}"] = peaks
    print("\n" + json.dumps(results))


if __name__ == "__main__":
    main()

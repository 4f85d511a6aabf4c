"""`sam2roto track` end to end with a random-weight tiny checkpoint on a generated clip."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from sam2roto.cli import main
from tests.conftest import CPU_TEST_INPUT_SIZE
from tests.sam2_core.tracking.conftest import write_png_clip

NAME = "sam2.1_hiera_tiny"
FIRST = 1001


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_png_clip(tmp_path_factory.mktemp("clip"), 4, FIRST)


def track_args(clip, out, ckpt, *extra):
    return ["track", str(clip), "--object", "ball", "--point", "60,120", "--object", "square",
            "--box", f"205,15,275,85,{FIRST}", "--out", str(out), "--checkpoint", str(ckpt), "--device", "cpu",
            "--image-size", str(CPU_TEST_INPUT_SIZE), *extra]


@pytest.fixture(scope="module")
def tracked(clip, official_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "mattes"
    assert main(track_args(clip, out, official_checkpoint(NAME), "--shapes")) == 0
    return out


def test_one_matte_per_frame_with_the_source_numbers_and_size(tracked):
    for obj in ("ball", "square"):
        files = sorted((tracked / obj).glob("*.png"))
        assert [f.name for f in files] == [f"{obj}.{FIRST + i:04d}.png" for i in range(4)]
        matte = cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED)
        assert matte.shape == (240, 320) and matte.dtype == np.uint16
    assert (tracked / "ball.shapes.json").is_file()


@pytest.mark.parametrize("fmt, pattern", [
    ("exr", "ball/ball.1001.exr"), ("tiff16", "ball/ball.1001.tif"), ("layered-exr", "mattes.1001.exr"),
    ("ffv1", "ball.mkv"), ("premult-exr", "ball_premult/ball_premult.1001.exr"),
])
def test_exporting_again_in_each_format_runs_no_model(tracked, official_checkpoint, monkeypatch, fmt, pattern):
    from sam2_core.model.memory_attention import MemoryAttention
    from sam2_core.model.sam2 import SAM2

    calls = []
    monkeypatch.setattr(SAM2, "encode_image", lambda *a, **k: calls.append("encoder"))
    monkeypatch.setattr(MemoryAttention, "forward", lambda *a, **k: calls.append("memory"))
    out = tracked.parent / f"again-{fmt}"
    import shutil

    shutil.copytree(tracked / ".sam2roto", out / ".sam2roto")
    assert main(["track", "--resume", str(tracked), "--out", str(out), "--format", fmt,
                 "--checkpoint", str(official_checkpoint(NAME)), "--device", "cpu"]) == 0
    assert calls == []
    assert (out / pattern).is_file()
    if fmt == "layered-exr":
        import OpenImageIO as oiio

        spec = oiio.ImageInput.open(str(out / pattern)).spec()
        assert set(spec.channelnames) == {"ball.A", "square.A"}


def test_clean_up_before_any_object_applies_to_every_object_on_resume(tracked, official_checkpoint):
    """As for a first run: "before any --object they apply to all" (README)."""
    import shutil

    from sam2_core.shot import read_manifest

    out = tracked.parent / "again-grown"
    shutil.copytree(tracked / ".sam2roto", out / ".sam2roto")
    assert main(["track", "--resume", str(tracked), "--out", str(out), "--grow", "3", "--checkpoint",
                 str(official_checkpoint(NAME)), "--device", "cpu"]) == 0
    assert {o.name: o.cleanup for o in read_manifest(out / ".sam2roto").objects} == {
        "ball": {"grow": 3.0}, "square": {"grow": 3.0}}
    assert main(["track", "--resume", str(tracked), "--out", str(out), "--grow", "2", "--object", "ball",
                 "--feather", "1", "--checkpoint", str(official_checkpoint(NAME)), "--device", "cpu"]) == 0
    assert {o.name: o.cleanup for o in read_manifest(out / ".sam2roto").objects} == {
        "ball": {"grow": 2.0, "feather": 1.0}, "square": {"grow": 2.0}}


def test_killed_run_resumes_to_the_uninterrupted_result(clip, tracked, official_checkpoint, tmp_path):
    out = tmp_path / "mattes"
    argv = track_args(clip, out, official_checkpoint(NAME))
    code = f"import sys; from sam2roto.cli import main; sys.exit(main({argv!r}))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    results = out / ".sam2roto" / "tracking" / "results"
    deadline = time.monotonic() + 300
    while len(list(results.glob("*.entry"))) < 5 and time.monotonic() < deadline:  # prompts + a tracked frame
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert not list(out.rglob("ball.1004.png"))  # it did not get that far
    assert main(["track", "--resume", str(clip), "--out", str(out), "--checkpoint",
                 str(official_checkpoint(NAME)), "--device", "cpu"]) == 0
    for obj in ("ball", "square"):
        for i in range(4):
            name = f"{obj}/{obj}.{FIRST + i:04d}.png"
            a = cv2.imread(str(tracked / name), cv2.IMREAD_UNCHANGED).astype(int)
            b = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED).astype(int)
            assert np.abs(a - b).max() <= 2, name  # equal up to another process's float rounding
    assert not list(out.rglob("*.partial*"))


def test_resume_says_it_goes_on_with_the_runs_own_footage(tracked, official_checkpoint, clip, tmp_path, capsys):
    import shutil

    out = tmp_path / "mattes"
    shutil.copytree(tracked / ".sam2roto", out / ".sam2roto")
    (tmp_path / "other").mkdir()
    other = write_png_clip(tmp_path / "other", 4, FIRST)
    resume = ["--resume", "--out", str(out), "--checkpoint", str(official_checkpoint(NAME)), "--device", "cpu"]
    assert main(["track", str(clip), *resume]) == 0
    assert "note" not in capsys.readouterr().err
    assert main(["track", str(other), *resume]) == 0
    assert f"--resume goes on with the run's own footage, {clip}" in capsys.readouterr().err


def test_a_run_killed_while_prompting_is_not_resumed_without_its_objects(clip, official_checkpoint, tmp_path,
                                                                        capsys):
    out = tmp_path / "mattes"
    argv = track_args(clip, out, official_checkpoint(NAME))
    code = ("import os, sys; from sam2_core.shot.session import ShotSession; given = ShotSession.add_prompt\n"
            "def dies_on_the_second(self, name, *a, **k):\n"
            "    if name == 'square': os._exit(137)\n"
            "    return given(self, name, *a, **k)\n"
            "ShotSession.add_prompt = dies_on_the_second\n"
            f"from sam2roto.cli import main; sys.exit(main({argv!r}))")
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, env={**os.environ,
                                                                                   "PYTHONPATH": os.getcwd()})
    assert killed.returncode == 137 and (out / ".sam2roto" / "shot.json").exists()
    resume = ["track", "--resume", str(clip), "--out", str(out), "--device", "cpu"]
    assert main(resume) == 1
    assert "stopped before it had given all its prompts: start it again, with --force" in capsys.readouterr().err
    assert not list(out.rglob("*.png"))
    assert main([*argv, "--force"]) == 0 and main(resume) == 0
    assert (out / "square" / f"square.{FIRST}.png").is_file()


def test_force_leaves_a_run_open_elsewhere_alone(tracked, official_checkpoint, clip, tmp_path, capsys):
    import shutil

    from sam2_core.shot import ShotLock

    out = tmp_path / "mattes"
    shutil.copytree(tracked / ".sam2roto", out / ".sam2roto")
    lock = ShotLock(out / ".sam2roto")
    lock.acquire()  # (another process has it open)
    try:
        assert main(track_args(clip, out, official_checkpoint(NAME), "--force")) == 1
    finally:
        lock.release()
    assert "is in use by process" in capsys.readouterr().err
    assert (out / ".sam2roto" / "shot.json").exists()


def test_bad_input(clip, official_checkpoint, tmp_path, capsys):
    ckpt = official_checkpoint(NAME)
    base = ["--checkpoint", str(ckpt), "--device", "cpu"]
    cases = [
        (["track", str(tmp_path / "missing"), "--point", "1,1", "--out", str(tmp_path / "a")], "Source not found"),
        (["track", str(clip), "--point", "400,10", "--out", str(tmp_path / "b")], "outside the plate"),
        (["track", str(clip), "--point", "10,10,2000", "--out", str(tmp_path / "c")], "not in the shot"),
        (["track", str(clip), "--out", str(tmp_path / "d")], "at least one --point"),
        (["track", str(clip), "--neg-point", "10,10", "--out", str(tmp_path / "d")], "at least one --point"),
        (["track", str(clip), "--resume", "--out", str(tmp_path / "e")], "Nothing to resume"),
        (["track", str(clip), "--point", "60,120", "--image-size", "500", "--out", str(tmp_path / "h")],
         "image_size 500 is not a multiple of 32"),
    ]
    for argv, words in cases:
        assert main(argv + base) == 1, argv
        assert words in capsys.readouterr().err
        assert not Path(argv[-1], ".sam2roto").exists()  # nothing half-made blocks the next try
    # the model cannot load (say, the weights are not there yet): the next try is not blocked
    nothing = tmp_path / "g"
    assert main(["track", str(clip), "--point", "60,120", "--out", str(nothing), "--device", "cpu",
                 "--checkpoint", str(tmp_path / "absent.pt")]) == 1
    assert "absent.pt" in capsys.readouterr().err and not (nothing / ".sam2roto").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "precious.exr").write_text("keep me")
    assert main(["track", str(clip), "--point", "60,120", "--out", str(busy)] + base) == 1
    assert "precious.exr" in capsys.readouterr().err and (busy / "precious.exr").read_text() == "keep me"
    with pytest.raises(SystemExit):
        main(["track", str(clip), "--point", "60;120", "--out", str(tmp_path / "f")])


def test_a_manifest_edited_into_nonsense_is_a_clear_error(tracked, official_checkpoint, tmp_path, capsys):
    import shutil

    out = tmp_path / "edited"
    shutil.copytree(tracked / ".sam2roto", out / ".sam2roto")
    (out / ".sam2roto" / "shot.json").write_text('{"schema": "sam2roto.shot", "version": 1, "objects": 7}')
    assert main(["track", "--resume", "x", "--out", str(out), "--checkpoint", str(official_checkpoint(NAME)),
                 "--device", "cpu"]) == 1
    assert "damaged or was edited" in capsys.readouterr().err
    (out / ".sam2roto" / "shot.json").write_text("{ not json")
    assert main(["track", "--resume", "x", "--out", str(out)]) == 1
    assert "not valid JSON" in capsys.readouterr().err


def test_ctrl_c_stops_cleanly_and_resume_finishes(clip, tracked, official_checkpoint, tmp_path):
    out = tmp_path / "mattes"
    argv = track_args(clip, out, official_checkpoint(NAME))
    code = f"import sys; from sam2roto.cli import main; sys.exit(main({argv!r}))"
    # the test runner may hand its children SIGINT ignored or blocked (a shell without job
    # control starts background jobs so), and Python then leaves it so: give the run what a
    # user's terminal gives it
    def as_in_a_terminal():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": os.getcwd()}, preexec_fn=as_in_a_terminal)
    err = b""
    while b"tracking: 50%" not in err:  # Ctrl-C while the third frame of four is being tracked
        chunk = proc.stderr.read1(4096)
        assert chunk, f"the run ended before it was interrupted: {err.decode()}"
        err += chunk
    proc.send_signal(signal.SIGINT)
    _, tail = proc.communicate(timeout=120)
    err = (err + tail).decode()
    assert proc.returncode == 130, err
    assert f"interrupted; what was done is kept (to go on: sam2roto track --resume {clip} --out {out} --device cpu" \
        in err, err
    assert "Traceback" not in err
    assert "writing mattes" not in err
    assert not (out / ".sam2roto" / "lock").exists()  # the shot was closed, not abandoned
    assert main(["track", "--resume", str(clip), "--out", str(out), "--checkpoint", str(official_checkpoint(NAME)),
                 "--device", "cpu"]) == 0
    for i in range(4):
        name = f"ball/ball.{FIRST + i:04d}.png"
        a = cv2.imread(str(tracked / name), cv2.IMREAD_UNCHANGED).astype(int)
        b = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED).astype(int)
        assert np.abs(a - b).max() <= 2, name
    assert not list(out.rglob("*.partial*")) and not list(out.rglob(".tmp-*"))  # nothing half-written left


def test_a_run_whose_mattes_would_go_over_the_plates_is_refused_before_tracking(official_checkpoint, tmp_path,
                                                                                 capsys, monkeypatch):
    from sam2_core.tracking.tracker import VideoTracker

    plate = tmp_path / "shots" / "plate"
    plate.mkdir(parents=True)
    write_png_clip(plate, 4, FIRST)
    frames = {p.name: p.read_bytes() for p in plate.iterdir()}
    monkeypatch.setattr(VideoTracker, "propagate", lambda *a, **k: pytest.fail("tracked before refusing"))
    # object "plate" into shots/: its mattes would be shots/plate/plate.1001.png..., the plates
    assert main(["track", str(plate), "--object", "plate", "--point", "60,120", "--out", str(plate.parent),
                 "--force", "--checkpoint", str(official_checkpoint(NAME)), "--device", "cpu",
                 "--image-size", str(CPU_TEST_INPUT_SIZE)]) == 1
    assert f"footage's folder {plate}" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in plate.iterdir()} == frames
    assert sorted(p.name for p in plate.parent.iterdir()) == ["plate"]  # no half-made run left
    # mattes straight into the plates' folder: refused as that, not as "it holds files, use
    # --force", and before any model loads (this checkpoint does not exist)
    # (an object named as the plates' folder too: its mattes would be shots/plate/...)
    for out, name in ((plate, []), (plate.parent, ["--object", "plate"])):
        for force in ([], ["--force"]):
            assert main(["track", str(plate), *name, "--point", "60,120", "--out", str(out), *force,
                         "--checkpoint", str(tmp_path / "none.pt"), "--device", "cpu"]) == 1
            err = capsys.readouterr().err
            assert f"footage's folder {plate}" in err and "--force" not in err, err
    assert {p.name: p.read_bytes() for p in plate.iterdir()} == frames


def test_exports_that_would_fail_are_refused_before_tracking(clip, official_checkpoint, tmp_path, capsys,
                                                            monkeypatch):
    """Names that become the same file names, FFV1 for non-square pixels: said before the track."""
    from sam2_core.tracking.tracker import VideoTracker
    from tests.sam2_core.media.footage import write_image

    monkeypatch.setattr(VideoTracker, "propagate", lambda *a, **k: pytest.fail("tracked before refusing"))
    base = ["--checkpoint", str(official_checkpoint(NAME)), "--device", "cpu", "--image-size",
            str(CPU_TEST_INPUT_SIZE)]
    assert main(["track", str(clip), "--object", "車", "--point", "60,120", "--object", "人", "--point", "250,50",
                 "--out", str(tmp_path / "names"), *base]) == 1
    assert "objects '車' and '人' both become" in capsys.readouterr().err
    anamorphic = tmp_path / "anamorphic"
    anamorphic.mkdir()
    for n in range(FIRST, FIRST + 2):
        write_image(anamorphic / f"plate.{n}.exr", np.full((60, 80, 3), 0.2, np.float32), "half",
                    attrs={"PixelAspectRatio": 2.0})
    assert main(["track", str(anamorphic / "plate.####.exr"), "--point", "20,20", "--format", "ffv1", "--out",
                 str(tmp_path / "ffv1"), *base]) == 1
    assert "FFV1 video cannot record the footage's pixel aspect 2: export ProRes" in capsys.readouterr().err
    assert not (tmp_path / "names" / ".sam2roto").exists() and not (tmp_path / "ffv1" / ".sam2roto").exists()


def test_a_system_error_is_a_message_naming_the_path_not_a_traceback(clip, official_checkpoint, tmp_path, capsys):
    out = tmp_path / "mattes"
    out.mkdir()
    (out / ".sam2roto").write_text("not a folder")  # (what a read-only or vanished disk gives alike)
    assert main(track_args(clip, out, official_checkpoint(NAME), "--force")) == 1
    err = capsys.readouterr().err
    assert f"sam2roto: error: {out / '.sam2roto' / 'lock'}: Not a directory. Check the path" in err, err



def test_a_full_disk_says_how_to_go_on(clip, official_checkpoint, tmp_path, capsys, monkeypatch):
    """While giving the prompts, the run is started again; while tracking, --resume goes on with it."""
    import errno

    from sam2roto.cli import PROMPTING

    out = tmp_path / "mattes"
    real_replace = os.replace
    full_while = {"prompting": True, "tracking": False}
    seen = []  # whether the run has been giving its prompts

    def full_disk(src, dst):  # (the shot's caches and tracking results; its manifest still saves)
        if (out / ".sam2roto" / PROMPTING).exists():
            seen.append(True)
        stage = "tracking" if seen and not (out / ".sam2roto" / PROMPTING).exists() else "prompting"
        if full_while[stage] and os.path.basename(dst) != "shot.json" and ".sam2roto" in str(dst):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    monkeypatch.setattr("sam2_core.cache.store.os.replace", full_disk)
    assert main(track_args(clip, out, official_checkpoint(NAME))) == 1
    err = capsys.readouterr().err
    assert re.search(r"(the disk is full|No space left on device)\. Free some space", err), err
    assert "sam2roto: error: Cannot write to the " in err, err  # (not "[Errno 28] Cannot ...")
    assert "--resume" not in err
    assert not (out / ".sam2roto").exists()  # (nothing half made is left to resume)
    full_while.update(prompting=False, tracking=True)
    seen.clear()
    assert main(track_args(clip, out, official_checkpoint(NAME))) == 1
    err = capsys.readouterr().err
    assert re.search(r"(the disk is full|No space left on device)\. Free some space", err), err
    assert f"To go on where it stopped: sam2roto track --resume {clip} --out {out} --device cpu\n" in err, err
    assert "Traceback" not in err
    monkeypatch.undo()
    assert main(["track", "--resume", str(clip), "--out", str(out), "--device", "cpu"]) == 0  # (as told)
    assert len(list((out / "ball").glob("ball.*.png"))) == 4 and len(list((out / "square").glob("*.png"))) == 4


def test_a_resume_refuses_an_export_that_would_fail_before_tracking_the_rest(official_checkpoint, tmp_path, capsys,
                                                                            monkeypatch):
    from sam2_core.tracking.tracker import VideoTracker
    from tests.sam2_core.media.footage import write_image

    anamorphic = tmp_path / "anamorphic"
    anamorphic.mkdir()
    for n in range(FIRST, FIRST + 2):
        write_image(anamorphic / f"plate.{n}.exr", np.full((60, 80, 3), 0.2, np.float32), "half",
                    attrs={"PixelAspectRatio": 2.0})
    args = ["track", str(anamorphic / "plate.####.exr"), "--out", str(tmp_path / "out"), "--checkpoint",
            str(official_checkpoint(NAME)), "--device", "cpu", "--image-size", str(CPU_TEST_INPUT_SIZE)]

    def ctrl_c(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(VideoTracker, "propagate", ctrl_c)  # a run stopped as its tracking starts
    assert main([*args, "--point", "20,20"]) == 130
    monkeypatch.setattr(VideoTracker, "propagate", lambda *a, **k: pytest.fail("tracked before refusing"))
    capsys.readouterr()
    assert main([*args, "--resume", "--format", "ffv1"]) == 1
    assert "FFV1 video cannot record the footage's pixel aspect 2" in capsys.readouterr().err


def test_a_run_whose_plates_moved_goes_on_from_their_new_place(official_checkpoint, tmp_path, capsys):
    plates = tmp_path / "plates"
    plates.mkdir()
    write_png_clip(plates, 3, FIRST)
    out = tmp_path / "mattes"
    assert main(track_args(plates, out, official_checkpoint(NAME))) == 0
    first = (out / "ball" / f"ball.{FIRST}.png").read_bytes()
    plates.rename(tmp_path / "plates v2")
    capsys.readouterr()
    shot = out / ".sam2roto"
    assert main(["shot", "info", str(shot)]) == 1
    err = capsys.readouterr().err
    assert f"missing: {plates}" in err and f"sam2roto shot relink {shot} NEW_PLACE" in err, err
    assert main(["track", str(plates), "--out", str(out), "--resume", "--device", "cpu"]) == 1
    assert "give its new place as SOURCE, with --resume" in capsys.readouterr().err
    # given the new place: nothing is tracked again, the mattes are the same
    assert main(["track", str(tmp_path / "plates v2"), "--out", str(out), "--resume", "--device", "cpu"]) == 0
    assert "tracking:" not in capsys.readouterr().err
    assert (out / "ball" / f"ball.{FIRST}.png").read_bytes() == first
    (tmp_path / "plates v2").rename(tmp_path / "plates v3")
    assert main(["shot", "relink", str(shot), str(tmp_path / "plates v3")]) == 0
    assert main(["shot", "info", str(shot)]) == 0
    assert str(tmp_path / "plates v3") in capsys.readouterr().out
    # relink is what it says, also where the old place still holds footage; a new place with none is refused
    shutil.copytree(tmp_path / "plates v3", tmp_path / "plates v4")
    assert main(["shot", "relink", str(shot), str(tmp_path / "plates v4")]) == 0
    assert main(["shot", "relink", str(shot), str(tmp_path / "plates v5" / "plate.%04d.png")]) == 1
    assert f"There is no footage at {tmp_path / 'plates v5' / 'plate.%04d.png'}" in capsys.readouterr().err
    assert main(["shot", "info", str(shot)]) == 0
    assert f"source  {tmp_path / 'plates v4'}" in capsys.readouterr().out


def test_a_sequence_with_a_missing_frame_is_refused_or_held(official_checkpoint, tmp_path, capsys):
    """A frame missing from a sequence (a failed render) stops the run, naming it and the way
    on; with --missing-frames hold the frame before stands in, and every frame number gets
    its matte. The shot keeps the choice."""
    plates = tmp_path / "plates"
    plates.mkdir()
    write_png_clip(plates, 4, FIRST)
    (plates / f"plate.{FIRST + 2}.png").unlink()
    out = tmp_path / "mattes"
    args = ["track", str(plates), "--point", "60,120", "--out", str(out), "--checkpoint",
            str(official_checkpoint(NAME)), "--device", "cpu", "--image-size", str(CPU_TEST_INPUT_SIZE)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"frame {FIRST + 2} is missing" in err and "--missing-frames hold" in err, err
    assert main(args + ["--force", "--missing-frames", "hold"]) == 0
    mattes = sorted(p.name for p in (out / "object").iterdir())
    assert mattes == [f"object.{FIRST + i}.png" for i in range(4)]
    assert cv2.imread(str(out / "object" / f"object.{FIRST + 2}.png"), cv2.IMREAD_UNCHANGED).shape == (240, 320)
    assert main(["shot", "info", str(out / ".sam2roto")]) == 0
    assert f"held    frames {FIRST + 2} are missing" in capsys.readouterr().out

"""`sam2roto shot ...`: the step-by-step workflow on a shot folder, end to end with a
random-weight tiny checkpoint, and its errors."""

import json
import re
import shutil

import cv2
import numpy as np
import pytest

from sam2roto.cli import main
from tests.conftest import CPU_TEST_INPUT_SIZE
from tests.sam2_core.tracking.conftest import write_png_clip

NAME = "sam2.1_hiera_tiny"
FIRST = 1001
N = 4


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_png_clip(tmp_path_factory.mktemp("clip"), N, FIRST)


def test_create_prompt_propagate_correct_export_info(clip, official_checkpoint, tmp_path, capsys):
    shot = tmp_path / "ball.shot"
    dev = ["--device", "cpu"]
    assert main(["shot", "create", str(shot), str(clip), "--model", NAME, "--image-size", str(CPU_TEST_INPUT_SIZE),
                 "--checkpoint", str(official_checkpoint(NAME))] + dev) == 0
    assert "frames 1001-1004" in capsys.readouterr().out

    rough = np.zeros((240, 320), np.uint8)
    cv2.circle(rough, (240, 50), 30, 255, -1)
    cv2.imwrite(str(tmp_path / "square.png"), rough)
    assert main(["shot", "prompt", str(shot), "--object", "ball", "--point", "60,120",
                 "--object", "square", "--mask", f"{tmp_path / 'square.png'},{FIRST}"] + dev) == 0
    told = capsys.readouterr().err  # (each prompt's answer, the mask's too)
    assert f"ball, frame {FIRST}: " in told and f"square, frame {FIRST}: " in told, told
    assert main(["shot", "propagate", str(shot)] + dev) == 0
    assert f"{N} frames tracked" in capsys.readouterr().out

    # a correction on a tracked frame re-tracks from it to the end, and only that object
    assert main(["shot", "prompt", str(shot), "--object", "ball", "--neg-point", f"10,10,{FIRST + 2}"] + dev) == 0
    assert main(["shot", "propagate", str(shot)] + dev) == 0
    assert "2 frames tracked" in capsys.readouterr().out
    assert main(["shot", "propagate", str(shot)] + dev) == 0
    assert "nothing needed tracking" in capsys.readouterr().out

    out = tmp_path / "mattes"
    assert main(["shot", "export", str(shot), "--out", str(out), "--format", "exr", "--shapes",
                 "--shape-tolerance", "0.5", "--object", "ball", "--feather", "1.5"]) == 0
    assert sorted(p.name for p in (out / "ball").iterdir()) == [f"ball.{FIRST + i}.exr" for i in range(N)]
    assert (out / "square.shapes.json").is_file()
    assert "tracking is not done" not in capsys.readouterr().err

    assert main(["shot", "info", str(shot)]) == 0
    info = capsys.readouterr().out
    assert f"object  ball: prompts on frames {FIRST}, {FIRST + 2}; clean-up: feather 1.5" in info
    assert "object  square: prompts on frames 1001" in info and "tracked yes" in info
    assert f"model   {NAME} (input {CPU_TEST_INPUT_SIZE}x{CPU_TEST_INPUT_SIZE})" in info  # kept with the shot
    assert "colour  the file's code values, unchanged (the file type's default)" in info
    manifest = json.loads((shot / "shot.json").read_text())
    assert manifest["exports"][-1]["format"] == "exr"

    # the cache can go to free the disk; prompts and results stay, features come back when needed
    cached = sum(p.stat().st_size for p in (shot / "cache").rglob("*") if p.is_file())
    from sam2_core.shot import ShotLock

    held = ShotLock(shot)
    held.acquire()
    assert main(["shot", "clear-cache", str(shot)]) == 1 and "in use" in capsys.readouterr().err
    assert main(["shot", "info", str(shot)]) == 0  # (it only reads: it takes no lock)
    assert "object  ball" in capsys.readouterr().out
    held.release()
    assert (shot / "cache").is_dir()
    assert main(["shot", "clear-cache", str(shot)]) == 0
    assert f"{cached / (1 << 30):.2f} GiB of cached frames and features deleted" in capsys.readouterr().out
    assert not (shot / "cache").exists()
    assert main(["shot", "propagate", str(shot)] + dev) == 0
    assert "nothing needed tracking" in capsys.readouterr().out

    # exporting into a folder with files is refused unless forced; nothing there is touched
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["shot", "export", str(shot), "--out", str(out)]) == 1
    assert "already holds" in capsys.readouterr().err
    assert before == {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    # an export before tracking is done writes what there is, and says so
    assert main(["shot", "prompt", str(shot), "--object", "ball", "--neg-point", f"300,10,{FIRST + 1}"] + dev) == 0
    assert main(["shot", "export", str(shot), "--out", str(tmp_path / "early")]) == 0
    assert f"run `sam2roto shot propagate {shot}`" in capsys.readouterr().err



def test_objects_prompted_on_different_frames_count_each_frame_once(clip, official_checkpoint, tmp_path, capsys):
    """Each object is tracked from its own first prompt, in runs of its own: a frame both
    runs pass is still one frame tracked (a shot of 4 frames said 8, and showed 8/8), and the
    progress reaches 100% only at the end (counting frames once, it reached it halfway)."""
    shot = tmp_path / "two.shot"
    dev = ["--device", "cpu"]
    assert main(["shot", "create", str(shot), str(clip), "--model", NAME, "--image-size", str(CPU_TEST_INPUT_SIZE),
                 "--checkpoint", str(official_checkpoint(NAME))] + dev) == 0
    assert main(["shot", "prompt", str(shot), "--object", "ball", "--point", f"60,120,{FIRST}",
                 "--object", "corner", "--point", f"240,50,{FIRST + 2}"] + dev) == 0
    capsys.readouterr()
    assert main(["shot", "propagate", str(shot)] + dev) == 0
    told = capsys.readouterr()
    assert f"{N} frames tracked" in told.out
    shown = [int(m) for m in re.findall(r"tracking: (\d+)%", told.err)]
    assert shown == sorted(shown) and shown[-1] == 100 and shown.count(100) == 1 and len(shown) > N


def test_objects_named_on_the_command_line_renamed_and_removed(clip, official_checkpoint, tmp_path, capsys):
    """Prompts without --object are for the shot's one object (or the first of a new shot) and
    must name one when the shot has several; a new object needs more than a negative click; a
    name that would write another object's files is refused when given; objects are renamed
    and removed with their prompts."""
    shot = tmp_path / "s.shot"
    dev = ["--device", "cpu"]
    assert main(["shot", "create", str(shot), str(clip), "--model", NAME, "--image-size", str(CPU_TEST_INPUT_SIZE),
                 "--checkpoint", str(official_checkpoint(NAME))] + dev) == 0

    def objects():
        return {o["name"]: sorted({p["frame"] for p in o["prompts"]})
                for o in json.loads((shot / "shot.json").read_text())["objects"]}

    assert main(["shot", "prompt", str(shot), "--neg-point", "10,10"] + dev) == 1
    assert "Object 'object' is new: give it a --point" in capsys.readouterr().err and objects() == {}
    assert main(["shot", "prompt", str(shot), "--object", "car", "--point", "60,120"] + dev) == 0
    assert main(["shot", "prompt", str(shot), "--neg-point", f"10,10,{FIRST + 1}"] + dev) == 0  # (the car's)
    assert objects() == {"car": [FIRST, FIRST + 1]}
    assert main(["shot", "prompt", str(shot), "--object", "Car", "--point", "240,50"] + dev) == 1
    assert "Cannot name an object 'Car'" in capsys.readouterr().err and objects() == {"car": [FIRST, FIRST + 1]}
    assert main(["shot", "prompt", str(shot), "--object", "sky", "--point", "240,50"] + dev) == 0
    # a box dragged past the plate's corner (its numbers start with a minus sign) keeps the part on the plate
    assert main(["shot", "prompt", str(shot), "--object", "sky", "--box", f"-20,-15.5,100,90,{FIRST + 1}"] + dev) == 0
    sky = json.loads((shot / "shot.json").read_text())["objects"][1]["prompts"][-1]
    assert sky["frame"] == FIRST + 1 and sky["box"] == [0, 0, 100, 90]
    assert main(["shot", "prompt", str(shot), "--point", "30,30"] + dev) == 1
    assert "Which object is --point for? Name it first: --object NAME (the shot's objects: car, sky)" \
        in capsys.readouterr().err
    assert main(["shot", "rename", str(shot), "car", "hero car"]) == 0
    assert main(["shot", "rename", str(shot), "sky", "hero.car"]) == 1
    assert "both become 'hero_car'" in capsys.readouterr().err
    assert main(["shot", "remove", str(shot), "sky"]) == 0
    assert main(["shot", "remove", str(shot), "sky"]) == 1
    assert "No object 'sky' in the shot (objects: hero car)" in capsys.readouterr().err
    assert objects() == {"hero car": [FIRST, FIRST + 1]}
    assert main(["shot", "prompt", str(shot), "--box", "400,10,500,50"] + dev) == 1  # (all of it off the plate)
    assert "the box [400.0, 10.0, 500.0, 50.0] lies outside the plate (320x240" in capsys.readouterr().err
    assert main(["shot", "propagate", str(shot)] + dev) == 0
    assert main(["shot", "export", str(shot), "--out", str(tmp_path / "m")]) == 0
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["hero_car"]


def test_a_shot_whose_own_checkpoint_moved_is_told_its_new_place(clip, official_checkpoint, tmp_path, capsys):
    """A checkpoint file of the shot's own that moved: info and export still work (they load
    no model), the commands that need the model say how to give its new place, and
    relinking it keeps the tracking (the same weights)."""
    mine = tmp_path / "weights" / "mine.pt"
    mine.parent.mkdir()
    shutil.copy(official_checkpoint(NAME), mine)
    shot = tmp_path / "s.shot"
    dev = ["--device", "cpu"]
    assert main(["shot", "create", str(shot), str(clip), "--model", NAME, "--image-size", str(CPU_TEST_INPUT_SIZE),
                 "--checkpoint", str(mine)] + dev) == 0
    assert main(["shot", "prompt", str(shot), "--object", "ball", "--point", "60,120"] + dev) == 0
    assert main(["shot", "propagate", str(shot)] + dev) == 0
    moved = mine.rename(tmp_path / "weights" / "moved.pt")
    capsys.readouterr()
    assert main(["shot", "info", str(shot)]) == 0
    info = capsys.readouterr().out
    assert "object  ball: prompts on frames 1001" in info and "tracked yes" in info
    assert main(["shot", "export", str(shot), "--out", str(tmp_path / "mattes")]) == 0
    assert len(list((tmp_path / "mattes").rglob("ball.*.png"))) == N
    told = capsys.readouterr()
    assert f"{N} frames of mattes for ball" in told.out and "Error" not in told.err, told
    assert main(["shot", "propagate", str(shot)] + dev) == 1
    told = capsys.readouterr().err
    assert f"The shot's checkpoint file {mine} is not there any more" in told, told
    assert f"sam2roto shot relink {shot} --checkpoint FILE" in told
    assert main(["shot", "relink", str(shot), "--checkpoint", str(tmp_path / "nowhere.pt")]) == 1
    assert "No checkpoint file at" in capsys.readouterr().err
    other = tmp_path / "weights" / "other.pt"  # (other bytes: other weights, as far as a relink can tell)
    other.write_bytes(moved.read_bytes() + b"\0")
    assert main(["shot", "relink", str(shot), "--checkpoint", str(other)]) == 1
    told = capsys.readouterr().err
    assert f"{other} holds other weights than the shot was tracked with" in told and "add --force" in told
    assert json.loads((shot / "shot.json").read_text())["model"]["checkpoint"] == str(mine)  # (unchanged)
    assert main(["shot", "relink", str(shot), "--checkpoint", str(other), "--force"]) == 0
    assert json.loads((shot / "shot.json").read_text())["model"]["checkpoint"] == str(other)
    assert main(["shot", "relink", str(shot), "--checkpoint", str(moved), "--force"]) == 0
    assert main(["shot", "propagate", str(shot)] + dev) == 0
    assert "nothing needed tracking" in capsys.readouterr().out  # (the same weights: the tracking kept)

    # a `track` run's shot is given it with --resume
    out = tmp_path / "run"
    assert main(["track", str(clip), "--point", "60,120", "--out", str(out), "--model", NAME, "--image-size",
                 str(CPU_TEST_INPUT_SIZE), "--checkpoint", str(moved)] + dev) == 0
    again = moved.rename(tmp_path / "weights" / "again.pt")
    capsys.readouterr()
    # a finished run is exported again without the model, wherever its checkpoint is
    assert main(["track", "--resume", str(clip), "--out", str(out), "--format", "exr"] + dev) == 0
    assert "tracking:" not in capsys.readouterr().err and len(list(out.rglob("object.*.exr"))) == N
    # one with tracking to do (a frame's result lost) needs the model: it says how to give it
    next(out.rglob("results/res-1-0000002.entry")).unlink()
    assert main(["track", "--resume", str(clip), "--out", str(out)] + dev) == 1
    assert "--resume with --checkpoint FILE" in capsys.readouterr().err
    assert main(["track", "--resume", str(clip), "--out", str(out), "--checkpoint", str(again)] + dev) == 0
    assert "tracking: 100%" in capsys.readouterr().err  # (the same weights: the lost frame tracked again)


def test_shot_command_errors(clip, official_checkpoint, tmp_path, capsys):
    shot = tmp_path / "s"
    ckpt = ["--checkpoint", str(official_checkpoint(NAME)), "--device", "cpu"]
    assert main(["shot", "info", str(tmp_path / "nowhere")]) == 1
    assert "No shot in" in capsys.readouterr().err
    assert main(["shot", "create", str(shot), str(tmp_path / "missing.mov")] + ckpt) == 1
    assert "Source not found" in capsys.readouterr().err
    (tmp_path / "mattes").mkdir()
    (tmp_path / "mattes" / "ball.1001.png").write_bytes(b"mine")
    assert main(["shot", "create", str(tmp_path / "mattes"), str(clip)] + ckpt) == 1
    assert "holds other files" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "mattes").iterdir()) == ["ball.1001.png"]
    assert main(["shot", "create", str(shot), str(clip)] + ckpt) == 0
    assert main(["shot", "create", str(shot), str(clip)] + ckpt) == 1
    assert "already a shot" in capsys.readouterr().err
    assert main(["shot", "propagate", str(shot), "--device", "cpu"]) == 1
    assert "Nothing to track" in capsys.readouterr().err
    assert main(["shot", "prompt", str(shot), "--point", "10,10,7", "--device", "cpu"]) == 1
    assert "Frame 7 is not in the shot" in capsys.readouterr().err
    assert main(["shot", "prompt", str(shot), "--mask", f"{tmp_path / 'none.png'}", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "Cannot read the mask" in err and "no such file" in err and "WARN" not in err, err
    assert json.loads((shot / "shot.json").read_text())["objects"] == []  # the bad prompts left nothing


def test_info_says_how_the_footage_is_coloured():
    from sam2roto.cli import _colour_words

    view = {"mode": "view", "colorspace": "ACEScg", "display": "sRGB - Display", "view": "ACES 2.0 - SDR 100 nits",
            "chosen_by": "default"}
    assert _colour_words(view) == ("ACEScg through the sRGB - Display display's ACES 2.0 - SDR 100 nits view "
                                   "(the file type's default)")
    convert = {"mode": "convert", "colorspace": "ACES2065-1", "target": "sRGB Encoded Rec.709 (sRGB)",
               "chosen_by": "header"}
    assert _colour_words(convert) == "ACES2065-1 converted to sRGB Encoded Rec.709 (sRGB) (the file's header says so)"

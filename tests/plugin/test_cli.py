"""The command line: `sam2roto segment` on the project's sample image, and its errors."""

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from sam2roto.cli import main
from tests.conftest import CPU_TEST_INPUT_SIZE

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "shapes.png"
NAME = "sam2.1_hiera_tiny"


def test_segment_writes_a_matte_the_size_of_the_image(official_checkpoint, tmp_path, capsys):
    out = tmp_path / "sub" / "ball.png"
    rc = main(["segment", str(SAMPLE), "--point", "250,190", "--out", str(out),
               "--checkpoint", str(official_checkpoint(NAME)), "--device", "cpu"])
    assert rc == 0
    matte = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert matte.shape == (360, 640) and matte.dtype == np.uint8
    assert set(np.unique(matte)) <= {0, 255}
    assert str(out) in capsys.readouterr().out


def test_segment_with_box_and_negative_click(official_checkpoint, tmp_path):
    out = tmp_path / "box.png"
    rc = main(["segment", str(SAMPLE), "--box", "330,200,560,320", "--neg-point", "250,190",
               "--out", str(out), "--checkpoint", str(official_checkpoint(NAME)), "--device", "cpu",
               "--dtype", "bfloat16", "--image-size", str(CPU_TEST_INPUT_SIZE)])
    assert rc == 0 and out.is_file()


@pytest.mark.parametrize("args, message", [
    (["--point", "700,10"], "outside"),
    (["--point", "10,10", "--checkpoint", "/nonexistent/file.pt"], "not found"),
])
def test_segment_errors_name_the_problem(args, message, tmp_path, capsys, official_checkpoint):
    argv = ["segment", str(SAMPLE), "--out", str(tmp_path / "m.png"), "--device", "cpu"] + args
    if "--checkpoint" not in args:
        argv += ["--checkpoint", str(official_checkpoint(NAME))]
    assert main(argv) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.png").exists()


def test_unreadable_image(tmp_path, capsys):
    bad = tmp_path / "not-an-image.png"
    bad.write_bytes(b"hello")
    assert main(["segment", str(bad), "--point", "1,1", "--out", str(tmp_path / "m.png")]) == 1
    assert f"({bad}): Not a PNG file. The file is damaged" in capsys.readouterr().err
    assert main(["segment", str(tmp_path / "shape.png"), "--point", "1,1", "--out", str(tmp_path / "m.png")]) == 1
    err = capsys.readouterr().err
    assert err == f"sam2roto: error: Image not found: {tmp_path / 'shape.png'}\n", err  # (no decoder's chatter)


def test_segment_reads_an_exr_frame_of_a_sequence_colour_managed(official_checkpoint, tmp_path, capsys):
    from tests.sam2_core.media.footage import write_image

    for n in (1001, 1002):
        write_image(tmp_path / f"plate.{n}.exr", np.full((48, 64, 3), 0.18 * (n - 1000), np.float32), "half")
    out = tmp_path / "m.png"
    assert main(["segment", str(tmp_path / "plate.1002.exr"), "--point", "10,10", "--out", str(out),
                 "--checkpoint", str(official_checkpoint(NAME)), "--device", "cpu"]) == 0
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == (48, 64)
    assert "WARN" not in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["segment", str(SAMPLE), "--point", "10;20"], "expected X,Y"),
    (["segment", str(SAMPLE), "--point", "nan,20"], "expected X,Y"),
    (["segment", str(SAMPLE), "--box", "nan,0,10,10"], "expected X0,Y0,X1,Y1"),
    (["track", str(SAMPLE), "--point", "10,inf"], "expected X,Y[,FRAME]"),
    (["track", str(SAMPLE), "--point", "10,10", "--grow", "nan"], "expected a number"),
    # clean-up settings are refused as they are read, in the option's words, before a model runs
    (["track", str(SAMPLE), "--point", "10,10", "--feather", "-2"],
     "--feather '-2': expected a number from 0 to 200 (pixels)"),
    (["track", str(SAMPLE), "--point", "10,10", "--temporal", "1.5"], "--temporal '1.5': expected a whole number"),
    (["track", str(SAMPLE), "--point", "10,10", "--fill-holes", "-5"], "--fill-holes '-5': expected a whole number"),
    (["shot", "export", "x", "--out", "y", "--feather", "-1"],
     "--feather '-1': expected a number from 0 to 200 (pixels)"),
    (["shot", "export", "x", "--out", "y", "--grow", "1e6"], "--grow '1e6': expected a number from -100 to 100"),
    (["segment", str(SAMPLE)], "segment: give at least one --point or a --box"),
    (["segment", str(SAMPLE), "--neg-point", "10,10"], "segment: give at least one --point or a --box"),
    (["track", str(SAMPLE), "--point", "10,10", "--shape-tolerance", "0.5"], "add --shapes, or drop it"),
    (["track", str(SAMPLE), "--point", "10,10", "--shapes", "--shape-tolerance", "-1"],
     "--shape-tolerance: expected pixels, 0 or more; got '-1'"),
    (["shot", "export", "x", "--out", "y", "--shapes", "--shape-tolerance", "nan"], "expected pixels, 0 or more"),
])
def test_bad_coordinates_and_numbers_are_usage_errors(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--out", str(tmp_path / "m.png")])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_segment_refuses_an_output_it_cannot_write_before_the_model_runs(tmp_path, capsys, monkeypatch):
    import shutil

    import sam2_core

    monkeypatch.setattr(sam2_core, "load_model", lambda *a, **k: pytest.fail("the model ran"))
    image = Path(shutil.copy(SAMPLE, tmp_path / "still.png"))
    kept = image.read_bytes()
    for out, message in ((image, "is the image itself"), (tmp_path / "matte", "ending .png, .tif or .jpg"),
                         (tmp_path, "ending .png, .tif or .jpg"), (tmp_path / "m.gif", "ending .png, .tif or .jpg")):
        assert main(["segment", str(image), "--point", "10,10", "--out", str(out)]) == 1
        assert message in capsys.readouterr().err
    assert image.read_bytes() == kept


def test_weights_list_and_offline_verify(tmp_path, monkeypatch, capsys, official_checkpoint):
    monkeypatch.setenv("SAM2ROTO_WEIGHTS_DIR", str(tmp_path))
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path) in out and out.count("not installed") == 8
    # verify never downloads: a missing file says where to put it
    assert main(["weights", "verify", NAME]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / f"{NAME}.pt") in err
    # a file that is not the official one is refused and moved aside
    shutil.copy(official_checkpoint(NAME), tmp_path / f"{NAME}.pt")
    assert main(["weights", "verify", NAME]) == 1
    assert "moved aside" in capsys.readouterr().err
    assert (tmp_path / f"{NAME}.pt.bad").exists()


def test_the_quick_start_sample_clip_opens():
    from sam2_core.media import open_source

    clip = open_source(str(SAMPLE.parent / "ball.mp4"))
    assert len(clip) == 24 and clip.size == (640, 360) and clip.frame_numbers[0] == 0
    frame = clip.read(0)
    assert frame.shape == (360, 640, 3)
    assert frame[190, 150, 0] > 150 and frame[190, 150, 2] < 100  # the red ball is there


def test_ctrl_c_while_the_command_loads_is_no_traceback(monkeypatch, capsys):
    # the command's own module loads no PyTorch (seconds): a Ctrl-C then would be a traceback
    code = "import sys, sam2roto.cli; print(sorted(m for m in ('torch', 'sam2_core') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout
    import sam2roto.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)  # (what loading the rest meets)
    assert main(["weights", "list"]) == 130
    assert "interrupted before it began; nothing was done" in capsys.readouterr().err

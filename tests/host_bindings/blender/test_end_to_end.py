"""The extension end to end in real Blender, talking to the real service (`sam2roto serve
--stdio` from this environment) with a random-weight tiny checkpoint on a generated clip.

Random weights make arbitrary masks, so what is checked is the plumbing: every prompt answered
and shown, undo, cancel, progress, a correction re-tracked, a mask layer per object keyed on
every tracked frame, and a compositor render whose alpha is the matte file."""

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import CPU_TEST_INPUT_SIZE
from tests.sam2_core.tracking.conftest import write_png_clip

NAME = "sam2.1_hiera_tiny"
FIRST, FRAMES = 1001, 5


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_png_clip(tmp_path_factory.mktemp("clip"), FRAMES, FIRST) / f"plate.{FIRST}.png"


@pytest.fixture(scope="module")
def found(blender, clip, official_checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"e2e-{blender.series}")
    findings = blender.run("end_to_end.py", folder, clip=str(clip), shot=str(folder / "shot"),
                           export=str(folder / "mattes"), checkpoint=str(official_checkpoint(NAME)), model=NAME,
                           input_size=CPU_TEST_INPUT_SIZE)
    findings["folder"] = str(folder)
    return findings


def test_roto_in_blender_end_to_end(found):
    errors = found["errors"]
    assert "no shot yet" in errors["no_shot"]
    assert "No SAM 2 core environment" in errors["no_core"]
    assert "outside the 320x240 plate" in errors["outside_plate"]
    assert "Frame 50 is outside the shot" in errors["outside_shot"]
    assert "no object 'kite'" in errors["unknown_object"]
    assert "box is empty" in errors["empty_box"]
    assert "already has an object 'ball'" in errors["duplicate_object"]
    assert "covers nothing on frame 1" in errors["empty_mask"]
    assert errors["cancel_idle"] == ""
    assert "Wait for tracking to finish" in errors["add_while_tracking"]

    assert found["shot"]["frames"] == [FIRST, FIRST + FRAMES - 1] and found["shot"]["size"] == [320, 240]
    assert re.search(r"plate\.%04d\.png$", found["shot"]["source"])
    assert found["shot"]["image_size"] == CPU_TEST_INPUT_SIZE  # the add-on's input size reached the core
    assert found["scene_range"] == [1, FRAMES]
    assert [name for name, _ in found["objects"]] == ["ball", "square"]
    assert found["objects"][1][1] == [0.1, 0.9, 0.2]
    assert found["renamed"] == {"blender": ["ball", "box"], "core": ["ball", "box"]}
    assert "already has an object 'ball'" in errors["rename_taken"]

    # answers arrive through the timer; each prompt's mask is shown at once
    assert found["prompt_returned_in"] < 1.0
    first = cv2.imread(found["first_click"]["copy"], cv2.IMREAD_UNCHANGED)
    assert first.shape == (240, 320) and found["first_click_overlay"] == int((first > 0).sum())
    assert found["box"]["mask"] is not None and found["mask_prompt"]["mask"] is not None
    assert found["prompt_images_left"] == []
    # two drawn masks sent before the core read the first: each frame's answer is its own square
    for path, (x0, y0, x1, y1) in zip(found["mask_prompt_answers"], [(50, 85, 135, 160), (150, 100, 230, 180)],
                                      strict=True):
        on = cv2.imread(path, cv2.IMREAD_UNCHANGED) > 127
        assert on[y0:y1 + 1, x0:x1 + 1].sum() > 0.9 * on.sum() > 0, path
    undone = found["after_undo"]["mask"]  # the box taken back: nothing prompts the square there any more
    assert undone is None or cv2.imread(undone, cv2.IMREAD_UNCHANGED).max() == 0

    # the click tool: a refused box is reported and the tool goes on; a click on the sidebar is
    # the sidebar's; a click on the clip prompts the active object; Ctrl-Z takes it back
    tool = found["prompt_tool"]
    assert tool["beside_the_plate"] == ["RUNNING_MODAL", "RUNNING_MODAL"]
    assert any("outside the 320x240 plate" in r for r in tool["beside_the_plate_reports"]), tool
    assert tool["on_the_sidebar"] == ["PASS_THROUGH", "PASS_THROUGH"] and not tool["sent_for_the_sidebar"]
    assert tool["on_the_clip"] == ["RUNNING_MODAL", "RUNNING_MODAL"] and tool["sent_for_the_clip"]
    assert tool["clicked"] and tool["ctrl_z"] == "RUNNING_MODAL" and tool["undo_sent"]
    assert tool["ctrl_shift_z"] == "PASS_THROUGH" and not tool["redo_sent"], tool  # (redo is Blender's)
    assert tool["stabilised"][0] == "CANCELLED" and "Show Stable" in tool["stabilised"][1]
    # overlays are drawn on the frame they show only
    assert found["drawn_on_frame_1"] == ["ball", "square"] and found["drawn_on_frame_2_while_tracking"] == []

    # tracking: returns at once, cancel keeps what was done, progress counts up to the total
    assert found["track_returned_in"] < 1.0 and found["timer_registered"]
    assert found["cancelled_status"].startswith("Tracking cancelled")
    assert found["early_import"]["status"].startswith("Imported")
    assert "tracking is not done" in found["early_import"]["error"]
    assert found["refresh_failed"] == {"tried": 1, "error": "the pipe broke"}
    assert "the pipe broke" in errors["track_not_sent"]  # a track that could not be sent leaves no "Tracking..."
    assert found["track_not_sent"] == {"status": "", "progress": None, "tracking": False}
    assert found["refresh_after_failure_sent"] and all(found["refreshed_masks"].values())
    assert found["whole_status"].startswith("Tracked")
    done = [p[0] for p in found["whole_progress"]]
    assert done == sorted(done) and done[-1] == found["whole_progress"][-1][1]
    for done, total, frame, label in found["whole_progress"]:  # the panel counts the scene's frames
        where = f" (frame {frame - FIRST + 1})" if done else ""  # (none before the first frame is done)
        assert label == f"Tracking: {done}/{total}{where} · Esc cancels", label
    assert found["forward_status"].startswith("Tracked")
    assert all(found["frame_change_masks"].values())

    # the Mask: a layer per object, each frame of the shot keyed (a shape, or hidden where gone)
    layers = found["mask"]["layers"]
    assert sorted(layers) == ["ball", "square"]
    for name, keys in layers.items():
        # every frame has a shape key or is keyed hidden (the random model may lose an object)
        assert keys["covered"] == list(range(1, FRAMES + 1)), (name, keys)
        assert keys["splines"] or keys["hidden"] == [1], (name, keys)
    assert found["images"] == ["plate.1001.png ball matte", "plate.1001.png square matte"]
    assert found["last_error"] == "", found["last_error"]
    assert found["undo"] == {"before": ["ball", "square"], "after": ["ball", "square"], "handlers": [True, True]}
    # a .blend never saved: the shot beside the footage, the default mattes folder inside it
    unsaved = found["unsaved"]
    assert Path(unsaved["shot"]).parent == Path(unsaved["footage"]) / "sam2roto"
    assert unsaved["status"].startswith("Imported") and "refused" not in unsaved["error"], unsaved
    assert unsaved["export_folder"] == ""  # a new shot does not inherit the scene's earlier mattes folder
    assert (Path(unsaved["shot"]) / "mattes" / "ball" / f"ball.{FIRST}.png").is_file()
    # Create Shot for that clip in another scene opens the shot there, objects and all
    assert unsaved["created_again"] == ["FINISHED"] and unsaved["objects_again"] == [["ball", [0.2, 0.4, 0.6]]]
    assert unsaved["prompted_again"] == [FIRST]
    assert "holds the shot of other footage" in unsaved["other_footage"]
    # two scenes, a shot each, both with a "ball": each scene shows its own shot's masks only
    assert unsaved["drawn_in_the_other_scene"] == ["ball"]
    assert unsaved["roto_scene"] == {"asked": False, "drawn": [], "error": ""}


def test_importing_again_drops_the_layers_of_removed_or_renamed_objects(found):
    again = found["imported_again"]
    assert again["layers"] == ["box", "drawn by hand"], again
    assert again["animated"] == ['layers["box"'], again  # no curves left of "ball" or "square"


def test_a_saved_blend_keeps_its_shot_folders_relative_and_save_as_remaps_them(found):
    saved, link = found["saved"], Path(found["saved"]["link"])
    # the first save: a shot made before it is kept relative too, pointing where it did
    assert saved["first_save"]["folder"].startswith("//../") and saved["first_save"]["same"], saved
    new = saved["new"]  # (relative through the link the .blend was saved by, not the core's real path)
    assert new["folder"].startswith("//sam2roto/") and Path(new["absolute"][0]).parent == link / "sam2roto", saved
    assert new["absolute"][1] == str(link / "mattes")
    # saved into v2/: the same folders, from there
    assert saved["save_as"]["folder"].startswith("//../sam2roto/"), saved
    assert saved["save_as"]["export_folder"].rstrip("/") == "//../mattes"
    assert saved["save_as"]["absolute"] == new["absolute"]
    # a copy saved beside the first .blend, and a save that failed: the open one (in v2/) keeps
    # its paths; the copy has its own
    assert saved["save_copy"] == saved["save_as"]
    assert "Cannot open file" in saved["failed_save"] and saved["after_failed_save"] == saved["save_as"]
    assert saved["in_the_copy"]["folder"].rstrip("/") == new["folder"].rstrip("/"), saved
    assert saved["in_the_copy"]["export_folder"].rstrip("/") == "//mattes"
    # undo to before the Save As: the paths made for the first folder, rebased to v2/
    assert saved["undone"]["folder"].startswith("//../sam2roto/") and saved["undone"]["absolute"] == new["absolute"]
    assert saved["set_after_save_as"] == str(link / "v2" / "mattes")


def test_a_first_use_downloads_the_weights_showing_how_far_and_can_be_cancelled(found):
    first = found["first_use"]
    assert first["opening"] and re.fullmatch(r"Downloading sam2\.1_hiera_tiny\.pt: \d+% \(\d+ of 156 MB\)",
                                             first["status"]), first
    assert "Wait for the shot to open" in first["refused"]
    assert first["cancelled"] and "sam2.1_hiera_tiny.pt" in first["error"] and not first["opening_after"], first
    assert first["status_after"] == "Shot not opened: download cancelled"
    assert not first["shot_made"] and not first["scene_has_shot"]
    assert first["part_bytes"] > 0  # kept: the next Create Shot goes on from there
    # a shot whose model this computer lacks: the action that opens it says why it waits, and
    # the shot opens behind, downloading, as Create Shot does
    opened = first["open"]
    assert "weights are downloading" in opened["refused"] and opened["opening"], opened
    assert opened["status"].startswith("Downloading sam2.1_hiera_tiny.pt: ")
    assert not opened["opening_after"] and opened["status_after"] == "Shot not opened: download cancelled"
    assert "Could not download" in first["broken_off"]["error"] and not first["broken_off"]["opening"], first
    assert "The SAM 2 core stopped" in first["core_stopped"]["error"], first["core_stopped"]
    assert not first["core_stopped"]["opening"] and not first["core_stopped"]["client"]


def test_the_compositor_applies_the_matte(found):
    render = cv2.imread(found["render"], cv2.IMREAD_UNCHANGED)
    assert render.shape == (240, 320, 4) and render.dtype == np.uint16
    name = found["composited_object"]
    matte = cv2.imread(str(Path(found["folder"]) / "mattes" / name / f"{name}.{FIRST + 1}.png"), cv2.IMREAD_UNCHANGED)
    assert matte.shape == (240, 320)
    alpha = render[:, :, 3].astype(np.float64) / 65535
    expected = matte.astype(np.float64) / np.iinfo(matte.dtype).max
    assert np.abs(alpha - expected).max() <= 1 / 255

"""What the artist did to the scene survives the add-on (in_blender/artist_edits.py, real
Blender and the real service, a random-weight tiny checkpoint)."""

import os

import pytest

from tests.conftest import CPU_TEST_INPUT_SIZE
from tests.sam2_core.tracking.conftest import write_png_clip

NAME = "sam2.1_hiera_tiny"
FIRST, FRAMES = 1001, 4


@pytest.fixture(scope="module")
def found(blender, official_checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"edits-{blender.series}")
    (folder / "project" / "plates").mkdir(parents=True)
    write_png_clip(folder / "project" / "plates", FRAMES, FIRST)
    return blender.run("artist_edits.py", folder, project=str(folder / "project"),
                       checkpoint=str(official_checkpoint(NAME)), model=NAME, input_size=CPU_TEST_INPUT_SIZE)


def test_the_mask_keeps_a_layer_the_artist_drew_and_follows_the_clips_frame_offset(found):
    # footage frames 1001-1004 show on scene frames 999-1002 (the clip's frame offset is 2)
    assert found["scene_range"] == [999, 1002]
    mask = found["mask"]
    assert mask["same"] and mask["layers"] == ["ball", "ball (drawn)"] and mask["drawn_points"] == [4], mask
    assert mask["range"] == [999, 1002] and mask["keyed"][0] == 999 and mask["keyed"][-1] <= 1002, mask
    assert "your layer 'ball' is now 'ball (drawn)'" in found["first_import"]["status"], found["first_import"]


def test_the_artists_compositor_output_and_render_scale_stay(found):
    comp = found["compositor"]
    assert comp["output_fed_by"] == ["artist blur"] and comp["viewer_fed_by"] == ["sam2roto ball"], comp
    assert comp["resolution"] == [320, 240, 50], comp  # (the mattes' size; the artist's scale)
    status = found["first_import"]["status"]
    assert "the matte is on the Viewer" in status and "render resolution set to the clip's 320x240" in status


def test_a_renamed_mask_is_updated_in_place(found):
    renamed = found["renamed_mask"]
    assert renamed["masks"] == ["hero roto"] and renamed["layers"] == ["ball", "ball (drawn)"], renamed
    assert renamed["error"] == "", renamed


def test_undoing_a_later_edit_keeps_the_import(found):
    undone = found["undone"]
    assert undone["mask"] == "hero roto" and undone["masks"] == ["hero roto"], undone
    assert undone["frame_end"] == 1002 and "sam2roto ball" in undone["matte_nodes"], undone


def test_an_import_that_cannot_finish_says_why_and_does_not_hang(found):
    assert "Wait for Import Results to finish before renaming an object" in found["rename_while_importing"]
    renamed = found["scene_renamed"]
    assert renamed["status"] == "Import failed" and "is gone" in renamed["error"], renamed
    failed = found["export_failed"]
    assert failed["status"] == "Import failed" and "a file" in failed["error"], failed


def test_a_moved_project_opens_its_shot_on_the_plates_beside_it(found):
    moved = found["moved"]
    assert moved["error"] == "" and moved["answered"], moved
    assert " moved/plates/plate.%04d.png" in moved["source"], moved
    # saved where it now is (in the Blender session that had it open before it moved): the
    # shot's folder is kept relative to the moved .blend, not rebased to where it was
    assert os.path.normpath(moved["folder_saved"]).endswith(" moved/sam2roto/plate_1001_png"), moved
    # the compositor's matte images are kept relative to the .blend: they come along
    assert found["matte_images"] and all(path.startswith("//") for path in found["matte_images"]), found
    assert moved["mattes"] and all(" moved" in path and os.path.isfile(path) for path in moved["mattes"]), moved


def test_a_blend_opened_again_opens_its_shot_in_the_background(found):
    opened = found["with_blend"]
    assert opened["handler"] and not opened["started_in_background_mode"], opened  # (render farms: no core)
    # the core starts and the shot opens behind the file: nothing waits for the model
    assert opened["asked"] and opened["opening"] and not opened["open_at_once"], opened
    assert opened["seconds"] < 5, opened
    # (the first click right after it waited for it and was answered: test_a_moved_project_opens...)
    assert opened["asked_when_off"] is False and not opened["started_when_off"], opened
    assert opened["error"] == "" and opened["status"] == "Opened the shot of 'plate.1001.png' (1 objects)", opened
    frame, (shown_frame, mask) = opened["current"][0], opened["current"][1]
    assert shown_frame == frame and mask and opened["overlay_image"], opened  # (the masks show, unasked)
    # a core of another version is told of and stopped when its greeting comes
    other = opened["other_version"]
    assert "speaks protocol 0, this add-on speaks 1" in other["error"], other
    assert not other["running"] and not other["shot"], other


def test_an_import_answered_after_another_blend_was_opened_is_not_applied_there(found):
    other = found["other_file"]
    assert other["kept"] and other["status"] == "Import failed", other
    assert not other["shot_locked"] and other["core_running"], other  # (the shot let go as the file closed)
    assert "another .blend was opened meanwhile: nothing was imported there" in other["error"], other


def test_a_core_that_stops_with_requests_waiting_is_reported_once(found):
    assert found["stopped"] == {"told": 1, "tracking": False}, found["stopped"]


def test_a_shot_whose_clip_was_deleted_says_so(found):
    assert "lost its clip (deleted)" in found["clip_deleted"] and "Create Shot" in found["clip_deleted"]


def test_a_sequence_with_a_missing_frame_makes_a_shot_and_says_which_frame_is_held(found):
    gap = found["gap"]
    assert gap["error"] == "" and f"frames {FIRST}-{FIRST + FRAMES - 1}" in gap["status"], gap
    assert f"frames {FIRST + 1} are missing from the sequence: the frame before stands in" in gap["status"], gap


def test_a_clip_opened_from_the_middle_of_its_sequence_says_how_to_reach_the_frames_before(found):
    middle = found["middle"]
    # plate.1003 opened, the clip starting on scene frame 1: 1001 falls on scene frame -1
    assert middle["error"] == "" and middle["clip_start"] == 1, middle
    assert middle["scene_range"] == [0, 2], middle
    assert (f"frame {FIRST} falls before scene frame 0, where Blender cannot show them (the clip was opened "
            f"from plate.{FIRST + 2}.png): to reach them, set the clip's Start Frame to 3") in middle["status"], middle

"""ShotSession: objects, accumulating prompts and undo, tracking plans that re-track only
what changed, resuming, export, and bad requests that change nothing."""

import json
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from sam2_core.mattes.cleanup import Cleanup
from sam2_core.mattes.writers import ExportError
from sam2_core.shot.manifest import ObjectRecord
from sam2_core.shot.session import SessionError, ShotResults, ShotSession
from tests.conftest import CPU_TEST_INPUT_SIZE
from tests.sam2_core.tracking.conftest import write_png_clip

NAME = "sam2.1_hiera_tiny"
FIRST = 1001
N = 6


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_png_clip(tmp_path_factory.mktemp("clip"), N, FIRST)


@pytest.fixture
def new_session(clip, official_checkpoint, tmp_path):
    opened = []

    def make(folder=None):
        session = ShotSession.create(folder or tmp_path / "shot", clip, model_name=NAME,
                                     checkpoint=official_checkpoint(NAME), device="cpu",
                                     image_size=CPU_TEST_INPUT_SIZE)
        opened.append(session)
        return session

    yield make
    for s in opened:
        s.close()


def same(a, b):
    assert a is not None and b is not None
    assert np.abs(a - b).max() < 1e-3


def manifest(session):
    return json.loads((session.shot.folder / "shot.json").read_text())


def test_clicks_accumulate_and_undo_gives_back_each_earlier_answer(new_session):
    s = new_session()
    one = s.add_prompt("ball", FIRST, points=[(60, 120)])
    two = s.add_prompt("ball", FIRST, points=[(20, 20)], labels=[0])
    three = s.add_prompt("ball", FIRST, box=(20, 80, 100, 160))
    assert [len(p["points"]) for p in manifest(s)["objects"][0]["prompts"]] == [1, 1, 0]
    assert not np.array_equal(two > 0, three > 0)
    record, frame, after = s.undo()
    assert (record.name, frame) == ("ball", FIRST)
    same(after, two)
    same(s.logits("ball", FIRST), two)
    _, _, after = s.undo()
    same(after, one)
    _, _, after = s.undo()
    assert after is None and s.logits("ball", FIRST) is None
    assert manifest(s)["objects"][0]["prompts"] == [] and not manifest(s)["tracked"]  # nothing is tracked
    with pytest.raises(SessionError, match="Nothing to undo"):
        s.undo()


def test_an_undo_that_fails_can_be_tried_again(new_session, monkeypatch):
    s = new_session()
    one = s.add_prompt("ball", FIRST, points=[(60, 120)])
    two = s.add_prompt("ball", FIRST, points=[(20, 20)], labels=[0])
    s.add_prompt("ball", FIRST, box=(20, 80, 100, 160))
    give = s._give

    def unreadable_frame(*args):
        raise OSError(f"Cannot read frame {FIRST}: the disk went away")

    monkeypatch.setattr(s, "_give", unreadable_frame)
    with pytest.raises(OSError, match="the disk went away"):
        s.undo()
    assert [len(p["points"]) for p in manifest(s)["objects"][0]["prompts"]] == [1, 1, 0]  # the shot as it was
    monkeypatch.setattr(s, "_give", give)
    _, frame, after = s.undo()  # the same undo, not the one before it
    assert frame == FIRST
    same(after, two)
    same(s.undo()[2], one)

    # a click that was tracked from: the frame's earlier clicks keep their "tracked" marks
    s.add_prompt("ball", FIRST, points=[(20, 20)], labels=[0])
    list(s.track())
    monkeypatch.setattr(s, "_give", unreadable_frame)
    with pytest.raises(OSError):
        s.undo()
    assert [p["tracked"] for p in manifest(s)["objects"][0]["prompts"]] == [True, True]
    assert [p.tracked for p in s.object("ball").prompts] == [True, True]
    monkeypatch.setattr(s, "_give", give)
    assert s.undo()[1] == FIRST and [len(p["points"]) for p in manifest(s)["objects"][0]["prompts"]] == [1]


def test_a_correction_retracks_only_up_to_the_next_prompted_frame(new_session):
    s = new_session()
    s.add_prompt("ball", FIRST, points=[(60, 120)])
    s.add_prompt("ball", FIRST + 4, points=[(60 + 18 * 4, 120)])
    first_run = dict(s.track())
    assert sorted(first_run) == [FIRST + i for i in range(N)]
    assert s.shot.manifest.tracked
    assert list(s.track()) == []  # nothing changed: nothing to do

    s.add_prompt("ball", FIRST + 2, points=[(20, 20)], labels=[0])  # a correction on a tracked frame
    assert not s.shot.manifest.tracked
    rerun = [frame for frame, _ in s.track()]
    assert rerun == [FIRST + 2, FIRST + 3, FIRST + 4]  # forward, as it was tracked, to the next prompt
    same(s.logits("ball", FIRST + 1), first_run[FIRST + 1]["ball"])  # the other side kept
    same(s.logits("ball", FIRST + 5), first_run[FIRST + 5]["ball"])

    s.add_prompt("square", FIRST + 3, box=(205, 15 + 24, 275, 85 + 24))  # a new object mid-shot
    frames = list(s.track())
    assert [f for f, _ in frames] == [FIRST + i for i in (3, 4, 5, 2, 1, 0)]
    assert all(set(out) == {"square"} for _, out in frames)


def test_corrections_on_frames_tracked_backward_retrack_each_frame_once(new_session):
    s = new_session()
    s.add_prompt("ball", FIRST + 5, points=[(150, 120)])
    list(s.track())  # forward (frame 5 alone), then backward to 0
    s.add_prompt("ball", FIRST + 1, points=[(20, 20)], labels=[0])
    s.add_prompt("ball", FIRST + 3, points=[(20, 20)], labels=[0])
    assert [f for f, _ in s.track()] == [FIRST + i for i in (3, 2, 1, 0)]
    assert s.shot.manifest.tracked


def test_refining_the_first_prompt_after_tracking_tracks_both_ways_again(new_session):
    s = new_session()
    s.add_prompt("ball", FIRST + 2, points=[(96, 120)])
    list(s.track())
    s.add_prompt("ball", FIRST + 2, points=[(20, 20)], labels=[0])
    assert [f for f, _ in s.track()] == [FIRST + i for i in (2, 3, 4, 5, 1, 0)]
    assert s.shot.manifest.tracked


def test_undoing_a_correction_gives_the_frame_back_as_tracked(new_session):
    s = new_session()
    s.add_prompt("ball", FIRST, points=[(60, 120)])
    tracked = dict(s.track())[FIRST + 3]["ball"]
    first = s.add_prompt("ball", FIRST + 3, points=[(20, 20)], labels=[0])  # a correction
    s.add_prompt("ball", FIRST + 3, points=[(200, 200)], labels=[0])
    _, _, after = s.undo()
    assert np.array_equal(after, first)  # the first click again, as it was given on the tracked frame
    _, _, after = s.undo()
    assert np.array_equal(after, tracked) and np.array_equal(s.logits("ball", FIRST + 3), tracked)
    assert list(s.track()) == [] and s.shot.manifest.tracked  # nothing left to track again


def test_undoing_clicks_on_a_frame_tracked_from_goes_back_to_what_was_tracked(new_session):
    s = new_session()
    s.add_prompt("ball", FIRST, points=[(60, 120)])
    list(s.track())
    first = s.add_prompt("ball", FIRST + 2, points=[(20, 20)], labels=[0])  # a correction
    list(s.track())
    second = s.add_prompt("ball", FIRST + 2, points=[(200, 200)], labels=[0])
    s.add_prompt("ball", FIRST + 2, points=[(300, 10)], labels=[0])
    _, _, after = s.undo()
    same(after, second)  # the second click again, as it was given
    _, _, after = s.undo()
    assert np.array_equal(after, first) and np.array_equal(s.logits("ball", FIRST + 2), first)
    assert list(s.track()) == [] and s.shot.manifest.tracked  # as it was tracked: nothing to do


def test_undoing_an_objects_last_prompt_takes_its_masks_away(new_session):
    s = new_session()
    s.add_prompt("ball", FIRST, points=[(60, 120)])
    list(s.track())
    s.undo()
    assert all(s.logits("ball", FIRST + i) is None for i in range(N))
    # a first click again, on another frame: a new start, tracked through the whole shot
    s.add_prompt("ball", FIRST + 2, points=[(96, 120)])
    assert [f for f, _ in s.track()] == [FIRST + i for i in (2, 3, 4, 5, 1, 0)]


def test_a_stopped_retrack_resumes_only_up_to_the_next_prompted_frame(new_session):
    s = new_session()
    s.add_prompt("ball", FIRST, points=[(60, 120)])
    s.add_prompt("ball", FIRST + 4, points=[(60 + 18 * 4, 120)])
    list(s.track())
    s.add_prompt("ball", FIRST + 1, points=[(20, 20)], labels=[0])
    cancel = threading.Event()
    for _ in s.track(cancel=cancel):
        cancel.set()  # after the corrected frame
    assert [f for f, _ in s.track()] == [FIRST + 2, FIRST + 3, FIRST + 4]
    assert s.shot.manifest.tracked


def test_new_objects_are_tracked_from_their_own_first_frames(new_session):
    s = new_session()
    s.add_prompt("square", FIRST + 3, box=(205, 15 + 24, 275, 85 + 24))
    s.add_prompt("ball", FIRST, points=[(60, 120)])
    runs = [(f, sorted(out)) for f, out in s.track()]
    assert runs == [(FIRST + i, ["ball"]) for i in range(N)] + \
        [(FIRST + i, ["square"]) for i in (3, 4, 5, 2, 1, 0)]


def test_a_direction_without_a_start_runs_each_object_from_its_own_first_prompt(new_session):
    """Before its first prompt an object is not yet known: it is not tracked there going forward,
    and the whole-shot track still takes it backward from its prompt."""
    s = new_session()
    s.add_prompt("ball", FIRST, points=[(60, 120)])
    s.add_prompt("square", FIRST + 3, box=(205, 15 + 24, 275, 85 + 24))
    runs = [(f, sorted(out)) for f, out in s.track(direction="forward", objects=["square"])]
    assert runs == [(FIRST + i, ["square"]) for i in (3, 4, 5)]
    runs = [(f, sorted(out)) for f, out in s.track()]
    assert runs == [(FIRST + i, ["ball"]) for i in range(N)] + [(FIRST + i, ["square"]) for i in (2, 1, 0)]
    assert s.shot.manifest.tracked
    # a range that ends before an object's first prompt leaves that object out
    runs = [(f, sorted(out)) for f, out in s.track(direction="forward", end=FIRST + 1)]
    assert runs == [(FIRST, ["ball"]), (FIRST + 1, ["ball"])]
    with pytest.raises(SessionError, match=f"backward from frame {FIRST} never reaches frame {FIRST + 5}"):
        list(s.track(direction="backward", end=FIRST + 5))


def test_a_cancel_that_comes_after_the_last_frame_leaves_the_shot_tracked(new_session):
    s = new_session()
    s.add_prompt("ball", FIRST, points=[(60, 120)])
    cancel = threading.Event()
    frames = []
    for frame, _ in s.track(cancel=cancel):
        frames.append(frame)
        if len(frames) == N:
            cancel.set()  # (the host's Cancel, as the last frame arrives)
    assert len(frames) == N and s.shot.manifest.tracked


def test_tracking_some_objects_leaves_the_shot_marked_untracked(new_session):
    s = new_session()
    s.add_prompt("ball", FIRST, points=[(60, 120)])
    s.add_prompt("square", FIRST, box=(205, 15, 275, 85))
    list(s.track(objects=["ball"]))
    assert not s.shot.manifest.tracked and not manifest(s)["tracked"]
    list(s.track())
    assert s.shot.manifest.tracked


def test_a_track_changes_only_what_it_was_asked_to(new_session):
    s = new_session()
    s.add_prompt("ball", FIRST, points=[(60, 120)])
    s.add_prompt("square", FIRST, box=(205, 15, 275, 85))
    tracked = dict(s.track())
    s.add_prompt("square", FIRST + 2, box=(205, 31, 275, 101))  # a correction
    cancel = threading.Event()
    cancel.set()
    assert list(s.track(cancel=cancel)) == []  # cancelled before it started: nothing changes
    assert list(s.track(objects=["ball"])) == []  # nothing to do for the ball
    assert not s.shot.manifest.tracked  # the square's correction still waits
    assert s.logits("square", FIRST + 4) is not None  # and its masks beyond it are still there
    _, _, after = s.undo()
    assert np.array_equal(after, tracked[FIRST + 2]["square"])
    # a range with the default direction ends where it was told to
    assert [f for f, _ in s.track(start=FIRST + 3, end=FIRST + 4)] == [FIRST + 3, FIRST + 4]
    # two corrections of one object: one run goes through both, each frame once
    s.add_prompt("ball", FIRST + 1, points=[(20, 20)], labels=[0])
    s.add_prompt("ball", FIRST + 3, points=[(20, 200)], labels=[0])
    assert [(f, sorted(out)) for f, out in s.track()] == [(FIRST + i, ["ball"]) for i in range(1, N)]
    assert s.shot.manifest.tracked


def test_a_prompt_whose_answer_was_lost_in_a_power_cut_is_given_again(new_session, tmp_path):
    """Clicks are flushed to the disk, their answers are not: after a power cut the tracker
    can have the clicks without the answer. Reopened, the shot gives them again."""
    s = new_session()
    s.add_prompt("ball", FIRST + 1, points=[(78, 120)])
    two = s.add_prompt("ball", FIRST + 1, points=[(20, 20)], labels=[0])
    s.close()
    for lost in (tmp_path / "shot").rglob("results/pend-*.entry"):
        lost.unlink()
    again = ShotSession.open(tmp_path / "shot", device="cpu")
    try:
        same(again.logits("ball", FIRST + 1), two)  # both clicks given again, one by one
        assert len(list(again.track())) == N
    finally:
        again.close()


def test_a_click_after_tracking_whose_answer_was_lost_is_given_again(new_session, tmp_path):
    s = new_session()
    s.add_prompt("ball", FIRST + 1, points=[(78, 120)])
    list(s.track())
    two = s.add_prompt("ball", FIRST + 1, points=[(20, 20)], labels=[0])  # on the frame tracked from
    s.close()
    for lost in (tmp_path / "shot").rglob("results/pend-*.entry"):
        lost.unlink()
    again = ShotSession.open(tmp_path / "shot", device="cpu")
    try:
        # given again after the click the tracker tracked from, as the first time
        same(again.logits("ball", FIRST + 1), two)
        assert again.tracker.pending_frames(1) == [1] and not again.shot.manifest.tracked
        assert [p["tracked"] for p in manifest(again)["objects"][0]["prompts"]] == [True, False]
    finally:
        again.close()


def test_a_mask_prompt_that_fails_leaves_no_file(official_checkpoint, tmp_path):
    (tmp_path / "clip").mkdir()
    clip = write_png_clip(tmp_path / "clip", 4, FIRST)
    (clip / f"plate.{FIRST + 2}.png").write_bytes(b"not a png")  # a damaged plate
    s = ShotSession.create(tmp_path / "shot", clip, model_name=NAME, checkpoint=official_checkpoint(NAME),
                           device="cpu", image_size=CPU_TEST_INPUT_SIZE)
    try:
        before = manifest(s)
        with pytest.raises(ValueError, match="damaged"):
            s.add_prompt("ball", FIRST + 2, mask=np.ones((240, 320), bool))
        assert manifest(s) == before and not (tmp_path / "shot" / "prompts").exists()
    finally:
        s.close()


def test_an_interrupted_run_resumes_where_it_stopped_after_reopening(new_session, tmp_path):
    s = new_session()
    s.add_prompt("ball", FIRST + 2, points=[(96, 120)])
    cancel = threading.Event()
    done = []
    for frame, _ in s.track(cancel=cancel):
        done.append(frame)
        if len(done) == 2:
            cancel.set()
    assert done == [FIRST + 2, FIRST + 3] and not s.shot.manifest.tracked
    s.close()
    again = ShotSession.open(tmp_path / "shot", device="cpu")
    try:
        assert again.model.cfg.image_size == CPU_TEST_INPUT_SIZE  # the shot keeps its input size
        rest = [frame for frame, _ in again.track()]
        assert rest == [FIRST + 4, FIRST + 5, FIRST + 1, FIRST + 0]
        assert again.shot.manifest.tracked
    finally:
        again.close()


def test_a_tracked_shot_that_lost_results_in_a_power_cut_is_tracked_again(new_session, tmp_path):
    """Session results are not flushed to the disk frame by frame: after a power cut the
    shot may say "tracked" with a frame's result missing. Reopened, it is not tracked, and
    tracking runs again from the lost frame."""
    s = new_session()
    s.add_prompt("ball", FIRST + 2, points=[(96, 120)])
    before = {f: out["ball"] for f, out in s.track()}
    assert s.shot.manifest.tracked
    s.close()
    lost = next((tmp_path / "shot").rglob(f"results/res-1-{4:07d}.entry"))
    lost.unlink()
    again = ShotSession.open(tmp_path / "shot", device="cpu")
    try:
        assert not again.shot.manifest.tracked
        rest = {f: out["ball"] for f, out in again.track()}
        assert list(rest)[0] == FIRST + 4 and min(rest) == FIRST + 4  # from the lost frame on
        # (not bit-equal: frames tracked backward since then are memories now, as officially)
        for f, logits in rest.items():
            assert ((logits > 0) == (before[f] > 0)).mean() > 0.95, f
        assert all(again.logits("ball", f) is not None for f in before)
        assert again.shot.manifest.tracked
    finally:
        again.close()


def test_a_prompt_whose_answer_is_lost_while_the_shot_is_open_is_given_again(new_session):
    """A prompted frame's answer damaged or deleted on disk while the shot is open stops the run
    with the object's name and frame number; its prompts are given again at once (the shot
    waits to be tracked), and tracking again gives the masks of before. Nothing says the shot
    is tracked meanwhile (it was tracked over, the click ignored, and reported as tracked)."""
    s = new_session()
    s.add_prompt("ball", FIRST + 2, points=[(96, 120)])
    before = {f: out["ball"] for f, out in s.track()}
    ball = s.object("ball").id
    s.tracker.results.delete(f"res-{ball}-{2:07d}")
    with pytest.raises(SessionError, match=rf"result of 'ball' on frame {FIRST + 2} was lost.*prompts were given "
                                           "again. Track again"):
        list(s.track("forward", start=FIRST + 2))  # (a run over that frame)
    assert not s.shot.manifest.tracked and not manifest(s)["tracked"]
    assert s.tracker.pending_frames(ball) == [2]
    again = {f: out["ball"] for f, out in s.track()}
    assert sorted(again) == sorted(before) and s.shot.manifest.tracked
    same(before[FIRST + 2], again[FIRST + 2])  # the answer to the prompt, as before
    # (the others not bit-equal: frames tracked backward since then are memories now, as officially)
    for f in before:
        assert ((again[f] > 0) == (before[f] > 0)).mean() > 0.95, f


def test_a_mask_prompt_is_kept_with_the_shot_and_clicks_refine_it(new_session):
    s = new_session()
    h, w = 240, 320
    yy, xx = np.mgrid[0:h, 0:w]
    disc = (xx - 60) ** 2 + (yy - 120) ** 2 < 38**2
    answer = s.add_prompt("ball", FIRST, mask=disc)
    agree = ((answer > 0) == disc).mean()
    assert agree > 0.97
    record = manifest(s)["objects"][0]["prompts"][0]
    assert record["mask"].startswith("prompts/") and (s.shot.folder / record["mask"]).is_file()
    s.add_prompt("ball", FIRST, points=[(60, 120)])
    _, _, back = s.undo()
    same(back, answer)


def test_objects_are_named_renamed_and_removed(new_session):
    s = new_session()
    s.add_object("car", colour=[0.1, 0.2, 0.3])
    s.add_prompt("car", FIRST, points=[(60, 120)])
    s.add_prompt("rider", FIRST, mask=np.ones((240, 320), bool))
    rider_files = [s.shot.folder / p["mask"] for p in manifest(s)["objects"][1]["prompts"]]
    s.rename_object("car", "hero car")
    with pytest.raises(SessionError, match="'hero car' and 'hero.car' both become 'hero_car'"):
        s.rename_object("rider", "hero.car")
    s.rename_object("rider", "Rider")  # (a name may change its own case)
    s.rename_object("Rider", "rider")
    s.shot.manifest.objects.append(ObjectRecord(id=9, name="Hero car"))  # (a clash made before it was refused)
    s.add_object("sky")  # (names clashing among themselves do not stop a new one)
    s.shot.manifest.objects = [o for o in s.shot.manifest.objects if o.id != 9]
    assert [o["object"] for o in s.info()["objects"]] == ["hero car", "rider", "sky"]
    assert s.info()["objects"][0]["colour"] == [0.1, 0.2, 0.3]
    s.remove_object("rider")
    s.remove_object("sky")
    assert [o.name for o in s.objects] == ["hero car"] and s.tracker.object_ids == [1]
    assert rider_files and not any(f.exists() for f in rider_files)  # its mask prompt goes with it
    assert [f for f, _ in s.track()] == [FIRST + i for i in range(N)]


def test_bad_requests_are_clear_errors_and_change_nothing(new_session):
    s = new_session()
    s.add_prompt("ball", FIRST, points=[(60, 120)])
    before = (s.shot.folder / "shot.json").read_text()
    kept = s.logits("ball", FIRST)
    cases = [
        (lambda: s.add_prompt("ball", 5000, points=[(1, 1)]), "Frame 5000 is not in the shot (frames 1001-1006)"),
        (lambda: s.add_prompt("ball", FIRST, points=[(400, 10)]), "outside the plate (320x240"),
        (lambda: s.add_prompt("ball", FIRST, points=[(1, 1)], labels=[3]), "labels must be 1"),
        (lambda: s.add_prompt("ball", FIRST, box=(50, 50, 10, 10)), "x1 right of x0"),
        (lambda: s.add_prompt("ball", FIRST), "empty prompt"),
        (lambda: s.add_prompt("ball", FIRST, mask=np.ones((10, 10))), "must be the plate's size, 320x240"),
        (lambda: s.add_object("ball"), "already an object called 'ball'"),
        # names that would write the ball's files are refused when given, not at the export
        (lambda: s.add_object("Ball"), "Cannot name an object 'Ball': objects 'ball' and 'Ball' become"),
        (lambda: s.add_prompt("BALL", FIRST, points=[(1, 1)]), "Cannot name an object 'BALL'"),
        (lambda: s.add_object("car", colour=[2, 0, 0]), "three numbers from 0 to 1"),
        (lambda: s.rename_object("nobody", "x"), "No object 'nobody' in the shot (objects: ball)"),
        (lambda: s.remove_object("nobody"), "No object 'nobody'"),
        (lambda: s.set_cleanup("ball", {"blur": 3}), "Unknown clean-up settings: blur"),
        (lambda: list(s.track(direction="sideways", start=FIRST)), "direction must be"),
        (lambda: list(s.track(direction="forward", start=FIRST + 4, end=FIRST + 1)),
         "Tracking forward from frame 1005 never reaches frame 1002"),
        (lambda: s.add_prompt("ball", FIRST + 0.5, points=[(1, 1)]), "Frame 1001.5 is not in the shot"),
    ]
    for call, message in cases:
        with pytest.raises(SessionError, match=message.replace("(", r"\(").replace(")", r"\)")):
            call()
    assert (s.shot.folder / "shot.json").read_text() == before
    same(s.logits("ball", FIRST), kept)


def test_export_applies_each_objects_cleanup_and_sparse_shape_keys(new_session, tmp_path, caplog):
    from sam2_core.mattes.shapes import read_shapes_json

    s = new_session()
    s.add_prompt("ball", FIRST, points=[(60, 120)])
    s.add_prompt("square", FIRST, box=(205, 15, 275, 85))
    list(s.track())
    plain = s.export(tmp_path / "plain", "png16", shapes=True)
    # (random weights make meaningless mattes: check that export applies exactly the
    # object's clean-up, and only to that object)
    cleanup = {"remove_islands": 10**6, "grow": 2}
    s.set_cleanup("ball", cleanup)
    cleaned = s.export(tmp_path / "cleaned", "png16", shapes=True, shape_tolerance=1000)
    assert cleaned["frames"] == N and set(cleaned["mattes"]) == {"ball", "square"}

    def alpha(result, name, frame):
        path = result["mattes"][name].replace("####", str(frame))
        return cv2.imread(path, cv2.IMREAD_UNCHANGED) / 65535.0

    changed = 0
    for frame in range(FIRST, FIRST + N):
        expected = Cleanup(**cleanup).apply(alpha(plain, "ball", frame))
        assert np.abs(alpha(cleaned, "ball", frame) - expected).max() < 2e-5
        changed += not np.allclose(expected, alpha(plain, "ball", frame))
        assert np.array_equal(alpha(cleaned, "square", frame), alpha(plain, "square", frame))
    assert changed > 0
    dense = read_shapes_json(plain["shapes"]["square"])
    sparse = read_shapes_json(cleaned["shapes"]["square"])
    assert sum(len(sp.keys) for sp in sparse.splines) < sum(len(sp.keys) for sp in dense.splines)
    assert s.shot.manifest.objects[0].cleanup == cleanup
    with pytest.raises(ExportError, match="already holds"):
        s.export(tmp_path / "plain", "exr")  # an export never overwrites other files unasked
    # settings kept from before the limits (grow 150) are brought within them, and said so
    s.shot.manifest.objects[0].cleanup = {"grow": 150, "temporal": 30}
    with caplog.at_level("WARNING"):
        s.export(tmp_path / "old settings", "png16")
    assert "Object 'ball': clean-up grow 150 -> 100, temporal 30 -> 25 brought within the limits" in caplog.text
    s.set_cleanup("ball", {"feather": 1})  # (another setting: the kept ones do not stand in its way)
    assert s.shot.manifest.objects[0].cleanup == {"grow": 100, "feather": 1, "temporal": 25}
    # an export while a correction waits to be tracked from says so
    s.add_prompt("ball", FIRST + 2, points=[(20, 20)], labels=[0])
    assert plain["complete"] and not s.export(tmp_path / "early", "png16")["complete"]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def test_results_export_without_the_model_as_with_it(clip, official_checkpoint, tmp_path, monkeypatch):
    """Exporting needs only the results on disk: no model is loaded (no weights needed, the
    shot's own checkpoint may be gone), and the files are the ones the session writes."""
    import sam2_core.model.loading as loading

    checkpoint = Path(shutil.copy(official_checkpoint(NAME), tmp_path / "own.pt"))
    s = ShotSession.create(tmp_path / "shot", clip, model_name=NAME, checkpoint=checkpoint, device="cpu",
                           image_size=CPU_TEST_INPUT_SIZE)
    s.add_prompt("ball", FIRST, points=[(60, 120)])
    s.add_prompt("square", FIRST + 1, box=(205, 15, 275, 85))
    list(s.track())
    s.add_prompt("ball", FIRST + 3, points=[(20, 20)], labels=[0])  # a correction not tracked from
    s.set_cleanup("square", {"grow": 2})
    with_model = s.export(tmp_path / "with model", "png16", shapes=True, shape_tolerance=0.5)
    expected = {(name, f): (s.logits(name, f), s.object_score(name, f)) for name in ("ball", "square")
                for f in range(FIRST, FIRST + N)}
    s.close()
    checkpoint.unlink()

    def no_model(*_args, **_kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(loading, "load_model", no_model)
    with ShotResults.open(tmp_path / "shot") as results:
        for (name, f), (logits, score) in expected.items():
            assert np.array_equal(results.logits(name, f), logits) and results.object_score(name, f) == score
        without = results.export(tmp_path / "without model", "png16", shapes=True, shape_tolerance=0.5)
    assert not without["complete"] and without["frames"] == N  # (the correction waits, as it did)
    assert {k: v for k, v in without.items() if k not in ("folder", "mattes", "shapes")} == \
        {k: v for k, v in with_model.items() if k not in ("folder", "mattes", "shapes")}
    assert _files(tmp_path / "without model") == _files(tmp_path / "with model")
    assert [e["folder"] for e in manifest(s)["exports"]][-1] == str((tmp_path / "without model").resolve())


def test_results_that_need_the_model_first_are_not_read_without_it(new_session, tmp_path):
    """Results made on other footage or another model, or a prompt whose answer was lost:
    the shot opens with its model, which makes them right (ShotResults.open says None, and
    lets go of the shot)."""
    s = new_session()
    s.add_prompt("ball", FIRST, points=[(60, 120)])
    list(s.track())
    s.close()
    footage = tmp_path / "shot" / "tracking" / "footage.json"
    record = footage.read_text()
    for changed in (record.replace('"model": "sam2.1_hiera_tiny', '"model": "sam2.1_hiera_small'),
                    record.replace('"frame_numbers": [1001', '"frame_numbers": [1000'), "{not json"):
        footage.write_text(changed)
        assert ShotResults.open(tmp_path / "shot") is None
    footage.write_text(record)
    answer = next((tmp_path / "shot").rglob("results/res-1-0000000.entry"))
    kept = answer.read_bytes()
    answer.unlink()  # (the prompted frame's answer lost)
    assert ShotResults.open(tmp_path / "shot") is None
    answer.write_bytes(kept)
    with ShotResults.open(tmp_path / "shot") as results:  # (the shot was let go each time)
        assert results.tracker.object_ids == [1] and results.logits("ball", FIRST) is not None


def test_a_shot_whose_model_cannot_load_leaves_its_folder_as_it_was(clip, official_checkpoint, tmp_path):
    """Weights not there yet, or a setting the model refuses: a clear error, what the folder
    held is untouched, and the next try in the same folder makes the shot."""
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    new = tmp_path / "new"
    bad = [({"checkpoint": tmp_path / "absent.pt"}, "Checkpoint file not found"),
           ({"checkpoint": official_checkpoint(NAME), "image_size": 500}, "image_size 500 is not a multiple of 32")]
    for settings, words in bad:
        for folder in (kept, new):
            with pytest.raises(ValueError, match=words):
                ShotSession.create(folder, clip, model_name=NAME, device="cpu", **settings)
        assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"] and (kept / "notes.txt").read_text() == "mine"
        assert not new.exists()
    with ShotSession.create(kept, clip, model_name=NAME, checkpoint=official_checkpoint(NAME), device="cpu",
                            image_size=CPU_TEST_INPUT_SIZE) as session:
        assert session.info()["image_size"] == CPU_TEST_INPUT_SIZE
    assert (kept / "shot.json").is_file() and (kept / "notes.txt").read_text() == "mine"


def test_prompts_in_a_manifest_written_before_they_kept_tracked_read_as_tracked():
    from pathlib import Path

    from sam2_core.shot.manifest import Manifest, PromptRecord

    data = {"schema": "sam2roto.shot", "version": 1, "source": "plate.####.png",
            "objects": [{"id": 1, "name": "ball", "prompts": [{"frame": 1001, "points": [[1, 2]], "labels": [1]}]}]}
    old = Manifest.from_dict(data, Path("shot.json"))
    assert old.objects[0].prompts[0].tracked and not PromptRecord(frame=1001).tracked


@pytest.fixture
def plate(tmp_path):
    """A plate of the shot's own (the test changes its frames)."""
    folder = tmp_path / "plate"
    folder.mkdir()
    return write_png_clip(folder, N, FIRST)


def _plate_session(folder, plate, official_checkpoint):
    return ShotSession.create(folder, plate, model_name=NAME, checkpoint=official_checkpoint(NAME), device="cpu",
                              image_size=CPU_TEST_INPUT_SIZE)


def test_footage_given_handles_after_tracking_is_tracked_again_on_the_right_frames(official_checkpoint, plate,
                                                                                    tmp_path, caplog):
    s = _plate_session(tmp_path / "shot", plate, official_checkpoint)
    answer = s.add_prompt("ball", FIRST + 4, points=[(132, 120)])
    list(s.track())
    s.close()
    # the plate comes back from editorial with four frames of handles at its head
    frames = sorted(plate.iterdir())
    for k, n in enumerate(range(FIRST - 4, FIRST)):
        (plate / f"plate.{n:04d}.png").write_bytes(frames[k].read_bytes())
    with caplog.at_level("WARNING"):
        again = ShotSession.open(tmp_path / "shot", device="cpu")
    told = caplog.text  # (why, and what to do; not that an answer was damaged)
    assert "The footage or the model of the session" in told and "track the shot again" in told
    assert "lost its answer" not in told
    try:
        assert again.tracker.prompted_frames() == [8]  # frame 1005, and only there
        same(again.logits("ball", FIRST + 4), answer)
        # what was tracked on the old indices is not shown on the new frames
        assert again.logits("ball", FIRST) is None and not again.shot.manifest.tracked
        assert len(list(again.track())) == N + 4
    finally:
        again.close()


def test_a_colour_managed_sequence_keeps_its_tracking_when_the_shot_opens_again(official_checkpoint, plate, tmp_path):
    # a sequence pattern, colour settings left to sam2roto (an sRGB default for PNG)
    s = _plate_session(tmp_path / "shot", str(plate / "plate.####.png"), official_checkpoint)
    assert s.shot.manifest.colour["chosen_by"] == "default"
    s.add_prompt("ball", FIRST, points=[(60, 120)])
    tracked = dict(s.track())
    s.close()
    for _ in range(2):
        again = ShotSession.open(tmp_path / "shot", device="cpu")
        try:
            assert again.shot.manifest.tracked and list(again.track()) == []
            assert again.shot.manifest.colour["chosen_by"] == "default"  # the record is kept as it was
            for frame, logits in tracked.items():
                same(again.logits("ball", frame), logits["ball"])
            again.add_prompt("ball", FIRST + 3, points=[(114, 120)])
            assert again.tracker.frames.encoder_calls == 0  # every frame's features still cached
            again.undo()
        finally:
            again.close()


def test_a_shot_on_a_folder_of_frames_from_before_it_was_read_as_a_sequence_keeps_its_tracking(
        official_checkpoint, plate, tmp_path):
    """Shots on a folder of PNG frames were read without colour settings (recorded as none)
    before folders were read as sequences: the same code values, so the tracking is kept."""
    s = _plate_session(tmp_path / "shot", plate, official_checkpoint)
    s.add_prompt("ball", FIRST, points=[(60, 120)])
    tracked = dict(s.track())
    s.close()
    record = tmp_path / "shot" / "tracking" / "footage.json"  # (as that reader left them)
    record.write_text(json.dumps({**json.loads(record.read_text()), "colour": ""}))
    data = json.loads((tmp_path / "shot" / "shot.json").read_text())
    (tmp_path / "shot" / "shot.json").write_text(json.dumps({**data, "colour": {}}))
    again = ShotSession.open(tmp_path / "shot", device="cpu")
    try:
        assert again.shot.manifest.tracked and list(again.track()) == []
        for frame, logits in tracked.items():
            same(again.logits("ball", frame), logits["ball"])
    finally:
        again.close()


def test_a_project_moved_or_copied_with_its_footage_opens_its_shot_there(official_checkpoint, tmp_path):
    """A project folder holding the plates and the shot folder side by side: moved elsewhere, or
    copied, the shot opens on the plates beside it, its tracking kept."""
    project = tmp_path / "project"
    (project / "plates").mkdir(parents=True)
    write_png_clip(project / "plates", N, FIRST)
    s = _plate_session(project / "shot", str(project / "plates" / "plate.%04d.png"), official_checkpoint)
    s.add_prompt("ball", FIRST, points=[(60, 120)])
    tracked = dict(s.track())
    s.close()
    project.rename(tmp_path / "moved")
    shutil.copytree(tmp_path / "moved", tmp_path / "copy")  # (the moved one stays)
    for where in ("moved", "copy"):
        again = ShotSession.open(tmp_path / where / "shot", device="cpu")
        try:
            assert again.shot.source_path == tmp_path / where / "plates" / "plate.%04d.png"
            assert again.info()["source"] == str(tmp_path / where / "plates" / "plate.%04d.png")
            assert again.shot.manifest.tracked and list(again.track()) == []
            for frame, logits in tracked.items():
                same(again.logits("ball", frame), logits["ball"])
        finally:
            again.close()
    # a shot folder moved on its own finds the footage where it was, even where other plates lie
    # beside it as they lay beside it before, and an empty folder of that name
    (tmp_path / "elsewhere" / "plates").mkdir(parents=True)
    (tmp_path / "empty" / "plates").mkdir(parents=True)
    write_png_clip(tmp_path / "elsewhere" / "plates", N, FIRST, seed=1)
    shot = tmp_path / "copy" / "shot"
    for where in ("elsewhere", "empty"):
        shot = shot.rename(tmp_path / where / "shot")
        alone = ShotSession.open(shot, device="cpu")
        try:
            assert alone.shot.source_path == tmp_path / "copy" / "plates" / "plate.%04d.png"
            same(alone.logits("ball", FIRST), tracked[FIRST]["ball"])
        finally:
            alone.close()


def test_footage_moved_on_its_own_is_given_its_new_place_and_keeps_the_tracking(official_checkpoint, plate,
                                                                                tmp_path):
    from sam2_core.shot.shot import FootageMissing, Shot

    s = _plate_session(tmp_path / "shot", plate, official_checkpoint)
    s.add_prompt("ball", FIRST, points=[(60, 120)])
    tracked = dict(s.track())
    s.close()
    plate.rename(tmp_path / "plates v2")
    with pytest.raises(FootageMissing, match=f"missing: {plate}"):
        ShotSession.open(tmp_path / "shot", device="cpu")
    with pytest.raises(FootageMissing):  # (a new place where nothing is)
        ShotSession.open(tmp_path / "shot", device="cpu", moved_to=tmp_path / "nowhere")
    for moved_to in (tmp_path / "plates v2", None):  # (recorded: the next open needs no new place)
        again = ShotSession.open(tmp_path / "shot", device="cpu", moved_to=moved_to)
        try:
            assert again.shot.source_path == tmp_path / "plates v2"
            assert again.shot.manifest.tracked and list(again.track()) == []
            for frame, logits in tracked.items():
                same(again.logits("ball", frame), logits["ball"])
        finally:
            again.close()
    # relinked to other pictures of the same frames and size: the tracking made on the old ones goes
    (tmp_path / "other").mkdir()
    write_png_clip(tmp_path / "other", N, FIRST, seed=1)
    Shot.open(tmp_path / "shot", tmp_path / "other", relink=True).close()
    other = ShotSession.open(tmp_path / "shot", device="cpu")
    try:
        assert other.shot.source_path == tmp_path / "other" and other.logits("ball", FIRST + 1) is None
        assert [p.frame for p in other.object("ball").prompts] == [FIRST]  # (its prompts are given again)
    finally:
        other.close()


def test_footage_cut_short_after_prompting_still_opens(official_checkpoint, plate, tmp_path, caplog):
    s = _plate_session(tmp_path / "shot", plate, official_checkpoint)
    s.add_prompt("ball", FIRST + 1, points=[(78, 120)])
    s.add_prompt("ball", FIRST + 5, points=[(150, 120)])
    list(s.track())
    s.close()
    (plate / f"plate.{FIRST + 5}.png").unlink()
    again = ShotSession.open(tmp_path / "shot", device="cpu")
    try:
        assert "no longer has" in caplog.text
        assert again.tracker.prompted_frames() == [1]
        assert [p.frame for p in again.object("ball").prompts] == [FIRST + 1, FIRST + 5]  # kept in the shot
        assert [f for f, _ in again.track()] == [FIRST + 1, FIRST + 2, FIRST + 3, FIRST + 4, FIRST]
    finally:
        again.close()


def test_an_object_prompted_only_on_frames_cut_from_the_footage_leaves_the_others_trackable(
        official_checkpoint, plate, tmp_path, caplog):
    s = _plate_session(tmp_path / "shot", plate, official_checkpoint)
    s.add_prompt("ball", FIRST + 1, points=[(78, 120)])
    s.add_prompt("sky", FIRST + 5, points=[(20, 20)])
    s.close()
    (plate / f"plate.{FIRST + 5}.png").unlink()
    again = ShotSession.open(tmp_path / "shot", device="cpu")
    try:
        assert [f for f, _ in again.track()] == [FIRST + 1, FIRST + 2, FIRST + 3, FIRST + 4, FIRST]
        assert "Not tracked: 'sky'" in caplog.text
        assert [p.frame for p in again.object("sky").prompts] == [FIRST + 5]  # kept in the shot
        with pytest.raises(SessionError, match=r"'sky'.*frames the footage no longer has"):
            list(again.track(objects=["sky"]))
        result = again.export(tmp_path / "mattes")
        assert list(result["mattes"]) == ["ball"] and result["left_out"] == ["sky"]  # (hosts tell the artist)
    finally:
        again.close()


def test_a_manifest_that_cannot_be_saved_is_a_clear_error_and_the_old_one_stays(new_session, monkeypatch):
    import errno
    import os

    from sam2_core.shot.manifest import ManifestError

    s = new_session()
    s.add_prompt("ball", FIRST, points=[(60, 120)])
    saved = (s.shot.folder / "shot.json").read_bytes()

    real_replace = os.replace

    def disk_full(src, dst):  # (for the manifest only: the tracker's session takes the prompt)
        if os.path.basename(dst) == "shot.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    monkeypatch.setattr("sam2_core.atomic.os.replace", disk_full)
    with pytest.raises(ManifestError, match=r"Cannot save the shot's manifest .*shot\.json: No space left on device\. "
                                            "Free some space"):
        s.add_prompt("ball", FIRST + 1, points=[(78, 120)])
    assert (s.shot.folder / "shot.json").read_bytes() == saved
    assert not list(s.shot.folder.glob(".shot.json.*"))  # no half-written file left
    # nor a click the shot does not show: not in the tracker, nor in the session, nor to undo
    assert s.tracker.prompted_frames() == [0] and not s.tracker.has_result(1, s.object("ball").id)
    assert [p.frame for p in s.object("ball").prompts] == [FIRST]
    with pytest.raises(ManifestError):
        s.add_prompt("sky", FIRST, points=[(20, 20)])
    assert [o.name for o in s.objects] == ["ball"] and s.tracker.object_ids == [s.object("ball").id]
    monkeypatch.undo()
    assert s.undo()[1] == FIRST


def test_an_export_never_puts_mattes_in_the_footages_folder(official_checkpoint, plate, tmp_path):
    s = _plate_session(tmp_path / "shot", str(plate / "plate.####.png"), official_checkpoint)
    try:
        s.add_prompt("plate", FIRST, points=[(60, 120)])  # an object named as the plate's folder
        frames = {p.name: p.read_bytes() for p in plate.iterdir()}
        # its mattes would go to <out>/plate/plate.1001.png...: over the plates themselves
        for out, fmt in ((tmp_path, "png16"), (plate, "png16"), (plate, "prores")):
            with pytest.raises(SessionError, match=f"footage's folder {plate}"):
                s.export(out, fmt, shapes=True, force=True)
        assert {p.name: p.read_bytes() for p in plate.iterdir()} == frames  # nothing written, nothing new
        inside = s.export(plate / "mattes", "png16")  # a new folder inside it is fine, as Blender's proxies are
        assert Path(inside["mattes"]["plate"].replace("####", str(FIRST))).is_file()
    finally:
        s.close()


def test_an_export_never_puts_mattes_in_the_shots_own_folder(new_session, tmp_path):
    """A shot at proj/car with an object "car", exported to proj: its mattes would go to
    proj/car/, beside shot.json (and a later export would overwrite them unasked)."""
    s = new_session(tmp_path / "proj" / "car")
    s.add_prompt("car", FIRST, points=[(60, 120)])
    before = sorted(p.name for p in s.shot.folder.iterdir())
    for out in (tmp_path / "proj", s.shot.folder, s.shot.folder / "cache", s.shot.folder / "tracking" / "x"):
        with pytest.raises(SessionError, match=r"mix mattes with the shot's own files in .*proj/car: choose"):
            s.export(out, "png16", force=True)
    assert sorted(p.name for p in s.shot.folder.iterdir()) == before
    assert s.export(tmp_path / "mattes", "png16")["frames"] == N
    assert s.export(s.shot.folder / "mattes", "png16")["frames"] == N  # (a new folder inside it is fine)


def test_a_frame_outside_the_shot_is_an_error_before_any_tracking(new_session):
    s = new_session()
    s.add_object("sky")
    assert s.logits("sky", FIRST) is None and s.object_score("sky", FIRST) is None  # (nothing tracked yet)
    for ask in (s.logits, s.object_score):
        with pytest.raises(SessionError, match="Frame 99999 is not in the shot"):
            ask("sky", 99999)


def test_a_shot_whose_checkpoint_now_holds_other_weights_gives_its_prompts_again(official_checkpoint, plate,
                                                                                   tmp_path):
    import shutil

    import torch

    checkpoint = shutil.copy(official_checkpoint(NAME), tmp_path / "model.pt")
    s = ShotSession.create(tmp_path / "shot", plate, model_name=NAME, checkpoint=checkpoint, device="cpu",
                           image_size=CPU_TEST_INPUT_SIZE)
    first = s.add_prompt("ball", FIRST, points=[(60, 120)])
    list(s.track())
    s.close()
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state["model"] = {k: v * 1.01 if v.is_floating_point() else v for k, v in state["model"].items()}
    torch.save(state, checkpoint)  # the file at the shot's checkpoint path replaced
    again = ShotSession.open(tmp_path / "shot", device="cpu")
    try:
        # the click answered by the new weights; what the old ones tracked is gone, to track again
        answer = again.logits("ball", FIRST)
        assert answer is not None and np.abs(answer - first).max() > 1e-2
        assert again.logits("ball", FIRST + 2) is None and not again.shot.manifest.tracked
        assert len(list(again.track())) == N
    finally:
        again.close()


def test_a_sequence_renamed_in_its_folder_is_missing_until_given_its_new_name(tmp_path):
    from sam2_core.shot.shot import FootageMissing, Shot

    plates = tmp_path / "plates"
    plates.mkdir()
    write_png_clip(plates, 2, FIRST)
    Shot.create(tmp_path / "shot", plates / "plate.%04d.png").close()
    for f in sorted(plates.iterdir()):
        f.rename(plates / f.name.replace("plate.", "shot_v2."))
    with pytest.raises(FootageMissing, match=r"missing: .*plate\.%04d\.png"):  # (not "no frames match")
        Shot.open(tmp_path / "shot")
    with Shot.open(tmp_path / "shot", plates / "shot_v2.%04d.png") as shot:
        assert shot.source_path == plates / "shot_v2.%04d.png" and shot.source.frame_numbers == [FIRST, FIRST + 1]


def test_a_shot_folder_moved_alone_takes_no_other_footage_it_finds_beside_it(tmp_path):
    from sam2_core.shot.shot import FootageMissing, Shot

    for project, seed in (("p1", 0), ("p2", 5)):
        (tmp_path / project / "plates").mkdir(parents=True)
        write_png_clip(tmp_path / project / "plates", 2, FIRST, seed=seed)
    Shot.create(tmp_path / "p1" / "shot", tmp_path / "p1" / "plates" / "plate.%04d.png").close()
    (tmp_path / "p1" / "shot").rename(tmp_path / "p2" / "shot")
    shutil.rmtree(tmp_path / "p1" / "plates")  # (its own footage gone; p2's plates are other pictures)
    before = (tmp_path / "p2" / "shot" / "shot.json").read_text()
    with pytest.raises(FootageMissing, match="p1/plates"):
        Shot.open(tmp_path / "p2" / "shot")
    assert (tmp_path / "p2" / "shot" / "shot.json").read_text() == before  # (nothing recorded)


def test_plates_rendered_again_in_place_are_still_found_beside_a_moved_shot(tmp_path):
    from sam2_core.shot.shot import Shot

    (tmp_path / "p" / "plates").mkdir(parents=True)
    write_png_clip(tmp_path / "p" / "plates", 2, FIRST)
    Shot.create(tmp_path / "p" / "shot", tmp_path / "p" / "plates" / "plate.%04d.png").close()
    write_png_clip(tmp_path / "p" / "plates", 2, FIRST, seed=3)  # (a new version over the old files)
    Shot.open(tmp_path / "p" / "shot").close()  # (the shot notes what its footage now is)
    shutil.copytree(tmp_path / "p", tmp_path / "copy")
    shutil.rmtree(tmp_path / "p")
    with Shot.open(tmp_path / "copy" / "shot") as shot:
        assert shot.source_path == tmp_path / "copy" / "plates" / "plate.%04d.png"


def test_a_folder_of_frames_is_read_as_its_sequence_with_or_without_a_colour_space(tmp_path):
    """A shot on a folder reads it as the footage layer reads sequences, colour space named
    or not (without one, a plainer reader took it: pre-roll frames lost their minus sign, and
    a stray still beside the frames stopped it)."""
    from sam2_core.media.errors import FootageError
    from sam2_core.shot.shot import Shot

    plates = tmp_path / "plates"
    plates.mkdir()
    write_png_clip(plates, 4, -1)  # plate.-001.png to plate.0002.png
    cv2.imwrite(str(plates / "thumb.png"), np.zeros((8, 8, 3), np.uint8))
    for colour in ({}, {"colorspace": "sRGB"}):
        with Shot.create(tmp_path / f"shot{len(colour)}", plates, colour=colour) as shot:
            assert shot.source.frame_numbers == [-1, 0, 1, 2]
    write_png_clip(plates, 2, 1, seed=2)
    for f in ("plate.0001.png", "plate.0002.png"):
        (plates / f).rename(plates / f.replace("plate", "ref"))
    write_png_clip(plates, 2, 1)  # (the plates' own frames 1 and 2 again)
    with pytest.raises(FootageError, match="several image sequences"):
        Shot.open(tmp_path / "shot0")

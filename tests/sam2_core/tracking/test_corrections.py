"""Corrections after tracking: each corrected object re-tracks in its own direction up to
its own next prompt; a stopped re-track leaves no stale masks; a correction survives a
reload; a prompt given while a run is under way is kept."""

import threading

import numpy as np
import pytest

from sam2_core import VideoTracker
from tests.sam2_core.tracking.conftest import moving_disc_frames

DISC = [(60, 120)]  # the red disc on frame 0; it moves 18 px right a frame
SQUARE = (205, 15, 275, 85)  # the blue square on frame 0; it drifts down 8 px a frame


def disc(frame: int) -> list[tuple[int, int]]:
    return [(60 + 18 * frame, 120)]


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to the rounding of parallel reductions (two trackers need not split the work
    alike); the mistakes these tests guard against move logits by 1e-2 and more."""
    return a.shape == b.shape and float(np.abs(a - b).max()) < 1e-4


def results(tracker, obj_id, frames):
    return {f: tracker.logits(f, obj_id) for f in frames}


def two_objects_tracked(tiny, cache, n=6):
    """The disc with a second prompt on frame 3, the square from frame 0: tracked forward."""
    tracker = VideoTracker(tiny, moving_disc_frames(n), cache_dir=cache)
    tracker.add_prompt(0, 1, points=DISC)
    tracker.add_prompt(3, 1, points=disc(3))
    tracker.add_prompt(0, 2, box=SQUARE)
    list(tracker.propagate())
    return tracker


def correct_frame_1(tracker):
    tracker.add_prompt(1, 1, points=disc(1) + [(150, 200)], labels=[1, 0])
    tracker.add_prompt(1, 2, box=(200, 18, 280, 100))


def test_each_corrected_object_runs_to_its_own_next_prompt(tiny, shared_cache):
    tracker = two_objects_tracked(tiny, shared_cache)
    square_before = results(tracker, 2, (4, 5))
    correct_frame_1(tracker)
    assert tracker.retrack_spans(1) == [(1, "forward", 3, [1]), (1, "forward", 5, [2])]
    ran = [(frame, sorted(out)) for frame, out in tracker.retrack(1)]
    assert ran == [(1, [1, 2]), (2, [1, 2]), (3, [1, 2]), (4, [2]), (5, [2])]
    # the square, with no later prompt, was re-tracked to the end of the shot
    assert all(not same(tracker.logits(f, 2), square_before[f]) for f in (4, 5))

    # the same as running each object's span by hand
    twin = two_objects_tracked(tiny, shared_cache)
    correct_frame_1(twin)
    list(twin.propagate(1, "forward", 3, objects=[1]))
    list(twin.propagate(1, "forward", 5, objects=[2]))
    for obj_id in (1, 2):
        for f in range(6):
            assert same(tracker.logits(f, obj_id), twin.logits(f, obj_id)), (obj_id, f)


def test_each_corrected_object_runs_in_the_direction_it_was_tracked(tiny, shared_cache):
    tracker = VideoTracker(tiny, moving_disc_frames(5), cache_dir=shared_cache)
    tracker.add_prompt(3, 1, points=disc(3))
    tracker.add_prompt(0, 2, box=SQUARE)
    list(tracker.propagate(3, "backward", objects=[1]))
    list(tracker.propagate(0, "forward", objects=[2]))
    correct_frame_1(tracker)
    assert tracker.retrack_spans(1) == [(1, "forward", 4, [2]), (1, "backward", 0, [1])]
    ran = [(frame, sorted(out)) for frame, out in tracker.retrack(1)]
    assert ran == [(1, [2]), (2, [2]), (3, [2]), (4, [2]), (1, [1]), (0, [1])]
    assert tracker.was_tracked(0, 1) and tracker.logits(4, 1) is None  # the disc never went forward


def test_stopped_retrack_leaves_the_frames_it_did_not_reach_to_be_tracked_again(tiny, shared_cache):
    def tracked_and_corrected():
        tracker = VideoTracker(tiny, moving_disc_frames(6), cache_dir=shared_cache)
        tracker.add_prompt(0, 1, points=DISC)
        list(tracker.propagate())
        tracker.add_prompt(2, 1, points=disc(2) + [(10, 10)], labels=[1, 0])
        return tracker

    tracker = tracked_and_corrected()
    cancel = threading.Event()
    for frame, _ in tracker.retrack(2, cancel=cancel):
        if frame == 3:
            cancel.set()
    # frames 4 and 5 held masks from before the correction: none is shown as a result
    assert [f for f in range(6) if tracker.has_result(f, 1)] == [0, 1, 2, 3]
    assert tracker.logits(4, 1) is None
    assert [f for f, _ in tracker.retrack(2)] == [4, 5]  # called again, it goes on where it stopped
    with pytest.raises(ValueError, match="No new prompt on frame index 2"):
        tracker.retrack(2)  # and then there is nothing left to do

    uninterrupted = tracked_and_corrected()
    list(uninterrupted.retrack(2))
    for f in range(6):
        assert same(tracker.logits(f, 1), uninterrupted.logits(f, 1)), f


def test_reloaded_session_keeps_a_correction_not_yet_tracked_from(tiny, shared_cache, tmp_path):
    def tracked_and_corrected(session_dir=None):
        tracker = VideoTracker(tiny, moving_disc_frames(5), cache_dir=shared_cache, session_dir=session_dir)
        tracker.add_prompt(0, 1, points=DISC)
        list(tracker.propagate())
        answer = tracker.add_prompt(2, 1, points=disc(2) + [(10, 10)], labels=[1, 0])
        return tracker, answer

    tracker, answer = tracked_and_corrected(tmp_path / "session")
    tracker.close()  # (or the process died)
    reloaded = VideoTracker(tiny, moving_disc_frames(5), cache_dir=shared_cache, session_dir=tmp_path / "session")
    assert reloaded.pending_frames(1) == [2] and reloaded.was_tracked(2, 1)
    assert np.array_equal(reloaded.logits(2, 1), answer)
    # the frame's tracked memory is still there until the correction is tracked from
    uninterrupted, _ = tracked_and_corrected()
    click = dict(points=disc(3), labels=[1])
    assert same(reloaded.add_prompt(3, 1, **click), uninterrupted.add_prompt(3, 1, **click))
    again, reference = dict(reloaded.propagate(start=2)), dict(uninterrupted.propagate(start=2))
    assert all(same(again[f][1], reference[f][1]) for f in (2, 3, 4))


def test_prompt_given_while_a_run_is_under_way_is_kept(tiny, shared_cache):
    tracker = VideoTracker(tiny, moving_disc_frames(5), cache_dir=shared_cache)
    tracker.add_prompt(0, 1, points=DISC)
    answer = None
    yielded = {}
    for frame, out in tracker.propagate():
        yielded[frame] = out[1]
        if frame == 1:
            answer = tracker.add_prompt(3, 1, points=disc(3))
    assert np.array_equal(yielded[3], answer)  # the run handed out the prompt's answer
    assert np.array_equal(tracker.logits(3, 1), answer)
    assert tracker.pending_frames(1) == [3]  # and the next run tracks from it
    assert np.array_equal(dict(tracker.propagate(start=3, end=3))[3][1], answer)


def test_a_run_commits_only_its_own_objects_and_runs_through_later_corrections(tiny, shared_cache):
    tracker = two_objects_tracked(tiny, shared_cache)
    tracker.add_prompt(1, 2, box=(200, 18, 280, 100))
    tracker.add_prompt(3, 2, box=(200, 35, 280, 115))  # a second correction further on
    tracker.add_prompt(4, 1, points=disc(4))
    # the square's run goes on through its correction on frame 3 (what was tracked from
    # there is out of date too) to the end of the shot
    assert tracker.retrack_spans(1) == [(1, "forward", 5, [2])]
    assert [f for f, _ in tracker.retrack(1)] == [1, 2, 3, 4, 5]
    assert all(tracker.logits(f, 2) is not None for f in range(6))
    # the disc's correction waits for a run of its own, its masks beyond it still there
    assert tracker.pending_frames(1) == [4] and tracker.logits(5, 1) is not None
    assert [f for f, _ in tracker.retrack(4)] == [4, 5]
    # the same for a propagate of one object
    tracker.add_prompt(2, 2, box=(200, 25, 280, 110))
    list(tracker.propagate(start=0, end=1, objects=[1]))
    assert tracker.pending_frames(2) == [2] and tracker.logits(3, 2) is not None


def test_an_object_taken_away_during_a_run_drops_out_of_it(tiny, shared_cache):
    tracker = two_objects_tracked(tiny, shared_cache, n=5)
    ran = []
    for frame, out in tracker.propagate(start=0):
        ran.append((frame, sorted(out)))
        if frame == 1:
            tracker.remove_object(2)
            tracker.clear_prompt(0, 1)
            tracker.clear_prompt(3, 1)  # the disc has nothing left to be tracked from
    assert ran == [(0, [1, 2]), (1, [1, 2]), (2, []), (3, []), (4, [])]
    assert tracker.object_ids == [1] and tracker.prompted_frames(1) == []
    # a click on a frame it was tracked on is a first prompt (there is nothing to correct
    # from), and tracking starts again from it
    assert tracker.add_prompt(2, 1, points=disc(2)).shape == (240, 320)
    assert [(f, sorted(out)) for f, out in tracker.propagate()] == [(2, [1]), (3, [1]), (4, [1])]


def test_requests_that_would_do_nothing(tiny, shared_cache):
    tracker = VideoTracker(tiny, moving_disc_frames(5), cache_dir=shared_cache)
    tracker.add_prompt(0, 1, points=DISC)
    tracker.add_prompt(3, 2, box=(205, 39, 275, 109))
    list(tracker.propagate(objects=[1]))
    before = tracker.logits(2, 1)
    tracker.clear_prompt(2, 1)  # nothing was given there: its tracked mask stays
    assert np.array_equal(tracker.logits(2, 1), before)
    # the square's only prompt is on frame 3: tracking it forward to frame 1 is refused,
    # before its prompt is committed
    with pytest.raises(ValueError, match="never reaches frame index 1"):
        tracker.propagate(end=1, objects=[2])
    assert tracker.pending_frames(2) == [3]
    # an object whose prompts were all taken back does not hold up the others
    tracker.clear_prompt(3, 2)
    assert [sorted(out) for _, out in tracker.propagate(start=1, end=2)] == [[1], [1]]


def test_a_reloaded_session_has_the_objects_in_the_order_they_were_added(tiny, shared_cache, tmp_path):
    def open_session():
        return VideoTracker(tiny, moving_disc_frames(3), cache_dir=shared_cache, session_dir=tmp_path / "s",
                            non_overlap=True)

    tracker = open_session()
    for obj_id in (2, 10, 7):  # (stored under names that sort 10 before 2)
        tracker.add_prompt(0, obj_id, points=DISC)  # one place: the tie goes to object 2
    tracker.clear_prompt(0, 7)  # an object whose prompts were all taken back stays
    before = {i: tracker.logits(0, i) for i in (10, 2)}
    tracker.close()
    reloaded = open_session()
    assert reloaded.object_ids == [2, 10, 7]
    assert all(np.array_equal(reloaded.logits(0, i), before[i]) for i in (10, 2))
    reloaded.remove_object(2)
    reloaded.close()
    assert open_session().object_ids == [10, 7]


def refined_after_tracking_both_ways(tiny, cache):
    """The disc prompted on frame 2, tracked both ways, then its prompt refined there."""
    tracker = VideoTracker(tiny, moving_disc_frames(5), cache_dir=cache)
    tracker.add_prompt(2, 1, points=disc(2))
    list(tracker.propagate(start=2, direction="both"))
    tracker.add_prompt(2, 1, points=disc(2) + [(10, 10)], labels=[1, 0])
    return tracker


def test_a_refined_prompt_that_was_tracked_both_ways_retracks_both_ways(tiny, shared_cache):
    tracker = refined_after_tracking_both_ways(tiny, shared_cache)
    assert tracker.retrack_spans(2) == [(2, "forward", 4, [1]), (1, "backward", 0, [1])]
    assert [f for f, _ in tracker.retrack(2)] == [2, 3, 4, 1, 0]
    again = refined_after_tracking_both_ways(tiny, shared_cache)  # the same as tracking it all again
    list(again.propagate(start=2, direction="both"))
    for f in range(5):
        assert same(tracker.logits(f, 1), again.logits(f, 1)), f


@pytest.mark.parametrize("stop_at", [2, 3])
def test_a_two_way_retrack_stopped_going_forward_goes_on_both_ways(tiny, shared_cache, stop_at):
    tracker = refined_after_tracking_both_ways(tiny, shared_cache)
    cancel = threading.Event()
    for frame, _ in tracker.retrack(2, cancel=cancel):
        if frame == stop_at:
            cancel.set()
    # both sides of the refined prompt were dropped; called again, it finishes both
    assert [f for f, _ in tracker.retrack(2)] == [f for f in (3, 4) if f > stop_at] + [1, 0]
    with pytest.raises(ValueError, match="No new prompt on frame index 2"):
        tracker.retrack(2)
    again = refined_after_tracking_both_ways(tiny, shared_cache)
    list(again.retrack(2))
    for f in range(5):
        assert same(tracker.logits(f, 1), again.logits(f, 1)), f

"""VideoTracker equals the official video predictor (float32, random weights, SAM 2.1 tiny),
prompt by prompt and frame by frame, through a session an artist would have: clicks and
a refinement, a box with a negative click, forward tracking, a correction on a tracked
frame and its re-track, an object added mid-shot from a mask, and backward tracking."""

import numpy as np
import torch

from sam2_core import VideoTracker
from tests.sam2_core.tracking.conftest import moving_disc_frames

TOL = 1e-3


def assert_same(ref, got, what):
    ref = ref.cpu().numpy() if torch.is_tensor(ref) else np.asarray(ref)
    assert ref.shape == got.shape, what
    diff = float(np.abs(ref - got).max())
    assert diff <= TOL, f"{what}: max |logit difference| {diff}"
    decided = np.abs(ref) >= TOL
    assert np.array_equal(ref[decided] > 0, got[decided] > 0), f"{what}: masks differ"


def assert_frames_same(official_frames, ours_frames, what):
    official_frames, ours_frames = list(official_frames), list(ours_frames)
    assert [f for f, _, _ in official_frames] == [f for f, _ in ours_frames], what
    for (f, ids, ref), (_, got) in zip(official_frames, ours_frames):
        for k, obj in enumerate(ids):
            if obj in got:
                assert_same(ref[k, 0], got[obj], f"{what}, frame {f}, object {obj}")


def test_session_equals_official(tiny_on, device, official_pair, device_cache):
    frames = moving_disc_frames(10)
    official, state_for = official_pair
    state = state_for(frames)
    tracker = VideoTracker(tiny_on(device), frames, cache_dir=device_cache)

    # object 1: a click, then a refinement with a negative click (the earlier answer is fed back)
    _, _, ref = official.add_new_points_or_box(state, 0, 1, points=[[60, 120]], labels=[1])
    assert_same(ref[0, 0], tracker.add_prompt(0, 1, points=[(60, 120)], labels=[1]), "click")
    _, _, ref = official.add_new_points_or_box(state, 0, 1, points=[[60, 120], [200, 200]], labels=[1, 0])
    assert_same(ref[0, 0], tracker.add_prompt(0, 1, points=[(60, 120), (200, 200)], labels=[1, 0]), "refine")
    # object 2: a box and a negative click
    _, _, ref = official.add_new_points_or_box(state, 0, 2, box=[205, 15, 275, 85], points=[[20, 20]],
                                               labels=[0])
    got = tracker.add_prompt(0, 2, box=(205, 15, 275, 85), points=[(20, 20)], labels=[0])
    assert_same(ref[1, 0], got, "box")

    assert_frames_same(official.propagate_in_video(state), tracker.propagate(), "forward")

    # a correction on a tracked frame becomes a conditioning frame; re-track from it
    _, _, ref = official.add_new_points_or_box(state, 7, 1, points=[[186, 120]], labels=[1])
    assert_same(ref[0, 0], tracker.add_prompt(7, 1, points=[(186, 120)], labels=[1]), "correction")
    assert_frames_same(official.propagate_in_video(state, start_frame_idx=7), tracker.retrack(7), "re-track")
    # object 2 was not re-run by us; the official re-ran it: the stored results agree
    for f in range(7, 10):
        ref_logits = official._get_orig_video_res_output(
            state, state["output_dict_per_obj"][1]["non_cond_frame_outputs"][f]["pred_masks"])[1]
        assert_same(ref_logits[0, 0], tracker.logits(f, 2), f"kept object 2, frame {f}")

    # object 3 added mid-shot from a plate-sized mask, then tracking backward from it
    yy, xx = np.mgrid[0:frames.shape[1], 0:frames.shape[2]]
    mask = (abs(xx - 240) < 30) & (abs(yy - 74) < 30)
    _, _, ref = official.add_new_mask(state, 3, 3, mask)
    assert_same(ref[2, 0], tracker.add_prompt(3, 3, mask=mask), "mask prompt")
    assert_frames_same(official.propagate_in_video(state, start_frame_idx=3, reverse=True),
                       tracker.propagate(3, direction="backward"), "backward")


class ForcedPresence(torch.nn.Module):
    """Wraps an object-score head: its answer, or a forced one (negative = object gone)."""

    def __init__(self, head):
        super().__init__()
        self.head = head
        self.forced = None

    def forward(self, x):
        out = self.head(x)
        return out if self.forced is None else torch.full_like(out, self.forced)


def test_object_leaves_and_comes_back_equals_official(tiny_on, device, official_pair, device_cache, monkeypatch):
    frames = moving_disc_frames(10)  # the frames of the test above: their features are cached
    tiny = tiny_on(device)
    official, state_for = official_pair
    state = state_for(frames)
    ours_head = ForcedPresence(tiny.sam_mask_decoder.pred_obj_score_head)
    ref_head = ForcedPresence(official.sam_mask_decoder.pred_obj_score_head)
    monkeypatch.setattr(tiny.sam_mask_decoder, "pred_obj_score_head", ours_head)
    monkeypatch.setattr(official.sam_mask_decoder, "pred_obj_score_head", ref_head)
    tracker = VideoTracker(tiny, frames, cache_dir=device_cache)

    ours_head.forced = ref_head.forced = 5.0
    _, _, ref = official.add_new_points_or_box(state, 0, 1, points=[[60, 120]], labels=[1])
    assert_same(ref[0, 0], tracker.add_prompt(0, 1, points=[(60, 120)], labels=[1]), "click")
    plan = {1: 5.0, 2: -5.0, 3: -5.0, 4: 5.0, 5: 5.0}  # visible, gone for two frames, back
    ref_frames = official.propagate_in_video(state, max_frame_num_to_track=5)
    ours_frames = tracker.propagate(end=5)
    assert_frames_same([next(ref_frames)], [next(ours_frames)], "prompted frame")
    for frame, score in plan.items():
        ours_head.forced = ref_head.forced = score
        assert_frames_same([next(ref_frames)], [next(ours_frames)], f"presence {score}")
        logits = tracker.logits(frame, 1)
        assert (tracker.object_score(frame, 1) > 0) == (score > 0)
        if score < 0:
            assert logits.max() < -100  # absent: no matte at all
    assert tracker.logits(5, 1).max() > -100

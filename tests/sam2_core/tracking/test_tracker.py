"""VideoTracker behaviour beyond parity: the feature cache across processes and crashes,
the disk budget, cancellation, bad input, options."""

import errno
import gc
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sam2_core import VideoTracker, load_model
from sam2_core.cache.features import FrameFeatureCache, resize_to_input
from sam2_core.cache.store import CacheError
from sam2_core.media.frame_source import ArraySource
from sam2_core.model import SAM2
from sam2_core.tracking.postprocess import fill_small_holes, keep_top_object
from tests.official import connected_components
from tests.sam2_core.tracking.conftest import NAME, input_size, moving_disc_frames

CLICK = dict(points=[(60, 120)], labels=[1])


def assert_same_masks(a, b):
    """Logits equal up to the rounding of parallel reductions (another process, another
    thread split); masks equal wherever the logit is not within that rounding of 0."""
    assert np.abs(a - b).max() < 1e-3
    decided = np.abs(a) >= 1e-3
    assert np.array_equal(a[decided] > 0, b[decided] > 0)


def frame_feature_bytes(model, frames, tmp_path) -> int:
    """What one frame's features take (the unit of the disk budget tests)."""
    probe = FrameFeatureCache(model, ArraySource(frames[:1]), tmp_path / "probe", disk_budget=None)
    return sum(level.nbytes for level in probe.features(0).levels)


def track(tracker, n_frames=None):
    tracker.add_prompt(0, 1, **CLICK)
    return {f: out[1] for f, out in tracker.propagate(end=n_frames)}


def test_second_process_reuses_features(tiny, shared_cache, official_checkpoint):
    frames = moving_disc_frames(10)
    FrameFeatureCache(tiny, ArraySource(frames), shared_cache).features(2)  # cached by now or here
    np.save(shared_cache / "frames.npy", frames)
    child = textwrap.dedent(f"""
        import numpy as np, torch
        from sam2_core import load_model
        from sam2_core.cache.features import FrameFeatureCache
        from sam2_core.media.frame_source import ArraySource
        model = load_model({NAME!r}, checkpoint={str(official_checkpoint(NAME))!r}, device="cpu",
                           image_size={input_size("cpu")})
        frames = np.load({str(shared_cache / "frames.npy")!r})
        cache = FrameFeatureCache(model, ArraySource(frames), {str(shared_cache)!r})
        f = cache.features(2)
        print(cache.encoder_calls, float(f.embedding.double().sum()))
    """)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()}).stdout.split()
    here = FrameFeatureCache(tiny, ArraySource(frames), shared_cache).features(2)
    assert int(out[0]) == 0  # the image encoder did not run in the second process
    assert float(out[1]) == pytest.approx(float(here.embedding.double().sum()), rel=0, abs=0)


def test_killed_while_encoding_then_same_masks(tiny, tmp_path, official_checkpoint):
    """SIGKILL while a frame's features are being written; the next run finds no damaged
    entry and gives the masks of an undisturbed run."""
    frames = moving_disc_frames(10)[:2]
    np.save(tmp_path / "frames.npy", frames)
    child = textwrap.dedent(f"""
        import os, time, numpy as np
        from sam2_core import load_model
        from sam2_core.cache import store as st
        from sam2_core.cache.features import FrameFeatureCache
        from sam2_core.media.frame_source import ArraySource
        model = load_model({NAME!r}, checkpoint={str(official_checkpoint(NAME))!r}, device="cpu",
                           image_size={input_size("cpu")})
        cache = FrameFeatureCache(model, ArraySource(np.load({str(tmp_path / "frames.npy")!r})),
                                  {str(tmp_path / "cache")!r})
        real_replace = os.replace
        def stall_on_second_feature(src, dst):  # its file is written, not yet in place
            if "features" in str(dst) and len(cache.feature_store.keys()) == 1:
                print("writing", flush=True)
                time.sleep(60)
            real_replace(src, dst)
        st.os.replace = stall_on_second_feature
        cache.features(0)
        cache.features(1)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait()

    resumed = VideoTracker(tiny, frames, cache_dir=tmp_path / "cache")
    assert resumed.frames.features_if_cached(0) is not None  # whole, kept
    assert resumed.frames.features_if_cached(1) is None  # never completed
    got = track(resumed)
    assert resumed.frames.encoder_calls == 1  # frame 1 only
    clean = track(VideoTracker(tiny, frames, cache_dir=tmp_path / "clean"))
    for f in clean:
        assert_same_masks(clean[f], got[f])


def test_disk_budget_evicts_and_results_stay_equal(tiny, shared_cache, tmp_path):
    frames = moving_disc_frames(10)
    reference = track(VideoTracker(tiny, frames, cache_dir=shared_cache), 3)
    one_frame = 16 << 20  # tiny features in float32 are 16 MiB a frame
    tight = VideoTracker(tiny, frames, cache_dir=tmp_path, feature_disk_budget=2 * one_frame + (1 << 20))
    got = track(tight, 3)
    store = tight.frames.feature_store
    assert store.disk_bytes <= 2 * one_frame + (1 << 20)
    assert tight.frames.input_store.disk_bytes <= (2 * one_frame + (1 << 20)) // 4  # resized frames: a quarter
    assert "0000000" in store  # the prompted frame is pinned
    assert tight.frames.encoder_calls == 4
    for f in reference:
        assert_same_masks(reference[f], got[f])


def test_cancel_keeps_what_was_done_and_tracking_resumes(tiny, shared_cache):
    tracker = VideoTracker(tiny, moving_disc_frames(10), cache_dir=shared_cache)
    tracker.add_prompt(0, 1, **CLICK)
    cancel = threading.Event()
    seen, progress = [], []
    for frame, _ in tracker.propagate(cancel=cancel, progress=lambda d, t: progress.append((d, t))):
        seen.append(frame)
        if frame == 2:
            cancel.set()
    assert seen == [0, 1, 2] and progress[-1] == (3, 10)
    assert tracker.logits(2, 1) is not None and tracker.logits(3, 1) is None
    # closing the generator early is the other way to stop
    gen = tracker.propagate(start=3, end=5)
    assert next(gen)[0] == 3
    gen.close()
    assert tracker.logits(3, 1) is not None and tracker.logits(4, 1) is None


def test_both_directions_hand_out_the_start_frame_once(tiny, shared_cache, monkeypatch):
    tracker = VideoTracker(tiny, moving_disc_frames(10)[:5], cache_dir=shared_cache)
    tracker.add_prompt(2, 1, points=[(96, 120)])
    progress, heap = [], []
    monkeypatch.setattr("sam2_core.tracking.tracker.give_back_free_memory", lambda: heap.append("frame"))
    monkeypatch.setattr("sam2_core.tracking.tracker.trim", lambda: heap.append("run"))
    seen = [f for f, _ in tracker.propagate(direction="both", progress=lambda d, t: progress.append((d, t)))]
    assert seen == [2, 3, 4, 1, 0] and progress[-1] == (5, 5)
    assert heap == ["frame"] * 5 + ["run"]  # the heap is looked at after every frame, and trimmed at the end
    calls = []
    heads = tiny.sam_heads
    monkeypatch.setattr(tiny, "sam_heads", lambda *a, **k: calls.append(1) or heads(*a, **k))
    assert list(dict(tracker.propagate(start=3, end=3, objects=[1, 1]))) == [3]
    assert calls == [1]  # an object named twice is tracked once


def test_a_query_from_another_thread_waits_for_the_frame_in_progress(tiny, shared_cache, monkeypatch):
    tracker = VideoTracker(tiny, moving_disc_frames(10), cache_dir=shared_cache)
    tracker.add_prompt(0, 1, **CLICK)
    answers, asked = [], threading.Event()
    heads, in_frame_2 = tiny.sam_heads, [False]

    def heads_that_ask_meanwhile(*args, **kwargs):
        if in_frame_2[0] and not asked.is_set():
            asked.set()
            threading.Thread(target=lambda: answers.append(tracker.has_result(2, 1))).start()
            time.sleep(0.3)  # (time enough for a query that does not wait to answer)
        return heads(*args, **kwargs)

    monkeypatch.setattr(tiny, "sam_heads", heads_that_ask_meanwhile)
    run = tracker.propagate(end=3)
    assert [next(run)[0], next(run)[0]] == [0, 1]
    in_frame_2[0] = True
    assert next(run)[0] == 2
    run.close()
    for _ in range(100):
        if answers:
            break
        time.sleep(0.05)
    assert asked.is_set() and answers == [True]  # it saw frame 2 done, not half done


def test_memories_gone_from_the_session_are_computed_again_as_they_were(tiny, shared_cache, tmp_path):
    """Spatial memories are a cache: one deleted (a power cut, the disk budget) or damaged is
    encoded again from its frame's result, equal to the one first made (a tracked frame's from
    its logits before hole filling), and tracking from there gives the same masks."""
    session = tmp_path / "session"
    frames = moving_disc_frames(10)
    tracker = VideoTracker(tiny, frames, cache_dir=shared_cache, session_dir=session, fill_hole_area=64)
    tracker.add_prompt(0, 1, **CLICK)
    before = dict(tracker.propagate())
    first = {f: tracker.bank.store.get(tracker.bank.key(1, f))["memory"].clone() for f in range(10)}
    filled = [f for f in range(1, 10) if tracker.results.get(f"res-1-{f:07d}")["unfilled_at"].numel()]
    tracker.close()
    assert filled, "hole filling changed no logits: the test proves nothing"
    lost = [0, filled[0], 5] if filled[0] != 5 else [0, 5]
    for f in lost:
        (session / "memory" / f"mem-1-{f:07d}.entry").unlink()
    damaged = session / "memory" / f"mem-1-{4:07d}.entry"
    damaged.write_bytes(damaged.read_bytes()[:-100] + bytes(100))

    reloaded = VideoTracker(tiny, frames, cache_dir=shared_cache, session_dir=session, fill_hole_area=64)
    assert reloaded.pending_frames(1) == [] and all(reloaded.has_result(f, 1) for f in range(10))
    memory = reloaded._objects[1].memory
    for f in [*lost, 4]:
        assert torch.equal(reloaded.bank.spatial(memory, f, memory.get(f)).cpu(), first[f]), f
    reloaded.conditioned.clear()  # (or the frames' conditioned embeddings would be reused as they are)
    for f in (2, 3):  # older memories than the run needs are computed again too
        (session / "memory" / f"mem-1-{f:07d}.entry").unlink()
        reloaded.bank.store.delete(reloaded.bank.key(1, f))
    again = dict(reloaded.propagate(start=6))
    assert sorted(again) == [6, 7, 8, 9]
    for f in again:
        assert_same_masks(before[f][1], again[f][1])
    reloaded.close()


def test_a_result_lost_under_its_memory_stops_the_run_once_and_is_tracked_again(tiny, shared_cache, tmp_path):
    """A frame whose memory and result are both gone (deleted while the session was open)
    cannot be remembered: the run that needs it stops with a clear error, and the next run
    tracks the frame again: the masks tracked before."""
    frames = moving_disc_frames(6)
    tracker = VideoTracker(tiny, frames, cache_dir=shared_cache, session_dir=tmp_path / "session")
    tracker.add_prompt(0, 1, **CLICK)
    before = dict(tracker.propagate())
    tracker.conditioned.clear()
    tracker.results.delete("res-1-0000002")
    tracker.bank.store.delete(tracker.bank.key(1, 2))
    with pytest.raises(RuntimeError, match="result of object 1 on frame index 2 was lost.*track again"):
        list(tracker.propagate(start=3))
    assert not tracker.has_result(2, 1) and tracker.has_result(1, 1) and tracker.has_result(3, 1)
    again = dict(tracker.propagate(start=1))
    assert sorted(again) == [1, 2, 3, 4, 5]
    for f in again:
        assert_same_masks(before[f][1], again[f][1])
    tracker.close()


@pytest.mark.parametrize("memory_too", [False, True])
def test_a_prompted_frame_whose_result_is_lost_is_prompted_again(tiny, shared_cache, tmp_path, memory_too):
    """A prompted frame's answer lost (with its memory, or alone) leaves nothing to track
    from: the run that meets it stops with a clear error, the frame is no longer shown as
    prompted, and prompting it again tracks as before (it was a TypeError on every run)."""
    frames = moving_disc_frames(5)
    tracker = VideoTracker(tiny, frames, cache_dir=shared_cache, session_dir=tmp_path / "session")
    tracker.add_prompt(0, 1, **CLICK)
    before = dict(tracker.propagate())
    tracker.results.delete("res-1-0000000")
    if memory_too:
        tracker.bank.store.delete(tracker.bank.key(1, 0))
        tracker.conditioned.clear()
    with pytest.raises(RuntimeError, match="result of object 1 on frame index 0 was lost.*prompt it again"):
        list(tracker.propagate(start=3 if memory_too else 0))
    assert tracker.prompted_frames(1) == [] and not tracker.has_result(0, 1)
    with pytest.raises(ValueError, match="No object has a prompt"):
        list(tracker.propagate())
    tracker.add_prompt(0, 1, **CLICK)
    again = dict(tracker.propagate())
    assert sorted(again) == list(range(5))
    for f in again:
        assert_same_masks(before[f][1], again[f][1])
    tracker.close()


def test_answers_to_prompts_are_flushed_to_the_disk_and_tracked_results_are_not(tiny, shared_cache, tmp_path,
                                                                                 monkeypatch):
    """A prompt's answer cannot be computed again as it was (a correction's depends on the mask
    before it), so it is flushed as its clicks are; a tracked frame's can be tracked again, and
    flushing each would slow tracking."""
    flushed = []
    real_fsync = os.fsync

    def fsync(fd):
        flushed.append(Path(os.readlink(f"/proc/self/fd/{fd}")).parent.name)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    tracker = VideoTracker(tiny, moving_disc_frames(8), cache_dir=shared_cache, session_dir=tmp_path / "session")
    tracker.add_prompt(0, 1, **CLICK)
    assert flushed.count("results") == 1  # the answer
    assert len(list(tracker.propagate())) == 8
    # the answer again as the frame tracked from, and with the direction it was tracked in;
    # none of the 7 tracked frames
    assert flushed.count("results") == 3
    tracker.close()


def test_a_memory_newer_than_its_result_is_not_taken_for_it(tiny, shared_cache, tmp_path):
    """A process killed between writing a frame's new memory and its new result leaves the
    older result beside the newer memory: the memory is made again from the result kept."""
    session = tmp_path / "session"
    frames = moving_disc_frames(6)
    tracker = VideoTracker(tiny, frames, cache_dir=shared_cache, session_dir=session)
    tracker.add_prompt(0, 1, **CLICK)
    list(tracker.propagate())
    older_memory = tracker.bank.store.get(tracker.bank.key(1, 3))["memory"].clone()
    tracker.close()
    older_result = (session / "results" / "res-1-0000003.entry").read_bytes()

    tracker = VideoTracker(tiny, frames, cache_dir=shared_cache, session_dir=session)
    tracker.add_prompt(2, 1, points=[(90, 120)], labels=[1])  # a correction, re-tracked over frame 3
    list(tracker.retrack(2))
    newer_memory = tracker.bank.store.get(tracker.bank.key(1, 3))["memory"].clone()
    tracker.close()
    assert not torch.equal(newer_memory, older_memory)
    (session / "results" / "res-1-0000003.entry").write_bytes(older_result)  # the kill: the older result

    reloaded = VideoTracker(tiny, frames, cache_dir=shared_cache, session_dir=session)
    memory = reloaded._objects[1].memory
    assert torch.equal(reloaded.bank.spatial(memory, 3, memory.get(3)).cpu(), older_memory)
    reloaded.close()


def test_a_long_shot_keeps_its_memories_within_the_disk_budget(tiny, shared_cache, tmp_path, monkeypatch):
    """The session folder does not grow by a spatial memory a frame: past the budget the least
    recently used go, never a prompted frame's (every frame reads it), and the shot's masks are
    those tracked with every memory kept. A budget that holds what a frame reads encodes none
    again."""
    from sam2_core.tracking import tracker as tracker_module

    frames = moving_disc_frames(12)
    kept = VideoTracker(tiny, frames, cache_dir=shared_cache)
    reference = track(kept)
    memory_bytes = kept.bank.store.mean_entry_bytes()
    kept.close()
    for entries in (4, 8):  # 8: the prompted frame, the 6 before the frame and the frame's own
        monkeypatch.setattr(tracker_module, "MEMORY_DISK_BUDGET", entries * memory_bytes)
        budgeted = VideoTracker(tiny, frames, cache_dir=shared_cache, session_dir=tmp_path / f"session{entries}")
        budgeted.bank.store.ram_budget = 2 * memory_bytes  # (else the RAM window would hold them all)
        encoded_again = []

        def counted(obj, f, record, recompute=budgeted.bank.recompute, encoded_again=encoded_again):
            encoded_again.append(f)
            return recompute(obj, f, record)

        budgeted.bank.recompute = counted
        got = track(budgeted)
        on_disk = list((tmp_path / f"session{entries}" / "memory").glob("*.entry"))
        assert 0 < len(on_disk) <= entries
        assert 0 not in encoded_again and (encoded_again == [] if entries == 8 else encoded_again)
        budgeted.conditioned.clear()
        again = {f: out[1] for f, out in budgeted.propagate(start=8)}
        for f in reference:
            assert_same_masks(reference[f], got[f])
        for f in again:
            assert_same_masks(reference[f], again[f])
        budgeted.close()


def test_bad_input_is_a_clear_error_and_loses_nothing(tiny, shared_cache):
    tracker = VideoTracker(tiny, moving_disc_frames(10), cache_dir=shared_cache)
    first = tracker.add_prompt(0, 1, **CLICK)
    bad = [
        (ValueError, "outside the plate", dict(frame=0, obj_id=1, points=[(400, 10)])),
        (ValueError, "outside the plate", dict(frame=0, obj_id=1, points=[(-1, 10)])),
        (ValueError, "Empty prompt", dict(frame=0, obj_id=1)),
        (ValueError, "Empty prompt", dict(frame=0, obj_id=1, points=[])),
        (IndexError, "outside the source", dict(frame=10, obj_id=1, points=[(5, 5)])),
        (IndexError, "outside the source", dict(frame=-1, obj_id=1, points=[(5, 5)])),
        (ValueError, "one label per point", dict(frame=0, obj_id=1, points=[(5, 5)], labels=[1, 0])),
        (ValueError, "x1 must be right of x0", dict(frame=0, obj_id=1, box=(50, 50, 10, 60))),
        (ValueError, "plate's size", dict(frame=0, obj_id=1, mask=np.ones((10, 10)))),
        (ValueError, "not both", dict(frame=0, obj_id=1, mask=np.ones((240, 320)), points=[(1, 1)])),
    ]
    for error, words, kwargs in bad:
        with pytest.raises(error, match=words):
            tracker.add_prompt(**kwargs)
    with pytest.raises(KeyError, match="Unknown object 7"):
        tracker.logits(0, 7)
    with pytest.raises(KeyError, match="Unknown object 7"):
        tracker.remove_object(7)
    with pytest.raises(ValueError, match="direction"):
        tracker.propagate(direction="sideways")
    for obj_id in (-1, "lamp", 1.5, True):
        with pytest.raises(ValueError, match="whole number"):
            tracker.add_prompt(0, obj_id, **CLICK)
    # a bad range is refused before the prompt's answer enters the memory bank
    for kwargs, error, words in ((dict(start=12), IndexError, "outside the source"),
                                 (dict(start=0, end=10), IndexError, "outside the source"),
                                 (dict(start=4, end=1), ValueError, "never reaches"),
                                 (dict(start=1, direction="backward", end=4), ValueError, "never reaches")):
        with pytest.raises(error, match=words):
            tracker.propagate(**kwargs)
        assert tracker.pending_frames(1) == [0]
    assert tracker.object_ids == [1]
    assert np.array_equal(tracker.logits(0, 1), first)  # nothing lost
    empty = VideoTracker(tiny, moving_disc_frames(10), cache_dir=shared_cache)
    with pytest.raises(ValueError, match="No object has a prompt"):
        empty.propagate()


class UnreadableFrame(ArraySource):
    def read(self, index):
        if index == 2:
            raise OSError("frame 2 is damaged")
        return super().read(index)


def test_prompt_that_fails_leaves_no_object_and_no_prompt_behind(tiny, tmp_path):
    tracker = VideoTracker(tiny, UnreadableFrame(moving_disc_frames(4)), cache_dir=tmp_path,
                           session_dir=tmp_path / "session")
    first = tracker.add_prompt(0, 1, **CLICK)
    for obj_id in (1, 2):
        with pytest.raises(OSError, match="damaged"):
            tracker.add_prompt(2, obj_id, **CLICK)
    assert tracker.object_ids == [1] and tracker.prompted_frames() == [0]
    assert list(tracker.propagate(end=1))  # nothing half-made blocks tracking
    reloaded = VideoTracker(tiny, moving_disc_frames(4), cache_dir=tmp_path, session_dir=tmp_path / "session")
    assert reloaded.object_ids == [1] and reloaded.prompted_frames() == [0]
    assert np.array_equal(reloaded.logits(0, 1), first)


def test_a_session_is_kept_on_the_same_footage_and_dropped_on_other_pictures(tiny, tmp_path):
    def tracker(footage_key):
        return VideoTracker(tiny, moving_disc_frames(4), cache_dir=tmp_path, session_dir=tmp_path / "session",
                            footage_key=footage_key)

    first = tracker("abc").add_prompt(0, 1, **CLICK)
    # footage that could not be read just now is not other footage; the same footage keeps it
    for key in ("", "abc"):
        assert np.array_equal(tracker(key).logits(0, 1), first), key
    assert tracker("other pictures").object_ids == []


def test_a_prompt_whose_answer_cannot_be_saved_leaves_the_frames_answer_as_it_was(tiny, tmp_path, monkeypatch):
    session = tmp_path / "session"
    tracker = VideoTracker(tiny, moving_disc_frames(4), cache_dir=tmp_path, session_dir=session)
    first = tracker.add_prompt(0, 1, **CLICK)
    real_replace, writes = os.replace, []

    def disk_full_at(folder, nth):  # the nth write into the folder fails; the rest works
        def replace(src, dst):
            if folder in Path(dst).parts:
                writes.append(dst)
                if len(writes) == nth:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_replace(src, dst)
        writes.clear()
        monkeypatch.setattr("sam2_core.cache.store.os.replace", replace)

    disk_full_at("results", 1)
    with pytest.raises(CacheError, match="disk is full"):
        tracker.add_prompt(0, 1, points=[(60, 120), (20, 20)], labels=[1, 0])  # more clicks on the frame
    assert np.array_equal(tracker.logits(0, 1), first)
    disk_full_at("prompts", 2)  # a new object: its prompt and its answer are written, the object list is not
    with pytest.raises(CacheError, match="disk is full"):
        tracker.add_prompt(0, 2, box=(205, 15, 275, 85))
    monkeypatch.undo()
    assert tracker.object_ids == [1]
    reloaded = VideoTracker(tiny, moving_disc_frames(4), cache_dir=tmp_path, session_dir=session)
    assert reloaded.object_ids == [1] and np.array_equal(reloaded.logits(0, 1), first)
    assert_same_masks(dict(reloaded.propagate(end=0))[0][1], first)  # the answer the artist saw is tracked from


@pytest.mark.parametrize("damage", ['{"frame_num', "[]"])
def test_a_damaged_record_of_the_footage_says_so_as_the_session_starts_afresh(tiny, tmp_path, caplog, damage):
    """What the session was made on cannot be told: it starts afresh, and the warning says why
    (it said the footage or the model had changed, when neither had)."""
    session, frames = tmp_path / "session", moving_disc_frames(3)
    tracker = VideoTracker(tiny, frames, cache_dir=tmp_path / "cache", session_dir=session)
    tracker.add_prompt(0, 1, **CLICK)
    tracker.close()
    (session / "footage.json").write_text(damage)
    again = VideoTracker(tiny, frames, cache_dir=tmp_path / "cache", session_dir=session)
    assert again.object_ids == []
    assert "cannot tell what footage it was made on" in caplog.text and "changed since" not in caplog.text
    again.close()


def test_a_session_follows_its_footage_when_moved_and_starts_afresh_when_its_frames_change(tiny, tmp_path):
    import shutil

    from tests.sam2_core.tracking.conftest import write_png_clip

    first_place = tmp_path / "a"
    first_place.mkdir()
    write_png_clip(first_place, 4)
    session = tmp_path / "session"
    tracker = VideoTracker(tiny, first_place, cache_dir=tmp_path / "cache", session_dir=session)
    tracked = track(tracker)
    tracker.close()
    moved = shutil.move(first_place, tmp_path / "b")  # (another identity: features are computed again)
    again = VideoTracker(tiny, moved, cache_dir=tmp_path / "cache", session_dir=session)
    assert again.prompted_frames() == [0] and np.array_equal(again.logits(3, 1), tracked[3])
    again.close()
    (Path(moved) / "plate.1004.png").unlink()  # a frame cut: indices may mean other frames now
    cut = VideoTracker(tiny, moved, cache_dir=tmp_path / "cache", session_dir=session)
    assert cut.object_ids == [] and cut.prompted_frames() == []


def test_unwritable_cache_folder_is_a_clear_error(tiny, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(CacheError, match="Cannot create the cache folder"):
        VideoTracker(tiny, moving_disc_frames(2), cache_dir=blocker)


def test_cache_disk_full_while_tracking_is_a_clear_error_and_keeps_the_results(tiny, tmp_path, monkeypatch):
    tracker = VideoTracker(tiny, moving_disc_frames(4), cache_dir=tmp_path / "cache")
    tracker.add_prompt(0, 1, **CLICK)
    real_replace = os.replace

    def full_disk_for_the_caches(src, dst):
        # the frame and feature caches and the conditioned embeddings are written behind
        # the run; the session's memories and results go on being written
        parts = Path(dst).parts
        if "sessions" not in parts or "conditioned" in parts:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    monkeypatch.setattr("sam2_core.cache.store.os.replace", full_disk_for_the_caches)
    handed_out = {}
    with pytest.raises(CacheError, match="disk is full") as info:
        for frame, out in tracker.propagate():
            handed_out[frame] = out[1]
    assert handed_out  # the run got under way before the writers' errors reached it
    assert str(tmp_path / "cache") in str(info.value)
    assert all(np.array_equal(tracker.logits(f, 1), m) for f, m in handed_out.items())
    monkeypatch.setattr("sam2_core.cache.store.os.replace", real_replace)
    again = {frame: out[1] for frame, out in tracker.propagate()}  # room again: it goes on
    assert sorted(again) == [0, 1, 2, 3]
    assert all(np.array_equal(again[f], m) for f, m in handed_out.items())
    tracker.close()


def test_a_result_that_cannot_be_written_leaves_the_frame_to_be_tracked_again(tiny, tmp_path, monkeypatch):
    reference = track(VideoTracker(tiny, moving_disc_frames(4), cache_dir=tmp_path / "reference"))
    tracker = VideoTracker(tiny, moving_disc_frames(4), cache_dir=tmp_path / "cache")
    tracker.add_prompt(0, 1, **CLICK)
    real_replace = os.replace

    def full_disk_for_frame_2s_result(src, dst):  # (its memory, written just before, fits)
        if Path(dst).name.startswith("res-1-0000002"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    monkeypatch.setattr("sam2_core.cache.store.os.replace", full_disk_for_frame_2s_result)
    with pytest.raises(CacheError, match="disk is full"):
        list(tracker.propagate())
    # neither its memory nor a result: not a tracked frame that shows nothing
    assert not tracker.was_tracked(2, 1) and not tracker.has_result(2, 1)
    assert tracker.bank.key(1, 2) not in tracker.bank.store
    assert tracker.was_tracked(1, 1)
    monkeypatch.setattr("sam2_core.cache.store.os.replace", real_replace)
    again = {frame: out[1] for frame, out in tracker.propagate()}
    assert sorted(again) == [0, 1, 2, 3]
    for f in range(4):
        assert_same_masks(tracker.logits(f, 1), reference[f])
    tracker.close()


def test_memory_position_encoding_is_rounded_as_the_memory_encoder_hands_it_out(official_checkpoint, tmp_path):
    """A session reloaded in bfloat16 attends with the same encoding as the one that made
    the memories (it is computed once, not taken from the first memory)."""
    model = load_model(NAME, checkpoint=official_checkpoint(NAME), dtype="bfloat16", image_size=input_size("cpu"))
    tracker = VideoTracker(model, moving_disc_frames(2), cache_dir=tmp_path)
    feats = tracker.frames.features(0)
    with model.precision():
        size = model.cfg.image_size
        _, pos = model.encode_memory(feats.embedding, torch.zeros(1, 1, size, size), torch.ones(1, 1), binarize=False)
    assert pos.dtype == torch.bfloat16
    assert torch.equal(tracker.bank.memory_pos(), pos.float())
    tracker.close()


def test_tracker_dropped_without_close_removes_its_temporary_folders(tiny, tmp_path):
    shot_cache = tmp_path / "shot"
    kept = VideoTracker(tiny, moving_disc_frames(2), cache_dir=shot_cache, session_dir=tmp_path / "session")
    dropped = VideoTracker(tiny, moving_disc_frames(2), cache_dir=shot_cache)
    own = VideoTracker(tiny, moving_disc_frames(2))  # a cache folder of its own
    for tracker in (kept, dropped, own):
        tracker.add_prompt(0, 1, **CLICK)
    session, own_cache = dropped.session_dir, own.cache_dir
    assert session.is_dir() and own_cache.is_dir()
    del dropped, own, tracker
    gc.collect()
    assert not session.exists() and not own_cache.exists()
    assert (shot_cache / "features").is_dir()  # the shot's cache stays for the next run
    kept.close()
    assert (tmp_path / "session" / "prompts").is_dir()  # and a kept session stays


def test_remove_object_and_add_one_after_tracking(tiny, shared_cache):
    tracker = VideoTracker(tiny, moving_disc_frames(10), cache_dir=shared_cache)
    tracker.add_prompt(0, 1, **CLICK)
    tracker.add_prompt(0, 2, box=(205, 15, 275, 85))
    list(tracker.propagate(end=2))
    tracker.remove_object(1)
    assert tracker.object_ids == [2]
    assert not [k for k in tracker.bank.store.keys() if k.startswith("mem-1-")]
    tracker.add_prompt(1, 5, points=[(80, 120)])
    outs = dict(tracker.propagate(start=1, end=2))
    assert set(outs[2]) == {2, 5}


def test_background_encoding_fills_the_cache(tiny, tmp_path):
    frames = moving_disc_frames(10)[:3]
    tracker = VideoTracker(tiny, frames, cache_dir=tmp_path, encode_in_background=True)
    tracker.add_prompt(1, 1, points=[(80, 120)])  # the foreground goes first
    assert tracker.frames.background_done(timeout=120)
    assert all(tracker.frames.features_if_cached(i) is not None for i in range(3))
    assert tracker.frames.encoder_calls == 3  # each frame once, whoever got there first


def test_background_encoding_stops_at_the_disk_budget_and_evicts_nothing(tiny, tmp_path):
    frames = moving_disc_frames(10)
    one = frame_feature_bytes(tiny, frames, tmp_path)
    tracker = VideoTracker(tiny, frames, cache_dir=tmp_path / "cache", feature_disk_budget=int(3.5 * one))
    tracker.add_prompt(8, 1, **CLICK)
    tracker.encode_ahead(5)
    assert tracker.frames.background_done(timeout=120)
    # the prompted frame, then the two nearest frame 5 (5, then 4 before 6): the budget is full
    assert [i for i in range(10) if tracker.frames.features_if_cached(i) is not None] == [4, 5, 8]
    assert tracker.frames.encoder_calls == 3


def test_background_encoding_of_a_cache_nearly_full_evicts_nothing(tiny, tmp_path):
    # (features encoded before, by tracking or an earlier process, leave less than a frame's room)
    frames = moving_disc_frames(10)
    one = frame_feature_bytes(tiny, frames, tmp_path)
    tracker = VideoTracker(tiny, frames, cache_dir=tmp_path / "cache", feature_disk_budget=int(2.5 * one))
    tracker.frames.features(0), tracker.frames.features(1)
    tracker.frames.flush()
    tracker.encode_ahead(5)
    assert tracker.frames.background_done(timeout=120)
    tracker.frames.flush()
    assert sorted(tracker.frames.feature_store.keys()) == [f"{i:07d}" for i in (0, 1)]  # (on disk)
    assert tracker.frames.encoder_calls == 2


def test_other_footage_versions_leave_the_cache_when_it_is_over_its_budget(tiny, tmp_path):
    frames = ArraySource(moving_disc_frames(2))
    folders = {}
    for age, grade in ((3000, "grade-a"), (2000, "grade-b"), (0, "grade-c")):  # c: written just now
        cache = FrameFeatureCache(tiny, frames, tmp_path, colour_key=grade, disk_budget=None)
        cache.features(0), cache.features(1)
        cache.flush()
        folders[grade] = [cache.input_store.folder, cache.feature_store.folder]
        for folder in folders[grade]:
            os.utime(folder, (time.time() - age, time.time() - age))
    one = sum(f.stat().st_size for f in folders["grade-a"][0].iterdir()) + sum(
        f.stat().st_size for f in folders["grade-a"][1].iterdir())

    def left():
        return [g for g, fs in folders.items() if all(f.exists() for f in fs)]

    FrameFeatureCache(tiny, frames, tmp_path, colour_key="grade-d", disk_budget=int(2.5 * one / 1.25))
    assert left() == ["grade-b", "grade-c"]  # the oldest went; three fit in the budget no more, two do
    FrameFeatureCache(tiny, frames, tmp_path, colour_key="grade-d", disk_budget=int(0.5 * one / 1.25))
    assert left() == ["grade-c"]  # over the budget still, but c may be another tracker's at work


def test_frames_whose_prompts_are_gone_may_leave_a_full_cache(tiny, tmp_path):
    frames = moving_disc_frames(6)
    one = frame_feature_bytes(tiny, frames, tmp_path)
    tracker = VideoTracker(tiny, frames, cache_dir=tmp_path / "cache", feature_disk_budget=int(2.5 * one))
    tracker.add_prompt(2, 1, **CLICK)
    tracker.add_prompt(2, 2, points=[(240, 60)])
    tracker.add_prompt(4, 2, points=[(240, 80)])
    tracker.clear_prompt(2, 1)  # object 2 still has a prompt on frame 2
    tracker.remove_object(2)

    def cached():
        tracker.frames.flush()
        return [i for i in range(6) if f"{i:07d}" in tracker.frames.feature_store]

    tracker.frames.features(0)
    tracker.frames.features(1)
    assert cached() == [0, 1]  # frames 2 and 4 went to make room: no prompt holds them now
    tracker.add_prompt(1, 1, **CLICK)
    tracker.frames.features(3)
    tracker.frames.features(5)
    assert 1 in cached() and len(cached()) == 2  # a prompted frame stays


def test_a_propagation_pauses_the_background_encoder(tiny, tmp_path, monkeypatch):
    tracker = VideoTracker(tiny, moving_disc_frames(10), cache_dir=tmp_path)
    tracker.add_prompt(0, 1, **CLICK)
    started, running = [], threading.Event()
    encode = tracker.frames._encode
    monkeypatch.setattr(tracker.frames, "_encode", lambda i: started.append(
        (threading.current_thread().name, i, running.is_set())) or encode(i))
    tracker.encode_ahead(9)
    for frame, _ in tracker.propagate(end=5):
        if frame == 0:
            running.set()  # (from here until the run's last frame is handed out)
        elif frame == 5:
            running.clear()
    assert [i for name, i, during in started if during and name == "sam2roto-encoder"] == []
    assert {i for name, i, during in started if during} >= {2, 3, 4, 5}  # the run encoded its own frames
    assert tracker.frames.background_done(timeout=120)  # and the encoder went on after it
    assert all(tracker.frames.features_if_cached(i) is not None for i in range(10))


def test_a_propagation_ends_without_waiting_for_the_background_encoder(tiny, tmp_path, monkeypatch):
    """A run waits for its own frames to reach the disk, not for the whole shot's (with a disk
    slower than the encoder, the background would keep the writer busy to the shot's end)."""
    from sam2_core.cache.store import TensorStore

    tracker = VideoTracker(tiny, moving_disc_frames(10), cache_dir=tmp_path)
    tracker.add_prompt(0, 1, **CLICK)
    write = TensorStore._write_atomically

    def slow_features(store, *args, **kwargs):
        if "features" in store.folder.parts:
            time.sleep(1.0)
        return write(store, *args, **kwargs)

    monkeypatch.setattr(TensorStore, "_write_atomically", slow_features)
    tracker.encode_ahead(0)
    assert [frame for frame, _ in tracker.propagate(end=2)] == [0, 1, 2]
    assert not tracker.frames.background_done(timeout=0)
    assert all(tracker.frames.features_if_cached(i) is not None for i in range(3))
    tracker.close()


def test_background_encoder_meeting_a_full_disk_tells_the_foreground(tiny, tmp_path, monkeypatch):
    real_replace = os.replace

    def full_disk_for_features(src, dst):
        if "features" in Path(dst).parts:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    monkeypatch.setattr("sam2_core.cache.store.os.replace", full_disk_for_features)
    cache = FrameFeatureCache(tiny, ArraySource(moving_disc_frames(3)), tmp_path)
    cache.encode_in_background(0)
    assert cache.background_done(timeout=120)  # it stopped at the error
    with pytest.raises(CacheError, match="disk is full"):
        cache.flush()


def test_a_frame_read_ahead_while_the_disk_was_full_is_read_again_once_there_is_room(tiny, tmp_path, monkeypatch):
    real_replace = os.replace

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    frames = moving_disc_frames(3)
    cache = FrameFeatureCache(tiny, ArraySource(frames), tmp_path)
    monkeypatch.setattr("sam2_core.cache.store.os.replace", full_disk)
    cache.input_frame(0)  # read; caching it fails behind
    deadline = time.monotonic() + 60
    while cache.input_store._write_error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    cache.prefetch(1)  # read ahead now, its caching fails at once: the store knows the disk is full
    with pytest.raises(CacheError, match="disk is full"):
        cache.flush()  # the run's end: it waits for the frame read ahead, and reports the disk
    cache._reader.submit(lambda: None).result()  # (whatever was still being read is done,
    if cache.input_store._writer is not None:  # and its write tried, while the disk is full)
        cache.input_store._writer.join()
    monkeypatch.setattr("sam2_core.cache.store.os.replace", real_replace)
    # room again: the next run gets the frame, and caches it
    assert np.array_equal(cache.input_frame(1), resize_to_input(frames[1], tiny.cfg.image_size))
    cache.flush()
    assert "0000001" in cache.input_store.keys()
    cache.close()


def test_process_that_ends_while_encoding_in_background_exits_cleanly(tmp_path, official_checkpoint):
    np.save(tmp_path / "frames.npy", moving_disc_frames(6))
    child = textwrap.dedent(f"""
        import numpy as np
        from sam2_core import load_model
        from sam2_core.cache.features import FrameFeatureCache
        from sam2_core.media.frame_source import ArraySource
        model = load_model({NAME!r}, checkpoint={str(official_checkpoint(NAME))!r}, device="cpu",
                           image_size={input_size("cpu")})
        cache = FrameFeatureCache(model, ArraySource(np.load({str(tmp_path / "frames.npy")!r})),
                                  {str(tmp_path / "cache")!r})
        cache.encode_in_background(0)
        cache.features(5)  # by now the encoder thread is inside the network
        print("leaving", cache.background_done(0), flush=True)
    """)
    # (a thread left inside the network at interpreter shutdown aborts the process)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert done.stdout.split() == ["leaving", "False"]
    assert done.returncode == 0, done.stderr


def test_non_overlap_option(tiny, shared_cache):
    tracker = VideoTracker(tiny, moving_disc_frames(10), cache_dir=shared_cache, non_overlap=True)
    tracker.add_prompt(0, 1, points=[(60, 120)])
    second = tracker.add_prompt(0, 2, points=[(70, 125)])  # the same object: heavy overlap
    assert np.array_equal(second, tracker.logits(0, 2))
    outs = dict(tracker.propagate(end=1))
    for frame in (0, 1):
        assert not ((outs[frame][1] > 0) & (outs[frame][2] > 0)).any()
        assert ((outs[frame][1] > 0) | (outs[frame][2] > 0)).any()
        # what is read back (and exported) is what was handed out
        assert all(np.array_equal(tracker.logits(frame, i), outs[frame][i]) for i in (1, 2))
    # a run of one object keeps out of the other's results too
    alone = dict(tracker.propagate(start=1, end=1, objects=[1]))[1][1]
    assert not ((alone > 0) & (tracker.logits(1, 2) > 0)).any()


def test_hole_filling_matches_the_official_rule():
    from sam2.utils import misc

    misc.get_connected_components = connected_components
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 64, 64, generator=g) + 1.5  # foreground with scattered holes
    logits[1, 0, 10:20, 10:20] = -3  # one large hole that stays
    ref = misc.fill_holes_in_mask_scores(logits.clone(), 8)
    got = fill_small_holes(logits, 8)
    assert torch.equal(ref, got)
    assert (got != logits).any() and (got[1, 0, 12:18, 12:18] < 0).all()


@pytest.mark.parametrize("seed", range(6))
def test_hole_filling_equals_connected_components_on_random_masks(seed):
    """Dense and sparse background, thin diagonal chains, regions on the border, several
    area limits: the same holes as OpenCV's 8-connected components."""
    from sam2.utils import misc

    misc.get_connected_components = connected_components
    g = torch.Generator().manual_seed(seed)
    for density in (0.1, 0.3, 0.45, 0.6):
        logits = torch.rand(2, 1, 37, 53, generator=g) - density  # below zero: background
        for max_area in (1, 3, 8, 20):
            ref = misc.fill_holes_in_mask_scores(logits.clone(), max_area)
            assert torch.equal(fill_small_holes(logits, max_area), ref), (density, max_area)


def test_keep_top_object():
    logits = torch.tensor([[[[3.0, -1.0]]], [[[1.0, 2.0]]]])
    out = keep_top_object(logits)
    assert out[0, 0, 0, 0] == 3.0 and out[1, 0, 0, 0] == -10.0
    assert out[0, 0, 0, 1] == -10.0 and out[1, 0, 0, 1] == 2.0


def test_correction_reuses_the_conditioned_embedding_while_memory_is_unchanged(tiny, shared_cache, monkeypatch):
    tracker = VideoTracker(tiny, moving_disc_frames(10), cache_dir=shared_cache)
    tracker.add_prompt(0, 1, **CLICK)
    list(tracker.propagate(end=3))
    calls = []
    forward = tiny.memory_attention.forward
    monkeypatch.setattr(tiny.memory_attention, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    tracker.add_prompt(3, 1, points=[(114, 120)])
    assert calls == []  # frame 3's memories are those it was tracked with: no attention to run
    tracker.add_prompt(1, 1, points=[(78, 120)])  # a new conditioning frame changes frame 2's memories
    list(tracker.retrack(1))
    calls.clear()
    tracker.add_prompt(2, 1, points=[(96, 120)])
    assert calls == []  # frame 2 was just re-tracked with the new memories: reused
    tracker.add_prompt(0, 1, points=[(60, 120), (300, 200)], labels=[1, 0])  # frame 0 is a prompt frame again
    list(tracker.propagate(start=0, end=0))
    calls.clear()
    tracker.add_prompt(2, 1, points=[(96, 120), (10, 10)], labels=[1, 0])
    assert calls == [1]  # frame 0's new answer changed frame 2's memories: attention runs again


def test_features_are_keyed_by_weights_precision_and_footage(tiny, shared_cache):
    frames = moving_disc_frames(10)
    base = FrameFeatureCache(tiny, ArraySource(frames), shared_cache).feature_store.folder
    other_frames = FrameFeatureCache(tiny, ArraySource(frames[::-1]), shared_cache).feature_store.folder
    other_colour = FrameFeatureCache(tiny, ArraySource(frames), shared_cache, colour_key="ACEScg").feature_store.folder
    same_bytes_other_shape = FrameFeatureCache(tiny, ArraySource(frames.reshape(10, 320, 240, 3)),
                                               shared_cache).feature_store.folder
    old_id, old_dtype = tiny.weights_id, tiny.dtype
    try:
        tiny.weights_id = "another checkpoint"
        other_weights = FrameFeatureCache(tiny, ArraySource(frames), shared_cache).feature_store.folder
        tiny.weights_id, tiny.dtype = old_id, torch.bfloat16
        other_dtype = FrameFeatureCache(tiny, ArraySource(frames), shared_cache).feature_store.folder
    finally:
        tiny.weights_id, tiny.dtype = old_id, old_dtype
    # weights of unknown origin (a model not made by load_model) share features with none
    unknown = [FrameFeatureCache(SAM2(tiny.cfg), ArraySource(frames), shared_cache).feature_store.folder
               for _ in range(2)]
    folders = {base, other_frames, other_colour, same_bytes_other_shape, other_weights, other_dtype, *unknown}
    assert len(folders) == 8


def test_killed_while_tracking_then_resumed_gives_the_uninterrupted_result(tiny, shared_cache, tmp_path,
                                                                            official_checkpoint):
    """A persistent session survives SIGKILL mid-propagation: a new tracker on the same
    session folder has every finished frame and continues to the same result."""
    frames = moving_disc_frames(10)
    np.save(tmp_path / "frames.npy", frames)
    session = tmp_path / "session"
    child = textwrap.dedent(f"""
        import numpy as np
        from sam2_core import VideoTracker, load_model
        model = load_model({NAME!r}, checkpoint={str(official_checkpoint(NAME))!r}, device="cpu",
                           image_size={input_size("cpu")})
        tracker = VideoTracker(model, np.load({str(tmp_path / "frames.npy")!r}), cache_dir={str(shared_cache)!r},
                               session_dir={str(session)!r})
        tracker.add_prompt(0, 1, points=[(60, 120)])
        for frame, _ in tracker.propagate(end=4):
            print(frame, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    while proc.stdout.readline().strip() != "2":
        pass
    proc.kill()
    proc.wait()

    resumed = VideoTracker(tiny, frames, cache_dir=shared_cache, session_dir=session)
    assert resumed.object_ids == [1]
    done = [f for f in range(5) if resumed.logits(f, 1) is not None]
    assert done[:3] == [0, 1, 2] and done == list(range(len(done)))
    rest = dict(resumed.propagate(start=done[-1] + 1, end=4)) if done[-1] < 4 else {}

    uninterrupted = VideoTracker(tiny, frames, cache_dir=shared_cache)
    uninterrupted.add_prompt(0, 1, points=[(60, 120)])
    reference = dict(uninterrupted.propagate(end=4))
    for f in range(5):
        got = rest[f][1] if f in rest else resumed.logits(f, 1)
        assert_same_masks(reference[f][1], got)
    # and a correction after resuming behaves as in the uninterrupted session
    a = resumed.add_prompt(4, 1, points=[(132, 120)])
    b = uninterrupted.add_prompt(4, 1, points=[(132, 120)])
    assert_same_masks(b, a)


def test_clear_prompt_takes_back_a_correction_and_replay_gives_the_same_answer(tiny, shared_cache):
    tracker = VideoTracker(tiny, moving_disc_frames(10), cache_dir=shared_cache)
    first = tracker.add_prompt(0, 1, **CLICK)
    tracked = dict(tracker.propagate(end=3))
    tracker.add_prompt(2, 1, points=[(96, 120), (20, 20)], labels=[1, 0])  # a correction on a tracked frame
    tracker.clear_prompt(2, 1)
    # not tracked from yet: the frame is back as tracking left it
    assert np.array_equal(tracker.logits(2, 1), tracked[2][1]) and 2 not in tracker.prompted_frames()
    assert tracker.logits(3, 1) is not None  # the other frames keep their results
    again = dict(tracker.propagate(start=2, end=2))  # and tracks as if it had never been corrected
    assert_same_masks(again[2][1], tracked[2][1])
    # a correction tracked from takes its result with it when cleared
    tracker.add_prompt(2, 1, points=[(96, 120), (20, 20)], labels=[1, 0])
    list(tracker.propagate(start=2, end=2))
    tracked_from = tracker.logits(2, 1)
    # a click after that, taken back before tracking again: the frame is back as tracked from
    tracker.add_prompt(2, 1, points=[(96, 120), (20, 20), (300, 10)], labels=[1, 0, 0])
    tracker.clear_prompt(2, 1)
    assert np.array_equal(tracker.logits(2, 1), tracked_from) and tracker.prompted_frames() == [0, 2]
    assert tracker.pending_frames(1) == [] and tracker.was_tracked(2, 1)
    tracker.clear_prompt(2, 1)
    assert tracker.logits(2, 1) is None and 2 not in tracker.prompted_frames()
    # clearing the only prompt, then giving it again, answers as the first time
    tracker.clear_prompt(0, 1)
    with pytest.raises(ValueError, match="No object has a prompt"):
        list(tracker.propagate(end=1))
    assert_same_masks(tracker.add_prompt(0, 1, **CLICK), first)


def test_an_object_removed_and_prompted_afresh_during_a_run_waits_for_the_next_run(tiny, shared_cache):
    tracker = VideoTracker(tiny, moving_disc_frames(10), cache_dir=shared_cache)
    tracker.add_prompt(0, 1, **CLICK)
    tracker.add_prompt(0, 2, box=(205, 15, 275, 85))
    run = tracker.propagate(end=8)
    next(run), next(run)  # frames 0 and 1
    # "reset object": the artist removes it and starts it again on a later frame
    tracker.remove_object(1)
    answer = tracker.add_prompt(6, 1, points=[(168, 120)])
    rest = dict(run)  # the run goes on for the other object
    assert sorted(rest) == [2, 3, 4, 5, 6, 7, 8]
    assert all(set(rest[f]) == {2} for f in (2, 3, 4, 5, 7, 8))
    assert np.array_equal(rest[6][1], answer)  # its new prompt's answer stands on its frame
    assert tracker.logits(7, 1) is None and tracker.logits(5, 1) is None
    again = dict(tracker.propagate(start=6, end=8, objects=[1]))  # tracked from its new prompt
    assert sorted(again) == [6, 7, 8] and all(np.isfinite(again[f][1]).all() for f in again)


def test_a_click_where_no_memory_is_left_stands_alone(tiny, shared_cache):
    tracker = VideoTracker(tiny, moving_disc_frames(8), cache_dir=shared_cache)
    tracker.add_prompt(0, 1, **CLICK)
    list(tracker.propagate())
    tracker.clear_prompt(0, 1)  # frames 1-7 keep what was tracked from it
    tracker.add_prompt(5, 1, points=[(150, 120)])
    # frame 1 was tracked forward from frame 0, which has no result (nor memory) left
    logits = tracker.add_prompt(1, 1, points=[(78, 120)])
    assert np.isfinite(logits).all()
    out = dict(tracker.propagate())
    assert sorted(out) == list(range(1, 8)) and all(np.isfinite(out[f][1]).all() for f in out)


def test_a_correction_on_a_one_frame_shot(tiny, shared_cache):
    tracker = VideoTracker(tiny, moving_disc_frames(1), cache_dir=shared_cache)
    tracker.add_prompt(0, 1, **CLICK)
    list(tracker.propagate())
    corrected = tracker.add_prompt(0, 1, points=[(60, 120), (300, 200)], labels=[1, 0])
    # (the pointer's time encoding divided 0 by 0 here: NaN logits, an empty matte)
    assert np.isfinite(corrected).all() and np.isfinite(tracker.object_score(0, 1))
    assert corrected.max() > -1000


def test_conditioned_embeddings_on_disk_stay_within_their_budget(tiny, shared_cache, monkeypatch):
    from sam2_core.tracking import tracker as tracking

    entry = tiny.cfg.d_model * tiny.cfg.embedding_size**2 * 4  # one frame's, float32
    frames = moving_disc_frames(10)
    unbounded = VideoTracker(tiny, frames, cache_dir=shared_cache)
    monkeypatch.setattr(tracking, "CONDITIONED_DISK_BUDGET", int(2.5 * entry))
    bounded = VideoTracker(tiny, frames, cache_dir=shared_cache)
    for tracker in (unbounded, bounded):
        track(tracker, 7)
        tracker.conditioned.flush()
    assert unbounded.conditioned.disk_bytes > 6 * entry
    assert bounded.conditioned.disk_bytes <= 2.5 * entry
    # a correction on a frame whose embedding went runs the memory attention again: same answer
    correction = dict(points=[(96, 120), (20, 20)], labels=[1, 0])
    assert_same_masks(bounded.add_prompt(2, 1, **correction), unbounded.add_prompt(2, 1, **correction))


def test_a_correction_on_footage_rendered_again_uses_the_new_pixels_only(tiny, tmp_path):
    """A conditioned embedding kept from the old render is not reused with the new render's
    features: the answer is what a tracker without that entry gives."""
    import shutil

    import cv2

    from tests.sam2_core.tracking.conftest import write_png_clip

    clip = tmp_path / "clip"
    clip.mkdir()
    write_png_clip(clip, 4)
    session = tmp_path / "session"
    tracker = VideoTracker(tiny, clip, cache_dir=tmp_path / "cache", session_dir=session)
    track(tracker)
    tracker.close()
    for i, frame in enumerate(moving_disc_frames(4, seed=1)):  # the plate rendered again, same names
        cv2.imwrite(str(clip / f"plate.{1001 + i:04d}.png"), frame[:, :, ::-1])
    os.utime(clip / "plate.1001.png", (time.time() + 5, time.time() + 5))  # (a new mtime even on a coarse clock)
    without = tmp_path / "without"
    shutil.copytree(session, without)
    shutil.rmtree(without / "conditioned")
    answers = []
    for folder in (session, without):
        t = VideoTracker(tiny, clip, cache_dir=tmp_path / "cache", session_dir=folder)
        answers.append(t.add_prompt(2, 1, points=[(96, 120)]))
        t.close()
    assert np.abs(answers[0] - answers[1]).max() < 1e-4


def test_a_session_made_with_other_weights_starts_afresh(tiny, tmp_path, official_checkpoint):
    session = tmp_path / "session"
    tracker = VideoTracker(tiny, moving_disc_frames(4), cache_dir=tmp_path / "cache", session_dir=session)
    track(tracker)
    tracker.close()
    state = torch.load(official_checkpoint(NAME), map_location="cpu", weights_only=True)
    state["model"] = {k: v * 1.01 if v.is_floating_point() else v for k, v in state["model"].items()}
    torch.save(state, tmp_path / "retrained.pt")  # the checkpoint at the shot's path replaced
    other = load_model(NAME, checkpoint=tmp_path / "retrained.pt", image_size=tiny.cfg.image_size)
    again = VideoTracker(other, moving_disc_frames(4), cache_dir=tmp_path / "cache", session_dir=session)
    # another model's memories and results mean nothing to this one
    assert again.object_ids == [] and again.prompted_frames() == []
    again.close()


def test_results_made_by_two_processes_never_share_a_version():
    """A session reopened by another process must not give a new result the version of one
    since deleted: a conditioned embedding kept with that version would be taken as current."""
    code = "from sam2_core.tracking.memory_bank import new_version; print(new_version(), new_version())"
    firsts = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
              for _ in range(2)]
    assert len(set(firsts[0] + firsts[1])) == 4


@pytest.mark.parametrize("height, width", [(240, 320), (100, 150), (512, 512)])
def test_frames_are_resized_as_the_official_video_predictor_loads_them(tmp_path, height, width):
    """Bit for bit what its JPEG-folder loader makes of the same pixels (Pillow's bicubic)."""
    import cv2
    from sam2.utils.misc import _load_img_as_tensor

    noise = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "frame.png"), noise[:, :, ::-1])
    official, _, _ = _load_img_as_tensor(str(tmp_path / "frame.png"), 512)
    expected = (official.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(resize_to_input(noise, 512).numpy(), expected)


@pytest.mark.skipif(os.name != "posix", reason="finds ended processes by their pid")
def test_sessions_of_killed_processes_are_removed_and_live_ones_kept(tiny, tmp_path):
    """A tracker without a session folder works in one of its own under the cache, removed on
    close; one killed before it could close leaves it, and the next tracker removes it."""
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    import socket

    sessions, host = tmp_path / "sessions", socket.gethostname()
    killed, running = sessions / f"{host}@{ended.pid}-0123456789ab", sessions / f"{host}@{os.getppid()}-0123456789ab"
    elsewhere = sessions / f"another-computer@{ended.pid}-0123456789ab"  # (a cache on a shared disk)
    for folder in (killed, running, elsewhere):
        (folder / "results").mkdir(parents=True)
    tracker = VideoTracker(tiny, moving_disc_frames(2), cache_dir=tmp_path)
    assert not killed.exists() and running.exists() and elsewhere.exists()
    assert tracker.session_dir.parent == sessions and tracker.session_dir.name.startswith(f"{host}@{os.getpid()}-")
    tracker.close()
    assert sorted(p.name for p in sessions.iterdir()) == sorted([running.name, elsewhere.name])

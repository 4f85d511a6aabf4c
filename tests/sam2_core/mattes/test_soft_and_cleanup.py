"""Soft mattes follow the image; each clean-up step does what an artist expects."""

import re

import cv2
import numpy as np
import pytest

from sam2_core.mattes import Cleanup, soft_matte
from sam2_core.mattes.cleanup import feather, fill_holes, grow, remove_islands, temporal_smooth


def disc(h, w, cx, cy, r):
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 < r * r)


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def coarse_logits(mask: np.ndarray, factor: int) -> np.ndarray:
    """What the model gives: logits on a grid `factor` times coarser, upsampled bilinearly."""
    h, w = mask.shape
    small = cv2.resize(mask.astype(np.float32), (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    logits_small = (small - 0.5) * 12
    return cv2.resize(logits_small, (w, h), interpolation=cv2.INTER_LINEAR)


def test_soft_matte_edges_follow_the_image():
    h, w = 480, 640
    truth = disc(h, w, 300.3, 241.7, 123.4)
    plate = np.where(truth[..., None], np.array([200, 60, 50], np.uint8), np.array([40, 90, 120], np.uint8))
    logits = coarse_logits(truth, 8)
    plain = soft_matte(logits)
    guided = soft_matte(logits, plate)
    assert plain.dtype == np.float32 and 0 <= guided.min() and guided.max() <= 1
    edge = cv2.dilate(truth.astype(np.uint8), np.ones((9, 9))) != cv2.erode(truth.astype(np.uint8), np.ones((9, 9)))
    err_plain = np.abs(plain - truth)[edge].mean()
    err_guided = np.abs(guided - truth)[edge].mean()
    assert err_guided < 0.95 * err_plain  # closer to the image's edge than the model grid's
    assert iou(guided > 0.5, truth) > iou(plain > 0.5, truth)
    assert iou(guided > 0.5, truth) > 0.999


def test_the_plate_does_not_filter_away_what_the_model_is_sure_of():
    """A small ball the model is sure of stays whole in 1080p, whether the plate shows it faintly,
    not at all, or only in colour (red on green, the same grey)."""
    h, w = 1080, 1920
    ball = disc(h, w, 500, 500, 6)
    logits = np.where(ball, 12.0, -12.0).astype(np.float32)
    faint = np.full((h, w, 3), 100, np.uint8)
    faint[ball] = 103
    red_on_green = np.zeros((h, w, 3), np.uint8)
    red_on_green[..., 1] = 150
    red_on_green[ball] = (255, 75, 0)
    for plate in (faint, np.full((h, w, 3), 100, np.uint8), red_on_green):
        alpha = soft_matte(logits, plate)
        assert alpha[ball].min() > 0.98 and alpha[cv2.dilate(ball.astype(np.uint8), np.ones((3, 3))) == 0].max() < 0.02


def test_soft_matte_is_sigmoid_of_logits_without_a_plate():
    logits = np.array([[-100.0, 0.0, 100.0, 2.0]], np.float32)
    out = soft_matte(logits)
    assert out[0, 0] == 0.0 and out[0, 1] == 0.5 and out[0, 2] == 1.0
    assert out[0, 3] == pytest.approx(1 / (1 + np.exp(-2)), abs=1e-6)


def test_fill_holes_only_enclosed_and_small():
    a = disc(100, 100, 50, 50, 30).astype(np.float32)
    a[48:51, 48:51] = 0  # 9 px hole
    a[20:40, 45:55] = 0  # 200 px gap that opens ... inside still
    a[0:5, 0:5] = 0  # background touching the border: never a hole
    out = fill_holes(a, 20)
    assert out[49, 49] == 1.0 and out[30, 50] == 0.0 and out[0, 0] == 0.0


def test_a_filled_hole_leaves_no_ring_of_partial_alpha():
    yy, xx = np.mgrid[0:100, 0:100] + 0.5
    distance = np.minimum(30 - np.hypot(xx - 50, yy - 50), np.hypot(xx - 50, yy - 50) - 3)  # disc with a hole
    alpha = soft_matte((2 * distance).astype(np.float32))
    assert alpha[50, 50] < 0.02 and 0.5 < alpha[50, 53] < 0.99  # a hole, and the soft ring around it
    out = fill_holes(alpha, 100)
    assert out[35:65, 35:65].min() >= 0.99 and (out[np.hypot(xx - 50, yy - 50) < 5] == 1).all()
    assert np.array_equal(out[np.hypot(xx - 50, yy - 50) > 20], alpha[np.hypot(xx - 50, yy - 50) > 20])
    near_the_edge = alpha.copy()  # a hole whose ring runs into the object's own soft edge keeps that edge
    near_the_edge[48:51, 73:76] = 0
    out = fill_holes(near_the_edge, 100)
    assert (out[48:51, 73:76] == 1).all() and np.array_equal(out[:, 77:], near_the_edge[:, 77:])
    see_through = np.where(np.hypot(xx - 50, yy - 50) < 30, 1.0, 0.0).astype(np.float32)
    see_through[np.hypot(xx - 50, yy - 50) < 22] = 0.7  # hair or glass, with a speck of background in it
    see_through[49:52, 49:52] = 0
    out = fill_holes(see_through, 100)
    assert (out[49:52, 49:52] == 1).all() and np.array_equal(out[see_through != 0], see_through[see_through != 0])


def test_remove_islands_keeps_the_object():
    a = disc(100, 100, 40, 40, 20).astype(np.float32)
    a[85:88, 85:88] = 1.0  # 9 px speck
    a[84, 84] = 0.3  # its soft fringe
    out = remove_islands(a, 20)
    assert out[86, 86] == 0 and out[84, 84] == 0
    assert np.array_equal(out[:70, :70], a[:70, :70])


def test_grow_shrink_and_feather():
    a = disc(100, 100, 50, 50, 20).astype(np.float32)
    area = a.sum()
    assert grow(a, 3).sum() > area * 1.2 and grow(a, -3).sum() < area * 0.8
    f = feather(a, 4)
    assert 0 < f[50, 30] < 1 and f[50, 50] == pytest.approx(1, abs=1e-3) and f[0, 0] == pytest.approx(0, abs=1e-3)


def test_a_fraction_of_a_pixel_grows_and_shrinks_by_that_fraction():
    a = disc(100, 100, 50, 50, 20).astype(np.float32)
    for sign in (1, -1):
        areas = [grow(a, sign * p).sum() for p in (0.25, 0.5, 1, 1.5, 2, 2.5)]
        assert areas == sorted(areas, reverse=sign < 0) and len(set(areas)) == len(areas)  # each step differs
        assert grow(a, sign * 1.5).sum() == pytest.approx((grow(a, sign).sum() + grow(a, sign * 2).sum()) / 2)
    assert np.array_equal(grow(a, 2.0), grow(a, 2))


def test_temporal_smoothing_removes_a_one_frame_flicker_and_keeps_order():
    frames = [(1001 + i, np.full((4, 4), 1.0, np.float32)) for i in range(7)]
    frames[3] = (1004, np.zeros((4, 4), np.float32))  # the matte vanishes for one frame
    out = list(temporal_smooth(frames, 1))
    assert [n for n, _ in out] == [n for n, _ in frames]
    assert out[3][1][0, 0] == pytest.approx(0.5)  # (1 + 2*0 + 1) / 4
    assert out[0][1][0, 0] == 1.0 and out[6][1][0, 0] == 1.0
    still = [(i, np.full((2, 2), 0.7, np.float32)) for i in range(5)]
    assert all(np.allclose(a, 0.7) for _, a in temporal_smooth(still, 2))


def test_cleanup_settings_round_trip_and_reject_unknown():
    c = Cleanup(grow=2, feather=1.5, fill_holes=50, remove_islands=10, temporal=1)
    assert Cleanup.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="Unknown clean-up settings: blur"):
        Cleanup.from_dict({"blur": 3})
    for name, bad in (("grow", "2"), ("feather", -1), ("fill_holes", 2.5), ("temporal", True),
                      ("remove_islands", float("nan")), ("remove_islands", 10 ** 400)):
        with pytest.raises(ValueError, match=f"clean-up setting {name} must be"):
            Cleanup.from_dict({name: bad})
    # beyond their limits a step would take minutes a frame, or hold that many frames in memory
    for name, bad, rule in (("grow", 1e6, "a number from -100 to 100 (pixels)"), ("grow", -101, "a number from -100"),
                            ("feather", 1e308, "a number from 0 to 200 (pixels)"),
                            ("temporal", 26, "a whole number from 0 to 25 (frames)")):
        with pytest.raises(ValueError, match=re.escape(f"clean-up setting {name} must be {rule}")):
            Cleanup.from_dict({name: bad})
    assert Cleanup.from_dict({"grow": -2, "fill_holes": 3.0}) == Cleanup(grow=-2.0, fill_holes=3)
    specks = np.zeros((16, 16), np.float32)  # (areas larger than the frame: every speck and hole)
    specks[2:4, 2:4] = specks[9:11, 9:11] = 1
    assert Cleanup.from_dict({"remove_islands": 1e300}).apply(specks).max() == 0
    assert Cleanup.from_dict({"fill_holes": 1e300}).apply(1 - specks).min() == 1
    a = disc(64, 64, 32, 32, 12).astype(np.float32)
    out = list(c.run([(1, a), (2, a), (3, a)]))
    assert len(out) == 3 and all(0 <= o.min() and o.max() <= 1 for _, o in out)

"""ImagePredictor input handling: bad input gets an error that says what to give."""

import numpy as np
import pytest

from sam2_core import ImagePredictor, load_model
from sam2_core.model.mask_decoder import MaskDecoder
from tests.conftest import make_image

NAME = "sam2.1_hiera_tiny"


@pytest.fixture(scope="module")
def predictor(official_checkpoint):
    p = ImagePredictor(load_model(NAME, checkpoint=official_checkpoint(NAME), device="cpu"))
    return p


def test_predict_before_set_image(official_checkpoint):
    p = ImagePredictor(load_model(NAME, checkpoint=official_checkpoint(NAME), device="cpu"))
    with pytest.raises(RuntimeError, match="set_image"):
        p.predict(points=[(1, 1)])


@pytest.mark.parametrize("bad, match", [
    (np.zeros((10, 10), np.uint8), "shape"),
    (np.zeros((10, 10, 4), np.uint8), "shape"),
    (np.zeros((10, 10, 3), np.float32), "8-bit"),
    (np.zeros((0, 10, 3), np.uint8), "empty"),
])
def test_bad_images(predictor, bad, match):
    with pytest.raises(ValueError, match=match):
        predictor.set_image(bad)


def test_any_image_size_and_bad_prompts(predictor):
    img = make_image(37, 1001, seed=2)  # tiny and very wide
    predictor.set_image(img)
    masks, scores, low_res = predictor.predict(points=[(500, 20)])  # labels default to 1
    assert masks.shape == (3, 37, 1001) and scores.shape == (3,) and low_res.shape == (3, 256, 256)
    assert np.abs(low_res).max() <= 32.0
    with pytest.raises(ValueError, match="one label per point"):
        predictor.predict(points=[(1, 1), (2, 2)], labels=[1])
    with pytest.raises(ValueError, match="1 \\(object\\) or 0"):
        predictor.predict(points=[(1, 1)], labels=[2])
    with pytest.raises(ValueError, match="x0, y0, x1, y1"):
        predictor.predict(box=(1, 2, 3))
    with pytest.raises(ValueError, match="low-res logits"):
        predictor.predict(mask=np.zeros((1, 64, 64)))


def test_stability_fallback_picks_best_multimask_only_when_unstable():
    import torch

    dec = MaskDecoder.__new__(MaskDecoder)  # pick_stable needs no weights
    masks = torch.zeros(2, 4, 8, 8)
    masks[0, 0] = 5.0  # object 0: single mask clearly decided -> stable
    masks[1, 0] = 0.01  # object 1: single mask hovers at 0 -> unstable
    masks[1, 0, 0, 0] = 5.0
    masks[:, 1:] = torch.arange(1, 4).float().view(1, 3, 1, 1)
    iou = torch.tensor([[0.5, 0.1, 0.9, 0.2], [0.5, 0.1, 0.9, 0.2]])
    out, out_iou = MaskDecoder.pick_stable(dec, masks, iou)
    assert torch.equal(out[0, 0], masks[0, 0]) and out_iou[0, 0] == 0.5
    assert torch.equal(out[1, 0], masks[1, 2]) and out_iou[1, 0] == pytest.approx(0.9)

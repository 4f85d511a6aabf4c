"""Outputs equal the official implementation's for the same random weights and inputs.

Runs for SAM 2.1 tiny and SAM 2 small (the other parameter set: no spatial no-object
embedding, no pointer time projection). Tolerance: max |logit difference| <= 1e-3 and
identical masks except where |logit| < 1e-3."""

import numpy as np
import pytest
import torch

from sam2_core import ImagePredictor, load_model
from sam2_core.model import memory_attention
from sam2_core.model.transforms import image_to_input
from tests.conftest import make_image
from tests.official import official_image_predictor

TOL = 1e-3
NAMES = ["sam2.1_hiera_tiny", "sam2_hiera_small"]
IMAGES = {"landscape": (480, 640), "portrait": (700, 380)}


@pytest.fixture(scope="module", params=NAMES)
def pair(request, official_models, official_checkpoint):
    name = request.param
    official = official_models(name)
    ours = load_model(name, checkpoint=official_checkpoint(name), device="cpu")
    return name, official, ours


@pytest.fixture(scope="module")
def predictors(pair):
    """Both image predictors on both test images, images encoded once."""
    _, official, ours = pair
    out = {}
    for key, (h, w) in IMAGES.items():
        img = make_image(h, w, seed=len(key))
        op, ip = official_image_predictor(official), ImagePredictor(ours)
        op.set_image(img)
        ip.set_image(img)
        out[key] = (op, ip, img)
    return out


def assert_logits_equal(official: np.ndarray, ours: np.ndarray):
    assert official.shape == ours.shape
    assert np.abs(official - ours).max() <= TOL
    decided = np.abs(official) >= TOL
    assert np.array_equal(official[decided] > 0, ours[decided] > 0)


def test_image_encoder_features(pair):
    _, official, ours = pair
    img = make_image(512, 768, seed=7)
    x = image_to_input(img, 1024, "cpu")
    with torch.no_grad():
        ref = official.forward_image(x)
        got = ours.encode_image(x)
    for a, b in zip(ref["backbone_fpn"][-3:], got.levels):
        assert a.shape == b.shape
        assert (a - b).abs().max().item() <= TOL
    for a, b in zip(ref["vision_pos_enc"][-3:], got.pos):
        assert (a - b).abs().max().item() <= TOL


PROMPTS = {
    "one click, multimask": dict(points=[(210, 140)], labels=[1], multimask=True),
    "clicks, single mask": dict(points=[(210, 140), (60, 300), (330, 90)], labels=[1, 0, 1], multimask=False),
    "box": dict(box=(40, 50, 330, 300), multimask=False),
    "box and a negative click, multimask": dict(box=(40, 50, 330, 300), points=[(150, 150)], labels=[0],
                                                multimask=True),
}


@pytest.mark.parametrize("image", sorted(IMAGES))
@pytest.mark.parametrize("prompt", sorted(PROMPTS))
def test_predict_equals_official(predictors, image, prompt):
    op, ip, img = predictors[image]
    kw = PROMPTS[prompt]
    ref = op.predict(point_coords=kw.get("points"), point_labels=kw.get("labels"), box=kw.get("box"),
                     multimask_output=kw["multimask"], return_logits=True)
    got = ip.predict(**kw, return_logits=True)
    n = 3 if kw["multimask"] else 1
    assert got[0].shape == (n, *img.shape[:2])
    for a, b in zip(ref, got):
        assert_logits_equal(a, b)
    # the boolean masks are the logits thresholded at 0
    masks = ip.predict(**kw)[0]
    assert masks.dtype == bool and np.array_equal(masks, got[0] > 0)


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_mask_prompt_feedback_equals_official(predictors, image):
    """The low-res logits of one prediction fed back with a new click, and alone."""
    op, ip, _ = predictors[image]
    first_ref = op.predict(point_coords=[(120, 200)], point_labels=[1], multimask_output=True)
    first = ip.predict(points=[(120, 200)], labels=[1], multimask=True)
    best = int(np.argmax(first[1]))
    assert best == int(np.argmax(first_ref[1]))
    low_res = first[2][best: best + 1]
    ref = op.predict(point_coords=[(120, 200), (250, 90)], point_labels=[1, 0], mask_input=low_res,
                     multimask_output=False, return_logits=True)
    got = ip.predict(points=[(120, 200), (250, 90)], labels=[1, 0], mask=low_res, multimask=False,
                     return_logits=True)
    for a, b in zip(ref, got):
        assert_logits_equal(a, b)
    ref = op.predict(mask_input=low_res, multimask_output=False, return_logits=True)
    got = ip.predict(mask=low_res, multimask=False, return_logits=True)
    for a, b in zip(ref, got):
        assert_logits_equal(a, b)


def test_sam_heads_memory_encoder_and_attention_equal_official(pair, monkeypatch):
    """The tracking-side parts: SAM heads with the object pointer, the memory encoder
    (with the no-object embedding) and the memory attention over memories + pointers."""
    name, official, ours = pair
    g = torch.Generator().manual_seed(11)
    emb = torch.randn(2, 256, 64, 64, generator=g)
    high_res = [torch.randn(2, 32, 256, 256, generator=g), torch.randn(2, 64, 128, 128, generator=g)]
    coords = torch.rand(2, 2, 2, generator=g) * 1024
    labels = torch.tensor([[1, 0], [1, 1]], dtype=torch.int32)
    with torch.no_grad():
        for multimask in (True, False):
            ref = official._forward_sam_heads(emb, {"point_coords": coords, "point_labels": labels},
                                              None, high_res, multimask)
            got = ours.sam_heads(emb, high_res, coords, labels, None, multimask)
            pairs = [(ref[0], got.multi_logits), (ref[2], got.iou), (ref[3], got.logits),
                     (ref[4], got.logits_high_res), (ref[5], got.obj_ptr), (ref[6], got.object_score)]
            for a, b in pairs:
                assert a.shape == b.shape
                assert (a - b).abs().max().item() <= TOL

        # memory of frame predictions; one object forced absent to use the no-object embedding
        feats = [emb.flatten(2).permute(2, 0, 1)]
        mask_hr = torch.randn(2, 1, 1024, 1024, generator=g) * 5
        score = torch.tensor([[3.0], [-2.0]])
        for binarize in (False, True):
            official.binarize_mask_from_pts_for_mem_enc = binarize
            ref_mem, ref_pos = official._encode_new_memory(feats, [(64, 64)], mask_hr, score, binarize)
            mem, pos = ours.encode_memory(emb, mask_hr, score, binarize)
            assert (ref_mem - mem).abs().max().item() <= TOL
            assert (ref_pos[0] - pos).abs().max().item() <= TOL

        # attention over two frames' memories and 4 object pointers split into 16 tokens
        n_ptr_tokens = 16
        memory = torch.randn(2, 2 * 4096 + n_ptr_tokens, 64, generator=g)
        memory_pos = torch.randn(2, 2 * 4096 + n_ptr_tokens, 64, generator=g)
        pos = torch.randn(2, 256, 64, 64, generator=g)
        ref = official.memory_attention(
            curr=[emb.flatten(2).permute(2, 0, 1)], curr_pos=[pos.flatten(2).permute(2, 0, 1)],
            memory=memory.transpose(0, 1), memory_pos=memory_pos.transpose(0, 1),
            num_obj_ptr_tokens=n_ptr_tokens)
        got = ours.memory_attention(emb, pos, memory, memory_pos, n_ptr_tokens)
        ref = ref.permute(1, 2, 0).reshape(2, 256, 64, 64)
        assert (ref - got).abs().max().item() <= TOL
        # the other way to the same sum, taken in bfloat16 on CPUs without AMX, is exact too
        # (in blocks of queries that do not divide the 4096: a shorter last block)
        with monkeypatch.context() as m:
            m.setattr(memory_attention, "weights_before_values", lambda *args: True)
            m.setattr(memory_attention.RoPEAttention, "QUERY_BLOCK", 1000)
            unprojected = ours.memory_attention(emb, pos, memory, memory_pos, n_ptr_tokens)
        assert (ref - unprojected).abs().max().item() <= TOL


def test_pointer_time_encoding_equals_official(pair):
    from sam2.modeling.sam2_utils import get_1d_sine_pe

    name, official, ours = pair
    dist = torch.tensor([0, 1, -3, 7, 15])
    with torch.no_grad():
        got = ours.pointer_time_encoding(dist, 15)
        if name.startswith("sam2.1"):
            ref = official.obj_ptr_tpos_proj(get_1d_sine_pe(dist / 15, dim=256))
        else:
            ref = torch.zeros(len(dist), 64)
    assert (ref - got).abs().max().item() <= TOL

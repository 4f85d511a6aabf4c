"""Devices and precisions: what exists is used, what does not is a clear error, and
bfloat16 agrees with the float32 reference."""

import copy

import numpy as np
import pytest
import torch

from sam2_core import ImagePredictor, load_model
from sam2_core.model import memory_attention
from sam2_core.model.loading import resolve_device, resolve_dtype
from tests.conftest import make_image

NAME = "sam2.1_hiera_tiny"


def test_auto_picks_an_available_device():
    dev = resolve_device("auto")
    if torch.cuda.is_available():
        assert dev.type == "cuda"
    elif torch.backends.mps.is_available():
        assert dev.type == "mps"
    else:
        assert dev.type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_cuda_is_a_clear_error(official_checkpoint):
    with pytest.raises(ValueError, match="no usable CUDA"):
        load_model(NAME, checkpoint=official_checkpoint(NAME), device="cuda")


def test_bad_device_and_dtype_names():
    with pytest.raises(ValueError, match="Unsupported device"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="float32, bfloat16, float16"):
        resolve_dtype("float8", torch.device("cpu"))
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16


def test_bfloat16_agrees_with_float32_where_float32_is_decided(official_checkpoint, record_property):
    path = official_checkpoint(NAME)
    ref = ImagePredictor(load_model(NAME, checkpoint=path, device="cpu", dtype="float32"))
    low = ImagePredictor(load_model(NAME, checkpoint=path, device="cpu", dtype="bfloat16"))
    img = make_image(480, 640, seed=5)
    ref.set_image(img)
    low.set_image(img)
    assert low._features.levels[0].dtype == torch.bfloat16  # it really ran in bfloat16

    decided_agree = decided_total = all_agree = all_total = 0
    prompts = [dict(points=[(200, 150)], labels=[1]), dict(box=(50, 40, 400, 350), multimask=False),
               dict(points=[(300, 300), (100, 100)], labels=[1, 0], multimask=False)]
    for kw in prompts:
        a = ref.predict(**kw, return_logits=True)[0]
        b = low.predict(**kw, return_logits=True)[0]
        decided = np.abs(a) >= 1
        decided_agree += int(((a > 0) == (b > 0))[decided].sum())
        decided_total += int(decided.sum())
        all_agree += int(((a > 0) == (b > 0)).sum())
        all_total += a.size
    decided_rate, all_rate = decided_agree / decided_total, all_agree / all_total
    record_property("bf16_agreement_decided", decided_rate)
    record_property("bf16_agreement_all_pixels", all_rate)
    print(f"bfloat16 vs float32 mask agreement: {decided_rate:.4%} where |logit| >= 1 "
          f"({decided_total} px), {all_rate:.4%} of all pixels")
    assert decided_total > 0.05 * all_total  # enough decided pixels to mean something
    assert decided_rate >= 0.995


@pytest.mark.parametrize("unprojected", [False, True], ids=["projected values", "weights before values"])
def test_bfloat16_memory_attention_is_as_close_to_float32_as_the_officials(
        official_models, official_checkpoint, monkeypatch, unprojected):
    """Both ways of attending to the memories in bfloat16 (the CPU without AMX takes the
    second) stay as close to float32 as the official memory attention under bfloat16 autocast."""
    official = official_models(NAME)
    ours = load_model(NAME, checkpoint=official_checkpoint(NAME), device="cpu", dtype="bfloat16")
    asked = []  # the precision each attention sees when it chooses its way
    monkeypatch.setattr(memory_attention, "weights_before_values", lambda q: asked.append(q.dtype) or unprojected)
    g = torch.Generator().manual_seed(4)
    n_ptr_tokens = 16
    emb, pos = torch.randn(2, 1, 256, 64, 64, generator=g)
    memory, memory_pos = torch.randn(2, 1, 3 * 4096 + n_ptr_tokens, 64, generator=g)

    def official_attention():
        out = official.memory_attention(
            curr=[emb.flatten(2).permute(2, 0, 1)], curr_pos=[pos.flatten(2).permute(2, 0, 1)],
            memory=memory.transpose(0, 1), memory_pos=memory_pos.transpose(0, 1), num_obj_ptr_tokens=n_ptr_tokens)
        return out.float().permute(1, 2, 0).reshape(1, 256, 64, 64)

    with torch.inference_mode():
        reference = official_attention()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            official_low = official_attention()
        with ours.precision():
            ours_low = ours.memory_attention(emb, pos, memory, memory_pos, n_ptr_tokens).float()
    assert asked == [torch.bfloat16] * 8  # (4 layers, 2 attentions each, under the model's autocast)
    official_error, ours_error = (official_low - reference).abs(), (ours_low - reference).abs()
    assert 0 < official_error.mean() < 0.1 * reference.abs().mean()  # bfloat16 really differs, a little
    assert ours_error.mean() <= 1.1 * official_error.mean()
    assert ours_error.max() <= 1.5 * official_error.max()


def test_weights_held_in_bfloat16_give_exactly_the_autocast_results(official_checkpoint):
    """Linear and convolution weights are held in the working precision, as autocast
    would cast them: the results equal those of float32 weights under autocast, bit for bit."""
    held = load_model(NAME, checkpoint=official_checkpoint(NAME), device="cpu", dtype="bfloat16", image_size=256)
    assert held.memory_attention.layers[0].linear1.weight.dtype == torch.bfloat16
    assert held.sam_mask_decoder.conv_s0.weight.dtype == torch.bfloat16
    assert held.memory_attention.norm.weight.dtype == torch.float32  # (autocast runs norms in float32)
    assert held.no_mem_embed.dtype == torch.float32
    cast_each_call = copy.deepcopy(held).float()  # float32 weights: autocast casts them on every call
    assert cast_each_call.dtype == torch.bfloat16  # (still runs under bfloat16 autocast)
    img = make_image(200, 300, seed=3)
    answers = []
    for model in (held, cast_each_call):
        pred = ImagePredictor(model)
        pred.set_image(img)
        answers.append([pred.predict(points=[(120, 90)], labels=[1], return_logits=True)[0],
                        pred.predict(box=(20, 30, 250, 180), multimask=False, return_logits=True)[0]])
    for a, b in zip(*answers):
        np.testing.assert_array_equal(a, b)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_cuda
def test_cuda_equals_official_on_cuda(official_models, official_checkpoint, monkeypatch):
    """float32 on a GPU: the same answer as the official predictor on that GPU. (PyTorch
    lets cuDNN run float32 convolutions in TF32 by default, where the two differ by the
    choice of kernel alone; the math is compared in full float32.)"""
    import copy

    from tests.official import official_image_predictor

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)

    official = official_image_predictor(copy.deepcopy(official_models(NAME)).to("cuda"))
    ours = ImagePredictor(load_model(NAME, checkpoint=official_checkpoint(NAME), device="cuda"))
    img = make_image(480, 640, seed=5)
    official.set_image(img)
    ours.set_image(img)
    assert ours._features.levels[0].is_cuda
    for kw in (dict(points=[(200, 150)], labels=[1], multimask=True),
               dict(box=(50, 40, 400, 350), points=[(100, 100)], labels=[0], multimask=False)):
        ref = official.predict(point_coords=kw.get("points"), point_labels=kw.get("labels"), box=kw.get("box"),
                               multimask_output=kw["multimask"], return_logits=True)
        got = ours.predict(**kw, return_logits=True)
        for a, b in zip(ref, got):
            assert a.shape == b.shape
            assert np.abs(a - b).max() <= 1e-3
            decided = np.abs(a) >= 1e-3
            assert np.array_equal(a[decided] > 0, b[decided] > 0)


@needs_cuda
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_on_cuda_agrees_with_float32(official_checkpoint, dtype):
    path = official_checkpoint(NAME)
    ref = ImagePredictor(load_model(NAME, checkpoint=path, device="cuda", dtype="float32"))
    low = ImagePredictor(load_model(NAME, checkpoint=path, device="cuda", dtype=dtype))
    img = make_image(480, 640, seed=5)
    ref.set_image(img)
    low.set_image(img)
    assert low._features.levels[0].dtype == getattr(torch, dtype)
    a = ref.predict(points=[(200, 150)], labels=[1], return_logits=True)[0]
    b = low.predict(points=[(200, 150)], labels=[1], return_logits=True)[0]
    decided = np.abs(a) >= 1
    assert decided.sum() > 0.05 * a.size
    assert ((a > 0) == (b > 0))[decided].mean() >= 0.995

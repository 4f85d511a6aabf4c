"""The compiled image encoder: the same features as the module, one graph, and a compilation
that fails costs a warning, not the frame."""

import dataclasses
import logging
import threading

import pytest
import torch
from torch._dynamo.utils import counters

from sam2_core import load_model
from sam2_core.model import compiled
from sam2_core.model.compiled import CompiledImageEncoder, worth_compiling
from sam2_core.model.configs import HieraConfig, get_config
from sam2_core.model.sam2 import SAM2

NAME = "sam2.1_hiera_tiny"


def small_model() -> SAM2:
    """A random SAM 2.1 with a four-block trunk at 128 pixels: every kind of encoder layer,
    compiled in seconds rather than a minute."""
    cfg = dataclasses.replace(get_config(NAME), image_size=128,
                              hiera=HieraConfig(16, 1, (1, 1, 1, 1), (2,), (4, 4, 4, 4), (7, 7)))
    torch.manual_seed(0)
    return SAM2(cfg).eval()


def test_compiled_encoder_gives_the_modules_features_from_one_graph(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))  # cold, and nothing left in /tmp
    torch._dynamo.reset()
    counters.clear()
    model, reference = small_model(), small_model()  # (the same weights: nothing ran on `model` yet)
    model.compiled_image_encoder = CompiledImageEncoder(model.image_encoder)
    x, y = torch.randn(2, 1, 3, 128, 128)
    got = {}

    def encode(key, images):
        with torch.inference_mode():
            got[key] = model.encode_image(images)

    # the first frame compiles on a thread, as a shot's background encoding does; the next
    # frame, on another thread, must reuse that graph
    for key, images in (("x", x), ("y", y)):
        worker = threading.Thread(target=encode, args=(key, images))
        worker.start()
        worker.join()
    with torch.inference_mode():
        expected = {"x": reference.encode_image(x), "y": reference.encode_image(y)}
    try:
        assert not model.compiled_image_encoder.failed
        assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"]
        for key in "xy":
            for a, b in zip(expected[key].levels + expected[key].pos, got[key].levels + got[key].pos):
                assert a.shape == b.shape
                torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
        assert not torch.equal(got["y"].levels[2], got["x"].levels[2])  # a new image, not a stale answer
    finally:
        torch._dynamo.reset()


def test_a_failed_compilation_warns_once_and_runs_the_module(monkeypatch, caplog):
    calls = []

    def broken_compile(module, **options):
        def run(images):
            calls.append(images.shape)
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")
        return run

    monkeypatch.setattr(compiled.torch, "compile", broken_compile)
    model = small_model()
    x = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        expected = model.encode_image(x)
        model.compiled_image_encoder = CompiledImageEncoder(model.image_encoder)
        with caplog.at_level(logging.WARNING, logger=compiled.__name__):
            got = [model.encode_image(x) for _ in range(3)]
    assert len(calls) == 1  # tried once, then the module alone
    assert model.compiled_image_encoder.failed
    warnings = [r for r in caplog.records if r.name == compiled.__name__]
    assert len(warnings) == 1
    assert "InvalidCxxCompiler: No working C++ compiler found" in warnings[0].getMessage()
    assert "more detail" not in warnings[0].getMessage() and "C++ compiler" in warnings[0].getMessage()
    for g in got:
        for a, b in zip(expected.levels, g.levels):
            assert torch.equal(a, b)


def test_worth_compiling_only_bfloat16_on_a_cpu_with_amx(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert worth_compiling(cpu, torch.bfloat16)
    assert not worth_compiling(cpu, torch.float32)
    assert not worth_compiling(cuda, torch.bfloat16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert not worth_compiling(cpu, torch.bfloat16)


def test_load_model_compiles_when_asked(official_checkpoint, monkeypatch):
    ckpt = official_checkpoint(NAME)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert load_model(NAME, checkpoint=ckpt, device="cpu").compiled_image_encoder is None
    assert load_model(NAME, checkpoint=ckpt, device="cpu", dtype="bfloat16",
                      compile_encoder="auto").compiled_image_encoder is None
    model = load_model(NAME, checkpoint=ckpt, device="cpu", compile_encoder=True)
    assert isinstance(model.compiled_image_encoder, CompiledImageEncoder)
    assert model.compiled_image_encoder.encoder is model.image_encoder
    assert not any("compiled" in k for k in model.state_dict())  # the weights file's keys, unchanged
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert load_model(NAME, checkpoint=ckpt, device="cpu", dtype="bfloat16",
                      compile_encoder="auto").compiled_image_encoder is not None
    with pytest.raises(ValueError, match="compile_encoder='yes': use True, False or 'auto'"):
        load_model(NAME, checkpoint=ckpt, device="cpu", compile_encoder="yes")


@pytest.mark.parametrize("setting, compiles", [("on", True), ("ON ", True), ("off", False), ("", False),
                                               ("auto", False)])
def test_the_environment_setting_reaches_every_host(official_checkpoint, monkeypatch, setting, compiles):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setenv("SAM2ROTO_COMPILE", setting)
    model = load_model(NAME, checkpoint=official_checkpoint(NAME), device="cpu", dtype="bfloat16")
    assert (model.compiled_image_encoder is not None) is compiles
    assert load_model(NAME, checkpoint=official_checkpoint(NAME), device="cpu",
                      compile_encoder=False).compiled_image_encoder is None  # an explicit choice stands
    monkeypatch.setenv("SAM2ROTO_COMPILE", "fast")
    with pytest.raises(ValueError, match="SAM2ROTO_COMPILE='fast': use on, off or auto"):
        load_model(NAME, checkpoint=official_checkpoint(NAME), device="cpu")

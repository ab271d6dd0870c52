"""oneDNN-packed linear layers: the same float32 products as nn.Linear, or no change at all."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stage1_encode.onednn import PackedLinear, onednn_linear_works, pack_linears

needs_onednn = pytest.mark.skipif(
    not onednn_linear_works(), reason="this PyTorch build has no usable oneDNN linear ops"
)


@needs_onednn
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(7, 32), (3, 9, 32), (0, 32)])
def test_packed_linear_equals_linear(bias, shape) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(32, 24, bias=bias)
    x = torch.randn(*shape)
    with torch.inference_mode():
        got, want = PackedLinear(linear)(x), linear(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@needs_onednn
def test_packed_linear_accepts_strided_inputs() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(32, 24)
    for x in (torch.randn(9, 3, 32).transpose(0, 1), torch.randn(5, 64)[:, ::2]):
        with torch.inference_mode():
            torch.testing.assert_close(PackedLinear(linear)(x), linear(x), atol=1e-5, rtol=1e-5)


@needs_onednn
def test_pack_linears_swaps_every_linear_and_keeps_outputs() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Sequential(nn.Linear(32, 8))).eval()
    x = torch.randn(4, 6, 16)
    with torch.inference_mode():
        before = model(x)
        assert pack_linears(model) == 2
        after = model(x)
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
    assert pack_linears(model) == 0  # nothing left to pack


def test_pack_linears_leaves_model_alone_without_onednn(monkeypatch) -> None:
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    model = nn.Sequential(nn.Linear(4, 4))
    assert pack_linears(model) == 0
    assert type(model[0]) is nn.Linear


def test_pack_linears_skips_half_precision_layers() -> None:
    model = nn.Sequential(nn.Linear(4, 4).to(torch.bfloat16))
    assert pack_linears(model) == 0
    assert type(model[0]) is nn.Linear


@needs_onednn
def test_packed_teacher_gives_the_same_vectors(tiny_teacher_dir) -> None:
    from stage1_encode.teacher import Teacher

    teacher = Teacher(str(tiny_teacher_dir))
    texts = ["a short one", "a somewhat longer sentence for the tiny teacher", "x"]
    before = teacher.encode(texts)
    assert teacher.pack_for_inference() > 0
    torch.testing.assert_close(
        torch.from_numpy(teacher.encode(texts)), torch.from_numpy(before), atol=1e-5, rtol=0
    )


@needs_onednn
def test_to_bfloat16_keeps_embeddings_and_layernorms_float32() -> None:
    from stage1_encode.onednn import to_bfloat16

    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(20, 16), nn.Linear(16, 16), nn.LayerNorm(16)).eval()
    ids = torch.randint(0, 20, (3, 5))
    with torch.inference_mode():
        want = model(ids)
        to_bfloat16(model)
        packed = pack_linears(model, torch.bfloat16)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # as Teacher runs a bf16-cast model
            got = model(ids)
    # oneDNN's bf16 linear needs a CPU that has it; elsewhere the bf16 nn.Linear stays
    assert packed == int(onednn_linear_works(torch.bfloat16))
    assert isinstance(model[1], PackedLinear) == bool(packed)
    assert model[0].weight.dtype == model[2].weight.dtype == torch.float32
    assert model[1].weight.dtype == torch.bfloat16
    assert got.dtype == torch.float32  # the LayerNorm took the bf16 product back to float32
    assert not torch.equal(got, want)
    torch.testing.assert_close(got, want, atol=0.05, rtol=0)

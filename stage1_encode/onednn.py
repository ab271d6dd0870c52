"""Linear layers through oneDNN with pre-packed weights, for CPU inference (float32 or bf16).

PyTorch runs a float32 ``nn.Linear`` on x86 through MKL's sgemm, which on AMD CPUs reaches about
half of what oneDNN does with the same float32 arithmetic (164 vs 305 GFLOP/s for the teacher's
feed-forward product on this machine's EPYC). Over 80% of the teacher's CPU time is in those
products, so packing its weights once for oneDNN is the largest exact speed-up stage 1 has: the
vectors change only by float32 rounding (≈1e-7), not by a precision trade.

On a CPU with native bf16 (``avx512_bf16``, AMX) oneDNN multiplies bfloat16 at twice the float32
rate. ``to_bfloat16`` turns a model's matrix products and attention to bf16 but keeps embeddings
and LayerNorms in float32 (the caller runs it under bf16 autocast, as ``Teacher`` does); since a
bf16 branch output added to a float32 residual promotes to float32, the residual stream stays
float32 and the sentence vectors stay within cosine 0.9999 of float32 (docs/encode.md has the
measurement). Casting the whole model instead loses that.

Inference only: packed weights carry no gradient, and they are a second copy of the linear
weights (about 85 MB more for the embedded teacher). Where the oneDNN ops are missing or disagree
with ``nn.Linear`` on a probe, the model is left as it was.
"""

from __future__ import annotations

import torch
from torch import nn


class PackedLinear(nn.Module):
    """An ``nn.Linear`` whose weight is laid out once for oneDNN's matrix product.

    The product runs in the weight's dtype; an input of another dtype is cast to it.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # The original parameters stay registered, so state_dict, parameter counts and weight
        # hashes see the same model; the packed copy is what the product reads.
        self.weight = linear.weight
        self.register_parameter("bias", linear.bias)
        self.packed_weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != self.weight.dtype:
            x = x.to(self.weight.dtype)
        return torch.ops.mkldnn._linear_pointwise(x, self.packed_weight, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"oneDNN {self.weight.dtype}"
        )


def onednn_linear_works(dtype: torch.dtype = torch.float32) -> bool:
    """True when this PyTorch build has the oneDNN linear ops and they agree with nn.Linear."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops, "mkldnn"):
        return False
    try:
        probe = nn.Linear(64, 48).eval()
        x = torch.randn(2, 5, 64)
        with torch.inference_mode():
            want = probe(x)
            got = PackedLinear(probe.to(dtype))(x).float()
            tolerance = 1e-5 if dtype == torch.float32 else 0.05
            same = torch.allclose(got, want, atol=tolerance)
    except (RuntimeError, AttributeError):
        return False
    return bool(same)


def pack_linears(model: nn.Module, dtype: torch.dtype = torch.float32) -> int:
    """Swap every ``dtype`` CPU ``nn.Linear`` inside ``model`` for a PackedLinear; return how many.

    Call it on a model that will only run inference from now on.
    """
    linears = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is nn.Linear
        and child.weight.device.type == "cpu"
        and child.weight.dtype == dtype
    ]
    if not linears or not onednn_linear_works(dtype):
        return 0
    for parent, name, child in linears:
        setattr(parent, name, PackedLinear(child))
    return len(linears)


def _float32_input(module: nn.Module, args: tuple) -> tuple:
    return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


def to_bfloat16(model: nn.Module) -> None:
    """Cast ``model`` to bf16 for inference, except embeddings and LayerNorms (float32 inputs).

    Those two keep their float32 weights untouched (never rounded through bf16), which keeps the
    residual stream in float32 (see the module docstring); the matrix products, attention and
    activations run in bf16. Run the cast model under CPU bf16 autocast: a family may still
    combine a float32 tensor built from its embeddings' dtype (an attention mask, a position
    bias) with a bf16 one inside attention, which autocast resolves in bf16.
    """
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            module.register_forward_pre_hook(_float32_input)
        if isinstance(module, nn.Embedding | nn.LayerNorm):
            continue
        for param in module.parameters(recurse=False):
            if param.is_floating_point():
                param.data = param.data.to(torch.bfloat16)
        for name, buffer in module.named_buffers(recurse=False):
            if buffer.is_floating_point():
                setattr(module, name, buffer.to(torch.bfloat16))

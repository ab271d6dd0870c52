"""Float32 linear layers through oneDNN with pre-packed weights, for CPU inference.

PyTorch runs a float32 ``nn.Linear`` on x86 through MKL's sgemm, which on AMD CPUs reaches about
half of what oneDNN does with the same float32 arithmetic (164 vs 305 GFLOP/s for the teacher's
feed-forward product on this machine's EPYC). Over 80% of the teacher's CPU time is in those
products, so packing its weights once for oneDNN is the largest exact speed-up stage 1 has: the
vectors change only by float32 rounding (≈1e-7), not by a precision trade.

Inference only: packed weights carry no gradient, and they are a second copy of the linear
weights (about 85 MB more for the embedded teacher). Where the oneDNN ops are missing or disagree
with ``nn.Linear`` on a probe, the model is left as it was.
"""

from __future__ import annotations

import torch
from torch import nn


class PackedLinear(nn.Module):
    """An ``nn.Linear`` whose weight is laid out once for oneDNN's float32 matrix product."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # The original parameters stay registered, so state_dict, parameter counts and weight
        # hashes see the same model; the packed copy is what the product reads.
        self.weight = linear.weight
        self.register_parameter("bias", linear.bias)
        self.packed_weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed_weight, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, oneDNN"


def onednn_linear_works() -> bool:
    """True when this PyTorch build has the oneDNN linear ops and they agree with nn.Linear."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops, "mkldnn"):
        return False
    try:
        probe = nn.Linear(64, 48).eval()
        x = torch.randn(2, 5, 64)
        with torch.inference_mode():
            same = torch.allclose(PackedLinear(probe)(x), probe(x), atol=1e-5)
    except (RuntimeError, AttributeError):
        return False
    return bool(same)


def pack_linears(model: nn.Module) -> int:
    """Swap every float32 CPU ``nn.Linear`` inside ``model`` for a PackedLinear; return how many.

    Call it on a model that will only run inference from now on.
    """
    linears = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is nn.Linear
        and child.weight.device.type == "cpu"
        and child.weight.dtype == torch.float32
    ]
    if not linears or not onednn_linear_works():
        return 0
    for parent, name, child in linears:
        setattr(parent, name, PackedLinear(child))
    return len(linears)

"""RMSNorm / LayerNorm modules on the backend's (fused residual-add) norm ops."""

from __future__ import annotations

from torch import Tensor
from torch import nn

from workers.modules.backend import ops
from workers.modules.init import Init

RMS_EPS = 1e-6
LAYER_NORM_EPS = 1e-5


class Norm(nn.Module):
    """RMSNorm (gain ``d``) or LayerNorm (gain and bias, ``2d``) over the last dim."""

    def __init__(self, d: int, norm_type: str, init: Init, backend: str) -> None:
        super().__init__()
        if norm_type not in ("rmsnorm", "layernorm"):
            raise ValueError(f"norm_type must be rmsnorm or layernorm, but got {norm_type!r}")
        self.norm_type = norm_type
        self.backend = backend
        self.weight = init.ones(d)
        self.bias = init.zeros(d) if norm_type == "layernorm" else None
        self.eps = RMS_EPS if norm_type == "rmsnorm" else LAYER_NORM_EPS

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(-1, x.shape[-1])
        if self.norm_type == "rmsnorm":
            out = ops(self.backend).rms_norm(flat, self.weight, self.eps)
        else:
            out = ops(self.backend).layer_norm(flat, self.weight, self.bias, self.eps)
        return out.reshape(x.shape)

    def add(self, x: Tensor, residual: Tensor) -> tuple[Tensor, Tensor]:
        """``s = x + residual``; returns ``(norm(s), s)`` in one pass."""
        a = x.reshape(-1, x.shape[-1])
        b = residual.reshape(-1, x.shape[-1])
        if self.norm_type == "rmsnorm":
            out, s = ops(self.backend).add_rms_norm(a, b, self.weight, self.eps)
        else:
            out, s = ops(self.backend).add_layer_norm(a, b, self.weight, self.bias, self.eps)
        return out.reshape(x.shape), s.reshape(x.shape)

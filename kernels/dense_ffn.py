"""Dense FFN: gate/up GEMM with the SwiGLU/GeGLU (or GELU/squared-ReLU) epilogue, then the
down GEMM with the residual add in its epilogue. Two launches of `kernels.matmul`."""

from __future__ import annotations

from torch import Tensor

from kernels.matmul import matmul
from kernels.utils import check_tensor

__all__ = ["dense_ffn"]


def dense_ffn(
    x: Tensor,
    w_up: Tensor,
    w_down: Tensor,
    *,
    activation: str,
    w_gate: Tensor | None = None,
    residual: Tensor | None = None,
) -> Tensor:
    """Triton version of `kernels.reference.dense_ffn`."""
    check_tensor("w_up", w_up, ndim=2)
    check_tensor("w_down", w_down, ndim=2)
    if w_down.shape[1] != w_up.shape[0] or w_down.shape[0] != w_up.shape[1]:
        raise ValueError(
            f"w_down must be [d, f] for w_up [f, d] = {tuple(w_up.shape)}, "
            f"but got {tuple(w_down.shape)}"
        )
    h = matmul(x, w_up, activation=activation, w_gate=w_gate)
    return matmul(h, w_down, residual=residual)

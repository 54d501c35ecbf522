"""Block-diagonal FFN: every matrix is ``b`` independent blocks; each GEMM is one launch of
`kernels.matmul` with the block index as a grid axis (batched per-block GEMMs), so ``b``
blocks cost one launch, not ``b``."""

from __future__ import annotations

from torch import Tensor

from kernels.matmul import matmul
from kernels.utils import check_tensor

__all__ = ["blockdiag_ffn"]


def blockdiag_ffn(
    x: Tensor,
    w_up: Tensor,
    w_down: Tensor,
    *,
    activation: str,
    w_gate: Tensor | None = None,
    residual: Tensor | None = None,
) -> Tensor:
    """Triton version of `kernels.reference.blockdiag_ffn` (``w_up`` ``[b, f/b, d/b]``,
    ``w_down`` ``[b, d/b, f/b]``)."""
    check_tensor("w_up", w_up, ndim=3)
    check_tensor("w_down", w_down, ndim=3)
    b, f_per, d_per = w_up.shape
    if tuple(w_down.shape) != (b, d_per, f_per):
        raise ValueError(
            f"w_down must have shape {(b, d_per, f_per)} for w_up {tuple(w_up.shape)}, "
            f"but got {tuple(w_down.shape)}"
        )
    h = matmul(x, w_up, activation=activation, w_gate=w_gate)
    return matmul(h, w_down, residual=residual)

"""RMSNorm, optionally fused with the residual add that precedes it.

``rms_norm(x, w)`` = ``x * rsqrt(mean(x^2) + eps) * w``; ``add_rms_norm(x, r, w)`` computes
``s = x + r`` and returns ``(rms_norm(s), s)`` reading each input once and writing both
outputs once (3 row passes of HBM traffic instead of 5 for add-then-norm). One program per
row; the row lives in registers (up to 65536 columns).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels.utils import MAX_FUSED_SIZE
from kernels.utils import check_device
from kernels.utils import check_shape
from kernels.utils import check_tensor

__all__ = ["add_rms_norm", "rms_norm"]


@triton.jit
def _rms_norm_kernel(  # type: ignore[no-untyped-def]
    x_ptr,  # [M, N] input
    r_ptr,  # [M, N] residual to add first, when HAS_RES
    w_ptr,  # [N] gain, when HAS_WEIGHT
    o_ptr,  # [M, N] normalised output
    s_ptr,  # [M, N] x + residual, when HAS_RES
    N,
    stride_x,
    stride_r,
    stride_o,
    stride_s,
    eps,
    HAS_RES: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    ok = cols < N
    x = tl.load(x_ptr + row * stride_x + cols, mask=ok, other=0.0).to(tl.float32)
    if HAS_RES:
        x += tl.load(r_ptr + row * stride_r + cols, mask=ok, other=0.0).to(tl.float32)
        tl.store(s_ptr + row * stride_s + cols, x.to(s_ptr.dtype.element_ty), mask=ok)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / N + eps)
    out = x * rstd
    if HAS_WEIGHT:
        out = out * tl.load(w_ptr + cols, mask=ok, other=0.0).to(tl.float32)
    tl.store(o_ptr + row * stride_o + cols, out.to(o_ptr.dtype.element_ty), mask=ok)


def _launch(
    x: Tensor, residual: Tensor | None, weight: Tensor | None, eps: float
) -> tuple[Tensor, Tensor | None]:
    check_tensor("x", x, ndim=2)
    check_device(x)
    if x.stride(1) != 1:
        raise ValueError(f"x rows must be contiguous (stride(1) == 1), but got {x.stride()}")
    m, n = x.shape
    if residual is not None:
        check_tensor("residual", residual, ndim=2, like=x)
        check_shape("residual", residual, (m, n))
        if residual.stride(1) != 1:
            raise ValueError(
                f"residual rows must be contiguous (stride(1) == 1), but got {residual.stride()}"
            )
    if weight is not None:
        check_tensor("weight", weight, ndim=1, contiguous=True)
        check_shape("weight", weight, (n,))
        if weight.device != x.device:
            raise ValueError(f"weight must be on {x.device}, but is on {weight.device}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, but got {eps}")
    block_n = triton.next_power_of_2(max(n, 1))
    if block_n > MAX_FUSED_SIZE:
        raise ValueError(f"rows longer than {MAX_FUSED_SIZE} are not supported, but got {n}")
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    summed = torch.empty_like(out) if residual is not None else None
    if m == 0:
        return out, summed
    r = residual if residual is not None else x
    s = summed if summed is not None else out
    _rms_norm_kernel[(m,)](
        x,
        r,
        weight if weight is not None else x,
        out,
        s,
        n,
        x.stride(0),
        r.stride(0),
        out.stride(0),
        s.stride(0),
        eps,
        HAS_RES=residual is not None,
        HAS_WEIGHT=weight is not None,
        BLOCK_N=block_n,
        num_warps=min(max(block_n // 256, 1), 16),
    )
    return out, summed


def rms_norm(x: Tensor, weight: Tensor | None, eps: float = 1e-6) -> Tensor:
    """Triton version of `kernels.reference.rms_norm`."""
    return _launch(x, None, weight, eps)[0]


def add_rms_norm(
    x: Tensor, residual: Tensor, weight: Tensor | None, eps: float = 1e-6
) -> tuple[Tensor, Tensor]:
    """Triton version of `kernels.reference.add_rms_norm`: ``(rms_norm(x + r), x + r)``."""
    if residual is None:
        raise ValueError("residual must be a tensor, but got None (use rms_norm)")
    out, summed = _launch(x, residual, weight, eps)
    assert summed is not None  # allocated whenever residual is given
    return out, summed

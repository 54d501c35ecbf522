"""LayerNorm, optionally fused with the residual add that precedes it.

Same layout as `kernels.rms_norm`: one program per row, statistics in fp32 (biased variance,
as torch), ``add_layer_norm`` returns ``(layer_norm(x + r), x + r)``.
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

__all__ = ["add_layer_norm", "layer_norm"]


@triton.jit
def _layer_norm_kernel(  # type: ignore[no-untyped-def]
    x_ptr,  # [M, N] input
    r_ptr,  # [M, N] residual to add first, when HAS_RES
    w_ptr,  # [N] gain, when HAS_WEIGHT
    b_ptr,  # [N] bias, when HAS_BIAS
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
    HAS_BIAS: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    ok = cols < N
    x = tl.load(x_ptr + row * stride_x + cols, mask=ok, other=0.0).to(tl.float32)
    if HAS_RES:
        x += tl.load(r_ptr + row * stride_r + cols, mask=ok, other=0.0).to(tl.float32)
        tl.store(s_ptr + row * stride_s + cols, x.to(s_ptr.dtype.element_ty), mask=ok)
    mean = tl.sum(x, axis=0) / N
    centred = tl.where(ok, x - mean, 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(centred * centred, axis=0) / N + eps)
    out = centred * rstd
    if HAS_WEIGHT:
        out = out * tl.load(w_ptr + cols, mask=ok, other=0.0).to(tl.float32)
    if HAS_BIAS:
        out = out + tl.load(b_ptr + cols, mask=ok, other=0.0).to(tl.float32)
    tl.store(o_ptr + row * stride_o + cols, out.to(o_ptr.dtype.element_ty), mask=ok)


def _launch(
    x: Tensor,
    residual: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    eps: float,
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
    for name, vec in (("weight", weight), ("bias", bias)):
        if vec is not None:
            check_tensor(name, vec, ndim=1, contiguous=True)
            check_shape(name, vec, (n,))
            if vec.device != x.device:
                raise ValueError(f"{name} must be on {x.device}, but is on {vec.device}")
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
    _layer_norm_kernel[(m,)](
        x,
        r,
        weight if weight is not None else x,
        bias if bias is not None else x,
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
        HAS_BIAS=bias is not None,
        BLOCK_N=block_n,
        num_warps=min(max(block_n // 256, 1), 16),
    )
    return out, summed


def layer_norm(x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float = 1e-5) -> Tensor:
    """Triton version of `kernels.reference.layer_norm`."""
    return _launch(x, None, weight, bias, eps)[0]


def add_layer_norm(
    x: Tensor,
    residual: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    eps: float = 1e-5,
) -> tuple[Tensor, Tensor]:
    """Triton version of `kernels.reference.add_layer_norm`: ``(layer_norm(x + r), x + r)``."""
    if residual is None:
        raise ValueError("residual must be a tensor, but got None (use layer_norm)")
    out, summed = _launch(x, residual, weight, bias, eps)
    assert summed is not None  # allocated whenever residual is given
    return out, summed

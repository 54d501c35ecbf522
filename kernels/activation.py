"""Standalone (gated) activation: ``act(x) * up`` or ``act(x)``, elementwise.

Used where the activation cannot ride in a GEMM epilogue (block-sparse and 2:4 paths, whose
gate and up GEMMs have different sparsity) and as the HBM-bandwidth anchor in benchmarks.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels.utils import ACT_CODES
from kernels.utils import apply_act
from kernels.utils import check_device
from kernels.utils import check_shape
from kernels.utils import check_tensor

__all__ = ["activate"]

# 1024 elements per program: 4 warps x 32 lanes x 8 elements (16-byte bf16 vectors).
_BLOCK = 1024


@triton.jit
def _activate_kernel(  # type: ignore[no-untyped-def]
    x_ptr,  # input (gate branch when GATED), contiguous
    u_ptr,  # up branch, when GATED
    o_ptr,  # output
    n_elements,
    ACT: tl.constexpr,
    GATED: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < n_elements
    x = tl.load(x_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    out = apply_act(x, ACT)
    if GATED:
        out = out * tl.load(u_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    tl.store(o_ptr + offs, out.to(o_ptr.dtype.element_ty), mask=ok)


def activate(x: Tensor, activation: str, up: Tensor | None = None) -> Tensor:
    """Triton version of `kernels.reference.activate`."""
    check_tensor("x", x, ndim=(1, 2, 3), contiguous=True)
    check_device(x)
    if activation not in ACT_CODES:
        raise ValueError(f"activation must be one of {sorted(ACT_CODES)}, but got {activation!r}")
    if up is not None:
        check_tensor("up", up, ndim=x.dim(), like=x, contiguous=True)
        check_shape("up", up, tuple(x.shape))
    out = torch.empty_like(x)
    n = x.numel()
    if n == 0:
        return out
    _activate_kernel[(triton.cdiv(n, _BLOCK),)](
        x,
        up if up is not None else x,
        out,
        n,
        ACT=ACT_CODES[activation],
        GATED=up is not None,
        BLOCK=_BLOCK,
    )
    return out

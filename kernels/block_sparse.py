"""Block-sparse weight GEMM: ``x @ (w * tile_mask).T`` reading only the kept weight tiles.

The tile mask ``[N/b, K/b]`` is turned once into a CSR tile list (`tile_index`): for each
output tile column, the K-tile indices it keeps. Each program owns one ``BLOCK_M x b`` output
tile and loops over exactly its kept K tiles, so zero tiles cost neither bytes nor FLOPs.
The tile edge ``b`` (16..128) is both BLOCK_N and BLOCK_K.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels.utils import check_device
from kernels.utils import check_shape
from kernels.utils import check_tensor
from kernels.utils import interpreting

__all__ = ["block_sparse_matmul", "tile_index"]

_SPARSE_BLOCK_SIZES = (16, 32, 64, 128)


def _configs() -> list[triton.Config]:
    if interpreting():
        return [triton.Config({"BLOCK_M": 32})]
    return [
        triton.Config({"BLOCK_M": bm}, num_warps=w, num_stages=s)
        for bm, w, s in ((16, 4, 4), (32, 4, 4), (64, 4, 4), (128, 8, 3), (128, 4, 4))
    ]


@triton.autotune(configs=_configs(), key=["M", "N", "K", "B"])
@triton.jit
def _block_sparse_matmul_kernel(  # type: ignore[no-untyped-def]
    x_ptr,  # [M, K] input
    w_ptr,  # [N, K] dense-stored weight; only kept tiles are read
    ptr_ptr,  # [N/B + 1] CSR row pointer over output tile columns
    kidx_ptr,  # [nnz] kept K-tile index per entry
    r_ptr,  # [M, N] residual, when HAS_RES
    o_ptr,  # [M, N] output
    M,
    N,  # noqa: ARG001 - autotune key
    K,  # noqa: ARG001 - autotune key
    stride_xm,
    stride_xk,
    stride_wn,
    stride_wk,
    stride_rm,
    stride_om,
    HAS_RES: tl.constexpr,
    IEEE: tl.constexpr,
    B: tl.constexpr,  # tile edge: BLOCK_N == BLOCK_K == B
    BLOCK_M: tl.constexpr,
):
    pid_m = tl.program_id(0)
    tile_n = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tile_n * B + tl.arange(0, B)
    rb = tl.arange(0, B)
    m_ok = rm < M
    start = tl.load(ptr_ptr + tile_n)
    end = tl.load(ptr_ptr + tile_n + 1)
    acc = tl.zeros((BLOCK_M, B), dtype=tl.float32)
    for i in range(start, end):
        k = tl.load(kidx_ptr + i) * B + rb
        a = tl.load(
            x_ptr + rm[:, None] * stride_xm + k[None, :] * stride_xk, mask=m_ok[:, None], other=0.0
        )
        b = tl.load(w_ptr + rn[None, :] * stride_wn + k[:, None] * stride_wk)
        if IEEE:
            acc = tl.dot(a, b, acc, input_precision="ieee")
        else:
            acc = tl.dot(a, b, acc)
    if HAS_RES:
        acc += tl.load(
            r_ptr + rm[:, None] * stride_rm + rn[None, :], mask=m_ok[:, None], other=0.0
        ).to(tl.float32)
    tl.store(
        o_ptr + rm[:, None] * stride_om + rn[None, :],
        acc.to(o_ptr.dtype.element_ty),
        mask=m_ok[:, None],
    )


def tile_index(mask: Tensor) -> tuple[Tensor, Tensor]:
    """CSR tile list of a ``[N/b, K/b]`` bool tile mask: ``(row_ptr int32, k_tiles int32)``."""
    if not isinstance(mask, Tensor) or mask.dim() != 2 or mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be a 2-D bool tensor, but got "
            f"{getattr(mask, 'dtype', type(mask).__name__)} {tuple(getattr(mask, 'shape', ()))}"
        )
    counts = mask.sum(1)
    row_ptr = torch.zeros(mask.shape[0] + 1, dtype=torch.int32, device=mask.device)
    row_ptr[1:] = torch.cumsum(counts, 0)
    k_tiles = torch.nonzero(mask, as_tuple=True)[1].to(torch.int32)
    return row_ptr, k_tiles


def block_sparse_matmul(
    x: Tensor,
    w: Tensor,
    mask: Tensor,
    block_size: int,
    *,
    residual: Tensor | None = None,
    tiles: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Triton version of `kernels.reference.block_sparse_matmul`; ``tiles`` is the cached
    `tile_index(mask)` (computed here when None)."""
    check_tensor("x", x, ndim=2)
    check_device(x)
    check_tensor("w", w, ndim=2, like=x)
    if block_size not in _SPARSE_BLOCK_SIZES:
        raise ValueError(f"block_size must be one of {_SPARSE_BLOCK_SIZES}, but got {block_size}")
    n, k = w.shape
    if x.shape[1] != k:
        raise ValueError(f"x has {x.shape[1]} columns but w has {k} (w shape {tuple(w.shape)})")
    if n % block_size or k % block_size:
        raise ValueError(f"w shape {tuple(w.shape)} must be a multiple of block_size={block_size}")
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor, but got {getattr(mask, 'dtype', mask)}")
    check_shape("mask", mask, (n // block_size, k // block_size))
    if mask.device != x.device:
        raise ValueError(f"mask must be on {x.device}, but is on {mask.device}")
    if residual is not None:
        check_tensor("residual", residual, ndim=2, like=x)
        check_shape("residual", residual, (x.shape[0], n))
        if residual.stride(1) != 1:
            raise ValueError(f"residual rows must be contiguous, but got {residual.stride()}")
    row_ptr, k_tiles = tile_index(mask) if tiles is None else tiles
    m = x.shape[0]
    out = torch.empty((m, n), device=x.device, dtype=x.dtype)
    if m == 0:
        return out
    res = residual if residual is not None else out

    def grid(meta: dict[str, int]) -> tuple[int, int]:
        return (triton.cdiv(m, meta["BLOCK_M"]), n // block_size)

    _block_sparse_matmul_kernel[grid](
        x,
        w,
        row_ptr,
        k_tiles,
        res,
        out,
        m,
        n,
        k,
        x.stride(0),
        x.stride(1),
        w.stride(0),
        w.stride(1),
        res.stride(0),
        out.stride(0),
        HAS_RES=residual is not None,
        IEEE=x.dtype == torch.float32,
        B=block_size,
    )
    return out

"""Mixture-of-experts FFN: router top-k, token permutation, grouped GEMMs, un-permute.

Stages (one launch each, never a Python loop over experts):

1. router: logits GEMM (`kernels.matmul`), then `_router_topk_kernel` picks the top-k per
   token and softmaxes over them (== renormalised top-k of the full softmax);
2. permutation: a stable sort of the ``N*k`` (token, slot) pairs by expert, counts and
   offsets (torch ops on the device, no host sync);
3. `_grouped_matmul_kernel` for gate/up: rows are gathered from ``x`` by index inside the
   kernel (no permuted copy of ``x``), each program finds its expert by scanning the
   per-expert tile counts, and the gated activation runs in the epilogue;
4. the same kernel for down, scaling each row by its gate weight in the epilogue;
5. `_unpermute_kernel` sums each token's ``k`` rows and adds the shared experts' output
   (a dense FFN of width ``S*w`` with the residual fused) as its residual.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels.dense_ffn import dense_ffn
from kernels.matmul import matmul
from kernels.utils import activation_code
from kernels.utils import apply_act
from kernels.utils import check_device
from kernels.utils import check_shape
from kernels.utils import check_tensor
from kernels.utils import gemm_configs

__all__ = ["grouped_matmul", "moe_ffn", "moe_permute", "moe_route", "moe_unpermute"]

# Grouped GEMM tiles: rows per expert are T*k/E on average, so small BLOCK_M tiles matter
# for fine-grained experts and decode (few rows per expert).
_CUDA_CONFIGS = [
    (128, 128, 64, 8, 3),
    (128, 64, 64, 4, 4),
    (64, 128, 64, 4, 4),
    (64, 64, 64, 4, 4),
    (32, 128, 64, 4, 4),
    (16, 128, 128, 4, 4),
    (16, 64, 128, 4, 4),
]


@triton.jit
def _router_topk_kernel(  # type: ignore[no-untyped-def]
    logits_ptr,  # [T, E] fp32 router logits
    w_ptr,  # [T, TOP_K] fp32 out: softmax over the top-k logits
    idx_ptr,  # [T, TOP_K] int32 out: expert ids, descending logit
    E,
    stride_l,
    TOP_K: tl.constexpr,
    BLOCK_E: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_E)
    vals = tl.load(logits_ptr + row * stride_l + cols, mask=cols < E, other=float("-inf"))
    slots = tl.arange(0, BLOCK_K)
    top_v = tl.full((BLOCK_K,), float("-inf"), tl.float32)
    top_i = tl.zeros((BLOCK_K,), tl.int32)
    for j in tl.static_range(TOP_K):
        best = tl.max(vals, axis=0)
        # Lowest index among ties, so the result is deterministic.
        arg = tl.min(tl.where(vals == best, cols, BLOCK_E), axis=0)
        top_v = tl.where(slots == j, best, top_v)
        top_i = tl.where(slots == j, arg, top_i)
        vals = tl.where(cols == arg, float("-inf"), vals)
    ok = slots < TOP_K
    p = tl.where(ok, tl.exp(top_v - tl.max(top_v, axis=0)), 0.0)
    p = p / tl.sum(p, axis=0)
    tl.store(w_ptr + row * TOP_K + slots, p, mask=ok)
    tl.store(idx_ptr + row * TOP_K + slots, top_i, mask=ok)


@triton.autotune(configs=gemm_configs(_CUDA_CONFIGS), key=["N", "K", "E", "GATED"])
@triton.jit
def _grouped_matmul_kernel(  # type: ignore[no-untyped-def]
    x_ptr,  # [*, K] input rows (gathered through rows_ptr when HAS_ROWS)
    rows_ptr,  # [R] source row of each output row, when HAS_ROWS
    off_ptr,  # [E + 1] int32: expert e owns output rows off[e]:off[e+1]
    w_ptr,  # [E, N, K]
    wg_ptr,  # [E, N, K] gate weights, when GATED
    s_ptr,  # [R] fp32 row scale (gate weights), when HAS_SCALE
    o_ptr,  # [R, N]
    N,
    K,
    E,
    stride_xm,
    stride_we,
    stride_wn,
    stride_om,
    ACT: tl.constexpr,
    GATED: tl.constexpr,
    HAS_ROWS: tl.constexpr,
    HAS_SCALE: tl.constexpr,
    IEEE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    tile = tl.program_id(0)
    pid_n = tl.program_id(1)
    # Find this tile's expert: expert e owns cdiv(count_e, BLOCK_M) consecutive tiles.
    # O(E) scalar loads per program; the grid is sized by an upper bound on the tile count
    # (R/BLOCK_M + E), so tiles past the end exit here without touching memory.
    first_tile = 0
    expert = -1
    row_start = 0
    row_end = 0
    for e in range(E):
        lo = tl.load(off_ptr + e)
        hi = tl.load(off_ptr + e + 1)
        n_tiles = (hi - lo + BLOCK_M - 1) // BLOCK_M
        hit = (tile >= first_tile) & (tile < first_tile + n_tiles)
        expert = tl.where(hit, e, expert)
        row_start = tl.where(hit, lo + (tile - first_tile) * BLOCK_M, row_start)
        row_end = tl.where(hit, hi, row_end)
        first_tile += n_tiles
    if expert >= 0:
        rm = row_start + tl.arange(0, BLOCK_M)
        m_ok = rm < row_end
        if HAS_ROWS:
            src = tl.load(rows_ptr + rm, mask=m_ok, other=0).to(tl.int64)
        else:
            src = rm.to(tl.int64)
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        n_ok = rn < N
        rk = tl.arange(0, BLOCK_K)
        expert_off = expert.to(tl.int64) * stride_we  # type: ignore[attr-defined]
        w_base = w_ptr + expert_off + rn[None, :] * stride_wn
        wg_base = wg_ptr + expert_off + rn[None, :] * stride_wn
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        acc_g = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            k = k0 + rk
            k_ok = k < K
            a = tl.load(
                x_ptr + src[:, None] * stride_xm + k[None, :],
                mask=m_ok[:, None] & k_ok[None, :],
                other=0.0,
            )
            b = tl.load(w_base + k[:, None], mask=k_ok[:, None] & n_ok[None, :], other=0.0)
            if IEEE:
                acc = tl.dot(a, b, acc, input_precision="ieee")
            else:
                acc = tl.dot(a, b, acc)
            if GATED:
                bg = tl.load(wg_base + k[:, None], mask=k_ok[:, None] & n_ok[None, :], other=0.0)
                if IEEE:
                    acc_g = tl.dot(a, bg, acc_g, input_precision="ieee")
                else:
                    acc_g = tl.dot(a, bg, acc_g)
        if GATED:
            out = apply_act(acc_g, ACT) * acc
        else:
            out = apply_act(acc, ACT)
        if HAS_SCALE:
            out = out * tl.load(s_ptr + rm, mask=m_ok, other=0.0)[:, None]
        tl.store(
            o_ptr + rm[:, None].to(tl.int64) * stride_om + rn[None, :],
            out.to(o_ptr.dtype.element_ty),
            mask=m_ok[:, None] & n_ok[None, :],
        )


@triton.jit
def _unpermute_kernel(  # type: ignore[no-untyped-def]
    y_ptr,  # [T*k, D] expert outputs in expert order (already gate-weighted)
    inv_ptr,  # [T*k] int32: row of (token, slot) in y
    r_ptr,  # [T, D] residual (shared experts + stream), when HAS_RES
    o_ptr,  # [T, D]
    D,
    TOP_K: tl.constexpr,
    HAS_RES: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    token = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    ok = cols < D
    acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for j in tl.static_range(TOP_K):
        row = tl.load(inv_ptr + token * TOP_K + j).to(tl.int64)
        acc += tl.load(y_ptr + row * D + cols, mask=ok, other=0.0).to(tl.float32)
    if HAS_RES:
        acc += tl.load(r_ptr + token * D + cols, mask=ok, other=0.0).to(tl.float32)
    tl.store(o_ptr + token * D + cols, acc.to(o_ptr.dtype.element_ty), mask=ok)


def moe_route(x: Tensor, w_router: Tensor, top_k: int) -> tuple[Tensor, Tensor]:
    """Triton version of `kernels.reference.moe_route`."""
    check_tensor("x", x, ndim=2)
    check_device(x)
    check_tensor("w_router", w_router, ndim=2, like=x)
    n_experts = w_router.shape[0]
    if w_router.shape[1] != x.shape[1]:
        raise ValueError(
            f"w_router must be [experts, {x.shape[1]}], but got {tuple(w_router.shape)}"
        )
    if not 1 <= top_k <= n_experts:
        raise ValueError(
            f"`1 <= top_k <= experts` must hold, but got top_k={top_k}, experts={n_experts}"
        )
    block_e = triton.next_power_of_2(n_experts)
    if block_e > 4096:
        raise ValueError(f"at most 4096 experts are supported, but got {n_experts}")
    logits = matmul(x, w_router).float()
    t = x.shape[0]
    weights = torch.empty((t, top_k), device=x.device, dtype=torch.float32)
    experts = torch.empty((t, top_k), device=x.device, dtype=torch.int32)
    if t:
        _router_topk_kernel[(t,)](
            logits,
            weights,
            experts,
            n_experts,
            logits.stride(0),
            TOP_K=top_k,
            BLOCK_E=block_e,
            BLOCK_K=triton.next_power_of_2(top_k),
        )
    return weights, experts


def moe_permute(experts: Tensor, n_experts: int) -> tuple[Tensor, Tensor, Tensor]:
    """Same as `kernels.reference.moe_permute` (torch's device sort; no host sync)."""
    if not isinstance(experts, Tensor) or experts.dim() != 2 or experts.is_floating_point():
        raise ValueError(
            f"experts must be an integer [tokens, top_k] tensor, but got "
            f"{getattr(experts, 'dtype', type(experts).__name__)}"
        )
    flat = experts.reshape(-1).long()
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=n_experts)
    if counts.numel() != n_experts:
        raise ValueError(f"expert ids must be < experts={n_experts}")
    offsets = torch.zeros(n_experts + 1, dtype=torch.int32, device=experts.device)
    offsets[1:] = torch.cumsum(counts, 0)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    return order.to(torch.int32), offsets, inverse.to(torch.int32)


def grouped_matmul(
    x: Tensor,
    rows: Tensor | None,
    offsets: Tensor,
    w: Tensor,
    *,
    activation: str = "none",
    w_gate: Tensor | None = None,
    row_scale: Tensor | None = None,
) -> Tensor:
    """Triton version of `kernels.reference.grouped_matmul`: all experts in one launch."""
    check_tensor("x", x, ndim=2)
    check_device(x)
    check_tensor("w", w, ndim=3, like=x)
    if x.stride(1) != 1:
        raise ValueError(f"x rows must be contiguous (stride(1) == 1), but got {x.stride()}")
    n_experts, n, k = w.shape
    if w.stride(2) != 1:
        raise ValueError(f"w must be contiguous along K, but got strides {w.stride()}")
    if x.shape[1] != k:
        raise ValueError(f"x has {x.shape[1]} columns but w expects {k}")
    gated = w_gate is not None
    act = activation_code(activation, gated=gated)
    if w_gate is not None:
        check_tensor("w_gate", w_gate, ndim=3, like=x)
        check_shape("w_gate", w_gate, tuple(w.shape))
        if w_gate.stride() != w.stride():
            raise ValueError("w_gate and w must share strides")
    if not isinstance(offsets, Tensor) or offsets.dtype != torch.int32:
        raise ValueError(
            f"offsets must be an int32 tensor, but got {getattr(offsets, 'dtype', offsets)}"
        )
    check_shape("offsets", offsets, (n_experts + 1,))
    if rows is not None:
        if rows.dtype != torch.int32 or rows.dim() != 1:
            raise ValueError(
                f"rows must be a 1-D int32 tensor, but got {rows.dtype} {tuple(rows.shape)}"
            )
        r = rows.shape[0]
    else:
        r = x.shape[0]
    if row_scale is not None:
        if row_scale.dtype != torch.float32:
            raise ValueError(f"row_scale must be float32, but got {row_scale.dtype}")
        check_shape("row_scale", row_scale, (r,))
    out = torch.empty((r, n), device=x.device, dtype=x.dtype)
    if r == 0:
        return out

    def grid(meta: dict[str, int]) -> tuple[int, int]:
        return (triton.cdiv(r, meta["BLOCK_M"]) + n_experts, triton.cdiv(n, meta["BLOCK_N"]))

    _grouped_matmul_kernel[grid](
        x,
        rows if rows is not None else offsets,
        offsets,
        w,
        w_gate if w_gate is not None else w,
        row_scale if row_scale is not None else out,
        out,
        n,
        k,
        n_experts,
        x.stride(0),
        w.stride(0),
        w.stride(1),
        out.stride(0),
        ACT=act,
        GATED=gated,
        HAS_ROWS=rows is not None,
        HAS_SCALE=row_scale is not None,
        IEEE=x.dtype == torch.float32,
    )
    return out


def moe_unpermute(
    y: Tensor, inverse: Tensor, top_k: int, residual: Tensor | None = None
) -> Tensor:
    """Triton version of `kernels.reference.moe_unpermute`."""
    check_tensor("y", y, ndim=2, contiguous=True)
    check_device(y)
    if not isinstance(inverse, Tensor) or inverse.dtype != torch.int32:
        raise ValueError(f"inverse must be int32, but got {getattr(inverse, 'dtype', inverse)}")
    if inverse.numel() % top_k or inverse.numel() != y.shape[0]:
        raise ValueError(
            f"inverse must have tokens*top_k == {y.shape[0]} entries, but got {inverse.numel()}"
        )
    t, d = inverse.numel() // top_k, y.shape[1]
    if residual is not None:
        check_tensor("residual", residual, ndim=2, like=y, contiguous=True)
        check_shape("residual", residual, (t, d))
    out = torch.empty((t, d), device=y.device, dtype=y.dtype)
    if t == 0:
        return out
    block_d = min(triton.next_power_of_2(d), 1024)
    _unpermute_kernel[(t, triton.cdiv(d, block_d))](
        y,
        inverse.contiguous(),
        residual if residual is not None else out,
        out,
        d,
        TOP_K=top_k,
        HAS_RES=residual is not None,
        BLOCK_D=block_d,
    )
    return out


def moe_ffn(
    x: Tensor,
    w_router: Tensor,
    w_up: Tensor,
    w_down: Tensor,
    *,
    top_k: int,
    activation: str,
    w_gate: Tensor | None = None,
    shared: tuple[Tensor | None, Tensor, Tensor] | None = None,
    residual: Tensor | None = None,
) -> Tensor:
    """Triton version of `kernels.reference.moe_ffn`."""
    check_tensor("x", x, ndim=2, contiguous=True)
    check_tensor("w_up", w_up, ndim=3, like=x)
    check_tensor("w_down", w_down, ndim=3, like=x)
    n_experts, width, d = w_up.shape
    if d != x.shape[1]:
        raise ValueError(
            f"w_up must be [experts, width, {x.shape[1]}], but got {tuple(w_up.shape)}"
        )
    check_shape("w_down", w_down, (n_experts, d, width))
    if w_router.shape[0] != n_experts:
        raise ValueError(f"w_router has {w_router.shape[0]} experts but w_up has {n_experts}")
    weights, experts = moe_route(x, w_router, top_k)
    order, offsets, inverse = moe_permute(experts, n_experts)
    rows = torch.div(order, top_k, rounding_mode="floor").to(torch.int32)
    scale = weights.reshape(-1)[order.long()].contiguous()
    h = grouped_matmul(x, rows, offsets, w_up, activation=activation, w_gate=w_gate)
    y = grouped_matmul(h, None, offsets, w_down, row_scale=scale)
    base = residual
    if shared is not None:
        s_gate, s_up, s_down = shared
        base = dense_ffn(x, s_up, s_down, activation=activation, w_gate=s_gate, residual=residual)
    return moe_unpermute(y, inverse, top_k, residual=base)

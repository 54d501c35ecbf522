"""GEMM with a fused epilogue: ``x @ w.T`` (+bias) -> activation or gating -> +residual.

The one GEMM every dense-like FFN is built from:

* gated (SwiGLU/GeGLU): gate and up tiles are accumulated in the same K loop (one GEMM over
  both weights, reading each ``x`` tile once) and ``act(gate) * up`` is computed in the
  epilogue, so the ``[N, 2f]`` pre-activation never reaches HBM;
* non-gated (GELU, squared ReLU) and plain projections (``activation="none"``);
* block-diagonal weights ``[G, N/G, K/G]``: the block index is the second grid axis, so all
  blocks run in one launch (batched per-block GEMMs);
* residual add fused into the down projection's epilogue.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels.utils import activation_code
from kernels.utils import apply_act
from kernels.utils import check_device
from kernels.utils import check_shape
from kernels.utils import check_tensor
from kernels.utils import fit_stages
from kernels.utils import gemm_configs
from kernels.utils import interpreting
from kernels.utils import shared_memory_limit

__all__ = ["matmul"]

# (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages): large tiles for prefill, BLOCK_M=16/32 tiles
# for decode (M <= 256) where the GEMM is a weight-streaming GEMV and wide N/K tiles keep
# enough loads in flight.
_CUDA_CONFIGS = [
    (128, 128, 64, 8, 3),
    (128, 128, 64, 8, 4),
    (128, 256, 64, 8, 3),
    (256, 128, 64, 8, 3),
    (128, 128, 64, 4, 4),
    (128, 64, 64, 4, 4),
    (64, 128, 64, 4, 4),
    (64, 64, 64, 4, 4),
    (32, 128, 128, 4, 4),
    (16, 128, 128, 4, 4),
    (16, 64, 256, 4, 4),
]


# fp32 accumulator registers per thread a config may hold: the gated kernel keeps two
# BLOCK_M x BLOCK_N accumulators, and on sm_90 every gated config above 128 per thread
# (128x256 and 256x128 on 8 warps, 128x128 on 4) spilled 512-1024 bytes of stack while
# those at 128 spilled none (`python -m kernels.compile_check`).
MAX_ACC_REGS = 128


def _prune_configs(
    configs: list[triton.Config], nargs: dict[str, Any], **kwargs: Any
) -> list[triton.Config]:
    """Drop configs whose accumulators spill; fit the rest's pipeline in shared memory: per
    stage one x tile (two when the gate branch has its own input) and one weight tile per
    branch."""
    if interpreting():
        return configs
    elt = nargs["x_ptr"].dtype.itemsize
    gated = bool(kwargs["GATED"])
    x_tiles = 1 if kwargs["SHARED_X"] or not gated else 2
    w_tiles = 2 if gated else 1

    def acc_regs(cfg: triton.Config) -> float:
        return w_tiles * cfg.kwargs["BLOCK_M"] * cfg.kwargs["BLOCK_N"] / (32 * cfg.num_warps)

    def stage_bytes(cfg: triton.Config) -> int:
        bm, bn, bk = (cfg.kwargs[k] for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
        return (x_tiles * bm * bk + w_tiles * bk * bn) * elt

    kept = [c for c in configs if acc_regs(c) <= MAX_ACC_REGS] or configs
    return fit_stages(kept, stage_bytes, limit=shared_memory_limit())


@triton.autotune(
    configs=gemm_configs(_CUDA_CONFIGS),
    key=["M", "N", "K", "GATED", "SHARED_X", "G"],
    prune_configs_by={"early_config_prune": _prune_configs},
)
@triton.jit
def _matmul_kernel(  # type: ignore[no-untyped-def]
    x_ptr,  # [M, G*K] input (up branch)
    xg_ptr,  # [M, G*K] gate-branch input (== x_ptr unless a low-rank stage feeds it)
    w_ptr,  # [G, N, K] weight (nn.Linear layout per block)
    wg_ptr,  # [G, N, K] gate weight, when GATED
    b_ptr,  # [G*N] bias of the up branch, when HAS_BIAS
    bg_ptr,  # [G*N] bias of the gate branch, when HAS_BIAS
    r_ptr,  # [M, G*N] residual, when HAS_RES
    o_ptr,  # [M, G*N] output
    M,
    N,  # output columns per block
    K,  # reduction length per block
    G,  # noqa: ARG001 - autotune key; number of diagonal blocks (1: dense)
    stride_xm,
    stride_xk,
    stride_xgm,
    stride_xgk,
    stride_wg,
    stride_wn,
    stride_wk,
    stride_rm,
    stride_rn,
    stride_om,
    stride_on,
    ACT: tl.constexpr,  # constexpr so the unused activation branches compile away
    GATED: tl.constexpr,
    SHARED_X: tl.constexpr,  # the gate branch reads x itself: load each x tile once
    HAS_BIAS: tl.constexpr,
    HAS_RES: tl.constexpr,
    IEEE: tl.constexpr,  # fp32 inputs: exact fp32 dot instead of TF32
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr = 8,
):
    pid = tl.program_id(0)
    block = tl.program_id(1)
    num_m = tl.cdiv(M, BLOCK_M)
    num_n = tl.cdiv(N, BLOCK_N)
    # Grouped ordering: GROUP_M row tiles share each weight column tile while it is in L2.
    width = GROUP_M * num_n
    group_id = pid // width
    first_m = group_id * GROUP_M
    group_size = tl.minimum(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % width) % group_size
    pid_n = (pid % width) // group_size

    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    m_ok = rm < M
    n_ok = rn < N
    x_base = x_ptr + rm[:, None] * stride_xm + (block * K) * stride_xk
    xg_base = xg_ptr + rm[:, None] * stride_xgm + (block * K) * stride_xgk
    w_base = w_ptr + block * stride_wg + rn[None, :] * stride_wn
    wg_base = wg_ptr + block * stride_wg + rn[None, :] * stride_wn

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc_g = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + rk
        k_ok = k < K
        a = tl.load(x_base + k[None, :] * stride_xk, mask=m_ok[:, None] & k_ok[None, :], other=0.0)
        b = tl.load(w_base + k[:, None] * stride_wk, mask=k_ok[:, None] & n_ok[None, :], other=0.0)
        if IEEE:
            acc = tl.dot(a, b, acc, input_precision="ieee")
        else:
            acc = tl.dot(a, b, acc)
        if GATED:
            if SHARED_X:
                ag = a
            else:
                ag = tl.load(
                    xg_base + k[None, :] * stride_xgk,
                    mask=m_ok[:, None] & k_ok[None, :],
                    other=0.0,
                )
            bg = tl.load(
                wg_base + k[:, None] * stride_wk, mask=k_ok[:, None] & n_ok[None, :], other=0.0
            )
            if IEEE:
                acc_g = tl.dot(ag, bg, acc_g, input_precision="ieee")
            else:
                acc_g = tl.dot(ag, bg, acc_g)

    col = block * N + rn
    if HAS_BIAS:
        acc += tl.load(b_ptr + col, mask=n_ok, other=0.0).to(tl.float32)[None, :]
        if GATED:
            acc_g += tl.load(bg_ptr + col, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    if GATED:
        out = apply_act(acc_g, ACT) * acc
    else:
        out = apply_act(acc, ACT)
    mask = m_ok[:, None] & n_ok[None, :]
    if HAS_RES:
        res = tl.load(r_ptr + rm[:, None] * stride_rm + col[None, :] * stride_rn, mask=mask)
        out += res.to(tl.float32)
    tl.store(
        o_ptr + rm[:, None] * stride_om + col[None, :] * stride_on,
        out.to(o_ptr.dtype.element_ty),
        mask=mask,
    )


def matmul(
    x: Tensor,
    w: Tensor,
    *,
    activation: str = "none",
    w_gate: Tensor | None = None,
    x_gate: Tensor | None = None,
    bias: Tensor | None = None,
    bias_gate: Tensor | None = None,
    residual: Tensor | None = None,
) -> Tensor:
    """Triton version of `kernels.reference.matmul` (same signature and semantics)."""
    check_tensor("x", x, ndim=2)
    check_device(x)
    check_tensor("w", w, ndim=(2, 3), like=x)
    w3 = w if w.dim() == 3 else w.unsqueeze(0)
    groups, n_per, k_per = w3.shape
    m = x.shape[0]
    if x.shape[1] != groups * k_per:
        raise ValueError(
            f"x has {x.shape[1]} columns but w expects {groups * k_per} (w shape {tuple(w.shape)})"
        )
    gated = w_gate is not None
    act = activation_code(activation, gated=gated)
    wg3 = w3
    if w_gate is not None:
        check_tensor("w_gate", w_gate, ndim=w.dim(), like=x)
        check_shape("w_gate", w_gate, tuple(w.shape))
        wg3 = w_gate if w_gate.dim() == 3 else w_gate.unsqueeze(0)
        if wg3.stride() != w3.stride():
            raise ValueError(
                f"w_gate and w must share strides, but got {wg3.stride()} and {w3.stride()}"
            )
    xg = x
    if x_gate is not None:
        if not gated:
            raise ValueError("x_gate is only used with w_gate, but w_gate is None")
        check_tensor("x_gate", x_gate, ndim=2, like=x)
        check_shape("x_gate", x_gate, tuple(x.shape))
        xg = x_gate
    n_total = groups * n_per
    if bias_gate is not None and bias is None:
        raise ValueError("bias_gate needs bias (pass zeros for the up branch)")
    if bias is not None:
        check_tensor("bias", bias, ndim=1, like=x)
        check_shape("bias", bias, (n_total,))
        if bias_gate is not None:
            check_tensor("bias_gate", bias_gate, ndim=1, like=x)
            check_shape("bias_gate", bias_gate, (n_total,))
        elif gated:
            raise ValueError("a gated matmul with bias needs bias_gate too")
    if residual is not None:
        check_tensor("residual", residual, ndim=2, like=x)
        check_shape("residual", residual, (m, n_total))
    out = torch.empty((m, n_total), device=x.device, dtype=x.dtype)
    if m == 0 or n_total == 0:
        return out
    if k_per == 0:
        raise ValueError(f"the reduction length must be > 0, but got K={k_per}")
    res = residual if residual is not None else out
    b = bias if bias is not None else out
    bg = bias_gate if bias_gate is not None else b

    def grid(meta: dict[str, int]) -> tuple[int, int]:
        return (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n_per, meta["BLOCK_N"]), groups)

    _matmul_kernel[grid](
        x,
        xg,
        w3,
        wg3,
        b,
        bg,
        res,
        out,
        m,
        n_per,
        k_per,
        groups,
        x.stride(0),
        x.stride(1),
        xg.stride(0),
        xg.stride(1),
        w3.stride(0),
        w3.stride(1),
        w3.stride(2),
        res.stride(0),
        res.stride(1),
        out.stride(0),
        out.stride(1),
        ACT=act,
        GATED=gated,
        SHARED_X=xg is x,
        HAS_BIAS=bias is not None,
        HAS_RES=residual is not None,
        IEEE=x.dtype == torch.float32,
    )
    return out

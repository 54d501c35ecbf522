"""Kernels that must fail `kernels.compile_check` (imported by its test's child process)."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _mismatched_dot_kernel(x_ptr, o_ptr, BLOCK: tl.constexpr):  # type: ignore[no-untyped-def]
    r = tl.arange(0, BLOCK)
    a = tl.load(x_ptr + r[:, None] * BLOCK + r[None, :])
    b = tl.load(x_ptr + r[:, None] + tl.arange(0, 2 * BLOCK)[None, :])  # [BLOCK, 2*BLOCK]
    c = tl.dot(b, a)  # inner dims 2*BLOCK vs BLOCK: rejected at compile time
    tl.store(o_ptr + r[:, None] * BLOCK + r[None, :], c)


@triton.autotune(configs=[triton.Config({"BLOCK": 256}, num_warps=8, num_stages=4)], key=["K"])
@triton.jit
def _oversized_tile_kernel(x_ptr, w_ptr, o_ptr, K, BLOCK: tl.constexpr):  # type: ignore[no-untyped-def]
    # A 256x256 bf16 tile pair per stage over 4 stages: 1 MB of shared memory, far above
    # any GPU's per-block limit, so the only config is "dead".
    r = tl.arange(0, BLOCK)
    acc = tl.zeros((BLOCK, BLOCK), dtype=tl.float32)
    for k0 in range(0, K, BLOCK):
        a = tl.load(x_ptr + r[:, None] * K + k0 + r[None, :])
        b = tl.load(w_ptr + (k0 + r[:, None]) * BLOCK + r[None, :])
        acc = tl.dot(a, b, acc)
    tl.store(o_ptr + r[:, None] * BLOCK + r[None, :], acc.to(o_ptr.dtype.element_ty))

"""What `kernels.compile_check` records: every launcher, on small CPU tensors, under the
interpreter.

Shapes that set constexprs (norm row widths, expert counts, top-k, the un-permute tile) are
real model sizes; GEMM sizes are small, since only their specialisation (``== 1``, multiple
of 16) reaches the compiler. Token counts 6 and 32 give both specialisations of ``M``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# The dtype workloads record in; at compile time its tensors take the checked dtype.
RECORD_DTYPE = torch.float16


def _t(*shape: int, dtype: torch.dtype = RECORD_DTYPE, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=gen) / max(shape[-1], 1) ** 0.5).to(dtype)


def _dense_like() -> None:
    from kernels.blockdiag import blockdiag_ffn
    from kernels.dense_ffn import dense_ffn
    from kernels.lowrank import lowrank_ffn
    from kernels.matmul import matmul

    d, f = 64, 128
    for tokens in (6, 32):
        x, res = _t(tokens, d), _t(tokens, d, seed=1)
        for act in ("swiglu", "geglu", "gelu", "relu2"):
            gate = _t(f, d, seed=2) if act in ("swiglu", "geglu") else None
            dense_ffn(x, _t(f, d, seed=3), _t(d, f, seed=4), activation=act, w_gate=gate)
            dense_ffn(
                x, _t(f, d, seed=3), _t(d, f, seed=4), activation=act, w_gate=gate, residual=res
            )
        blockdiag_ffn(
            x,
            _t(4, f // 4, d // 4),
            _t(4, d // 4, f // 4),
            activation="swiglu",
            w_gate=_t(4, f // 4, d // 4, seed=5),
            residual=res,
        )
        pair = (_t(f, 16), _t(16, d))
        lowrank_ffn(x, pair, (_t(d, 16), _t(16, f)), activation="swiglu", gate=pair, residual=res)
        matmul(x, _t(f, d), activation="gelu", bias=_t(f))
        matmul(
            x,
            _t(f, d),
            activation="swiglu",
            w_gate=_t(f, d, seed=1),
            bias=_t(f),
            bias_gate=_t(f, seed=2),
        )
        matmul(_t(d, tokens).t(), _t(f, d))  # a transposed (strided) input


def _activation() -> None:
    from kernels.activation import activate

    for act in ("swiglu", "geglu", "gelu", "relu2", "none"):
        up = _t(4, 1000) if act in ("swiglu", "geglu") else None
        activate(_t(4, 1000), act, up)


def _norms() -> None:
    from kernels.layer_norm import add_layer_norm
    from kernels.layer_norm import layer_norm
    from kernels.rms_norm import add_rms_norm
    from kernels.rms_norm import rms_norm

    for d in (2048, 4096, 8192):
        x, r, w, b = _t(2, d), _t(2, d, seed=1), _t(d), _t(d, seed=2)
        rms_norm(x, w)
        rms_norm(x, None)
        add_rms_norm(x, r, w)
        layer_norm(x, w, b)
        layer_norm(x, None, None)
        add_layer_norm(x, r, w, b)


def _moe() -> None:
    from kernels.moe import moe_ffn
    from kernels.moe import moe_route
    from kernels.moe import moe_unpermute

    d, f, experts = 64, 32, 8
    x = _t(6, d)
    moe_ffn(
        x,
        _t(experts, d),
        _t(experts, f, d),
        _t(experts, d, f),
        top_k=2,
        activation="swiglu",
        w_gate=_t(experts, f, d, seed=1),
        shared=(_t(f, d, seed=2), _t(f, d, seed=3), _t(d, f, seed=4)),
        residual=_t(6, d, seed=5),
    )
    moe_ffn(x, _t(experts, d), _t(experts, f, d), _t(experts, d, f), top_k=2, activation="gelu")
    # The grouped GEMM does not specialise on the expert count, but the router (BLOCK_E,
    # TOP_K) and the un-permute (TOP_K, BLOCK_D from the model width) do: record those at
    # Mixtral (8, top-2), DeepSeek-V2-Lite-like (64, top-6) and Qwen3-30B-A3B (128, top-8).
    for experts, top_k in ((8, 2), (64, 6), (128, 8)):
        moe_route(_t(2, d), _t(experts, d), top_k)
        for width in (2048, 4096):
            inverse = torch.arange(2 * top_k, dtype=torch.int32)
            moe_unpermute(_t(2 * top_k, width), inverse, top_k, residual=_t(2, width))
            moe_unpermute(_t(2 * top_k, width), inverse, top_k)


def _sparse() -> None:
    from kernels.block_sparse import block_sparse_matmul

    for block in (16, 32, 64, 128):
        n = k = 2 * block
        mask = torch.tensor([[True, False], [True, True]])
        x = _t(6, k)
        block_sparse_matmul(x, _t(n, k), mask, block)
        block_sparse_matmul(x, _t(n, k), mask, block, residual=_t(6, n))


def _fused_group() -> None:
    from kernels.fused_group import fused_group_ffn

    d, f = 64, 64
    for biases in (None, [_t(d, seed=9), _t(d, seed=10)]):
        fused_group_ffn(
            _t(6, d),
            [_t(d), _t(d, seed=1)],
            biases,
            [_t(f, d, seed=2), _t(f, d, seed=3)],
            [_t(d, f, seed=4), _t(d, f, seed=5)],
            activation="swiglu",
            w_gates=[_t(f, d, seed=6), _t(f, d, seed=7)],
            residual=_t(6, d, seed=8),
        )


WORKLOADS: dict[str, Callable[[], None]] = {
    "dense_like": _dense_like,
    "activation": _activation,
    "norms": _norms,
    "moe": _moe,
    "block_sparse": _sparse,
    "fused_group": _fused_group,
}

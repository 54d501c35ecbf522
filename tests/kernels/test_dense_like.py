"""Dense-like kernels vs their torch references: matmul epilogues, dense, block-diagonal,
low-rank, fused group and the standalone activation."""

from __future__ import annotations

import math

import pytest
import torch

from kernels import reference as ref
from kernels.activation import activate
from kernels.blockdiag import blockdiag_ffn
from kernels.dense_ffn import dense_ffn
from kernels.fused_group import fused_group_ffn
from kernels.lowrank import lowrank_ffn
from kernels.matmul import matmul
from tests.kernels.conftest import DTYPES
from tests.kernels.conftest import assert_close
from tests.kernels.conftest import randn

D = 40  # odd width: not a multiple of the 32-wide interpreter tile
F = 100
ACTS = ("swiglu", "geglu", "gelu", "relu2")


def _w(out: int, inp: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    # N(0, 1/inp) keeps every GEMM output O(1), so the tolerances are relative to ~1.
    return randn(out, inp, dtype=dtype, scale=1 / math.sqrt(inp), seed=seed)


# Every odd token count and every activation, without the full product (interpreter time).
DENSE_CASES = [(6, "swiglu"), (42, "geglu"), (123, "gelu"), (431, "relu2"), (431, "swiglu")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("tokens", "activation"), DENSE_CASES)
def test_dense_ffn_matches_reference(tokens: int, activation: str, dtype: torch.dtype) -> None:
    x = randn(tokens, D, dtype=dtype, seed=1)
    gated = activation in ("swiglu", "geglu")
    kwargs = {
        "activation": activation,
        "w_gate": _w(F, D, dtype, 2) if gated else None,
        "residual": randn(tokens, D, dtype=dtype, seed=3),
    }
    args = (x, _w(F, D, dtype, 4), _w(D, F, dtype, 5))
    assert_close(
        dense_ffn(*args, **kwargs), ref.dense_ffn(*args, **kwargs), dtype, activation=activation
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tokens", (6, 123))
def test_matmul_biases_and_separate_gate_input(tokens: int, dtype: torch.dtype) -> None:
    x = randn(tokens, D, dtype=dtype, seed=1)
    kwargs = {
        "activation": "swiglu",
        "w_gate": _w(F, D, dtype, 2),
        "x_gate": randn(tokens, D, dtype=dtype, seed=6),
        "bias": randn(F, dtype=dtype, seed=7),
        "bias_gate": randn(F, dtype=dtype, seed=8),
    }
    w = _w(F, D, dtype, 4)
    assert_close(matmul(x, w, **kwargs), ref.matmul(x, w, **kwargs), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_reads_strided_input(dtype: torch.dtype) -> None:
    x = randn(D, 42, dtype=dtype, seed=1).t()  # non-contiguous [42, D]
    w = _w(F, D, dtype, 2)
    assert_close(matmul(x, w), ref.matmul(x, w), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("tokens", "activation", "blocks"),
    [(6, "swiglu", 4), (42, "relu2", 2), (123, "swiglu", 2), (431, "geglu", 4)],
)
def test_blockdiag_ffn_matches_reference(
    tokens: int, activation: str, blocks: int, dtype: torch.dtype
) -> None:
    d, f = 64, 96
    x = randn(tokens, d, dtype=dtype, seed=1)
    b_in, b_out = d // blocks, f // blocks
    scale = 1 / math.sqrt(b_in)
    gated = activation in ("swiglu", "geglu")
    w_up = randn(blocks, b_out, b_in, dtype=dtype, scale=scale, seed=2)
    w_down = randn(blocks, b_in, b_out, dtype=dtype, scale=1 / math.sqrt(b_out), seed=3)
    gate = randn(blocks, b_out, b_in, dtype=dtype, scale=scale, seed=4)
    kwargs = {
        "activation": activation,
        "w_gate": gate if gated else None,
        "residual": randn(tokens, d, dtype=dtype, seed=5),
    }
    got = blockdiag_ffn(x, w_up, w_down, **kwargs)
    assert_close(got, ref.blockdiag_ffn(x, w_up, w_down, **kwargs), dtype, activation=activation)
    # Brute force: the block-diagonal matrices written out densely.
    dense_up = torch.block_diag(*w_up.float())
    dense_down = torch.block_diag(*w_down.float())
    dense_gate = torch.block_diag(*gate.float()) if gated else None
    want = ref.dense_ffn(
        x.float(),
        dense_up,
        dense_down,
        activation=activation,
        w_gate=dense_gate,
        residual=kwargs["residual"].float(),
    )
    assert_close(got, want, dtype, activation=activation)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("tokens", "activation"), [(6, "geglu"), (123, "gelu"), (431, "geglu")])
def test_lowrank_ffn_matches_reference(tokens: int, activation: str, dtype: torch.dtype) -> None:
    r = 12
    x = randn(tokens, D, dtype=dtype, seed=1)

    def pair(out: int, inp: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        # U V has unit-variance rows of the product over inp: Var = r * 1/r * 1/inp.
        return (
            randn(out, r, dtype=dtype, scale=1 / math.sqrt(r), seed=seed),
            randn(r, inp, dtype=dtype, scale=1 / math.sqrt(inp), seed=seed + 1),
        )

    kwargs = {
        "activation": activation,
        "gate": pair(F, D, 10) if activation in ("swiglu", "geglu") else None,
        "residual": randn(tokens, D, dtype=dtype, seed=3),
    }
    args = (x, pair(F, D, 20), pair(D, F, 30))
    got = lowrank_ffn(*args, **kwargs)
    assert_close(got, ref.lowrank_ffn(*args, **kwargs), dtype)
    # The factorised function equals the merged dense one (the pre-merge fallback).
    merged = {
        k: v[0].float() @ v[1].float() for k, v in zip(("up", "down"), args[1:], strict=True)
    }
    gate = kwargs["gate"]
    want = ref.dense_ffn(
        x.float(),
        merged["up"],
        merged["down"],
        activation=activation,
        w_gate=None if gate is None else gate[0].float() @ gate[1].float(),
        residual=kwargs["residual"].float(),
    )
    assert_close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tokens", (6, 123))
@pytest.mark.parametrize(("activation", "layernorm"), [("swiglu", False), ("relu2", True)])
def test_fused_group_matches_sum_of_member_ffns(
    tokens: int, activation: str, layernorm: bool, dtype: torch.dtype
) -> None:
    widths = (32, 100, 48)
    x = randn(tokens, D, dtype=dtype, seed=1)
    gains = [1 + randn(D, dtype=dtype, scale=0.3, seed=40 + i) for i in range(3)]
    biases = (
        [randn(D, dtype=dtype, scale=0.3, seed=50 + i) for i in range(3)] if layernorm else None
    )
    gated = activation == "swiglu"
    kwargs = {
        "activation": activation,
        "w_gates": [_w(f, D, dtype, 60 + i) for i, f in enumerate(widths)] if gated else None,
        "eps": 1e-5 if layernorm else 1e-6,
        "residual": x,
    }
    args = (
        x,
        gains,
        biases,
        [_w(f, D, dtype, 70 + i) for i, f in enumerate(widths)],
        [_w(D, f, dtype, 80 + i) for i, f in enumerate(widths)],
    )
    got = fused_group_ffn(*args, **kwargs)
    want = ref.fused_group_ffn(*args, **kwargs)
    # Folding rounds W*g (and W@b) once more than the reference, and the output is the sum of
    # three members plus the residual (|y| ~ 4, where an fp16 ulp is 4e-3): allow 2.5x the
    # dense tolerance.
    tol = {torch.float32: 2e-5, torch.float16: 1e-2, torch.bfloat16: 6e-2}[dtype]
    torch.testing.assert_close(got.float(), want.float(), atol=tol, rtol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("gated", (True, False))
def test_activate_matches_reference(activation: str, gated: bool, dtype: torch.dtype) -> None:
    x = randn(123, 77, dtype=dtype, scale=2.0, seed=1)
    up = randn(123, 77, dtype=dtype, seed=2) if gated else None
    # Elementwise: one rounding on each side, so the default dtype tolerance is generous.
    assert_close(
        activate(x, activation, up), ref.activate(x, activation, up), dtype, activation=activation
    )


def test_activation_formulas_by_hand() -> None:
    x = torch.tensor([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    u = torch.full_like(x, 2.0)
    silu = x / (1 + torch.exp(-x))
    gelu = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    torch.testing.assert_close(activate(x, "swiglu", u), 2 * silu)
    torch.testing.assert_close(activate(x, "geglu", u), 2 * gelu)
    torch.testing.assert_close(activate(x, "relu2"), torch.clamp(x, min=0) ** 2)

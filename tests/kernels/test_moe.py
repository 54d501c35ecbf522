"""MoE stages and the whole MoE FFN vs the torch references (which loop over experts)."""

from __future__ import annotations

import math

import pytest
import torch

from kernels import reference as ref
from kernels.moe import grouped_matmul
from kernels.moe import moe_ffn
from kernels.moe import moe_permute
from kernels.moe import moe_route
from tests.kernels.conftest import DTYPES
from tests.kernels.conftest import HAS_CUDA
from tests.kernels.conftest import assert_close
from tests.kernels.conftest import randn

D, W = 40, 36


def _weights(experts: int, dtype: torch.dtype, gated: bool) -> dict[str, torch.Tensor | None]:
    return {
        "w_router": randn(experts, D, dtype=dtype, seed=1),
        "w_up": randn(experts, W, D, dtype=dtype, scale=1 / math.sqrt(D), seed=2),
        "w_down": randn(experts, D, W, dtype=dtype, scale=1 / math.sqrt(W), seed=3),
        "w_gate": randn(experts, W, D, dtype=dtype, scale=1 / math.sqrt(D), seed=4)
        if gated
        else None,
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("tokens", "experts", "top_k", "shared", "activation"),
    [
        (6, 8, 2, 0, "swiglu"),
        (42, 4, 1, 1, "gelu"),
        (123, 6, 3, 2, "geglu"),
        # 431 tokens in fp32 only: the interpreter runs the per-token router/un-permute
        # programs one by one (~10 s per dtype at this size).
        pytest.param(431, 8, 2, 1, "relu2", id="431-relu2"),
        (5, 16, 4, 0, "swiglu"),  # most experts get no token
    ],
)
def test_moe_ffn_matches_reference(
    tokens: int, experts: int, top_k: int, shared: int, activation: str, dtype: torch.dtype
) -> None:
    if tokens == 431 and dtype != torch.float32 and not HAS_CUDA:
        pytest.skip("431 tokens run in fp32 only under the interpreter (time)")
    gated = activation in ("swiglu", "geglu")
    w = _weights(experts, dtype, gated)
    x = randn(tokens, D, dtype=dtype, seed=5)
    shared_w = None
    if shared:
        sw = shared * W
        shared_w = (
            randn(sw, D, dtype=dtype, scale=1 / math.sqrt(D), seed=6) if gated else None,
            randn(sw, D, dtype=dtype, scale=1 / math.sqrt(D), seed=7),
            randn(D, sw, dtype=dtype, scale=1 / math.sqrt(sw), seed=8),
        )
    kwargs = {
        "top_k": top_k,
        "activation": activation,
        "w_gate": w["w_gate"],
        "shared": shared_w,
        "residual": randn(tokens, D, dtype=dtype, seed=9),
    }
    args = (x, w["w_router"], w["w_up"], w["w_down"])
    assert_close(
        moe_ffn(*args, **kwargs), ref.moe_ffn(*args, **kwargs), dtype, activation=activation
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_router_picks_the_top_logits_and_renormalises(dtype: torch.dtype) -> None:
    x = randn(123, D, dtype=dtype, seed=1)
    router = randn(7, D, dtype=dtype, seed=2)
    weights, experts = moe_route(x, router, 3)
    want_w, want_e = ref.moe_route(x, router, 3)
    assert torch.equal(experts, want_e)
    assert_close(weights, want_w, torch.float32 if dtype == torch.float32 else dtype)
    torch.testing.assert_close(weights.sum(-1), torch.ones(123, device=weights.device))
    # Brute force: renormalised top-k of the full softmax.
    probs = torch.softmax((x @ router.t()).float(), -1)
    top = torch.gather(probs, 1, experts.long())
    assert_close(weights, top / top.sum(-1, keepdim=True), dtype)


def test_permutation_groups_rows_by_expert() -> None:
    experts = torch.tensor([[2, 0], [1, 2], [2, 1]], dtype=torch.int32)
    order, offsets, inverse = moe_permute(experts, 4)
    assert offsets.tolist() == [0, 1, 3, 6, 6]
    flat = experts.reshape(-1)
    assert flat[order.long()].tolist() == [0, 1, 1, 2, 2, 2]
    assert torch.equal(order[inverse.long()], torch.arange(6, dtype=torch.int32))


@pytest.mark.parametrize("dtype", DTYPES)
def test_grouped_matmul_with_gather_and_row_scale(dtype: torch.dtype) -> None:
    x = randn(50, D, dtype=dtype, seed=1)
    w = randn(5, 24, D, dtype=dtype, scale=1 / math.sqrt(D), seed=2)
    counts = [0, 17, 40, 3, 0]  # empty experts and a count spanning several tiles
    offsets = torch.tensor([0, *torch.tensor(counts).cumsum(0).tolist()], dtype=torch.int32)
    rows = torch.randint(0, 50, (60,), generator=torch.Generator().manual_seed(3)).int()
    scale = torch.rand(60, generator=torch.Generator().manual_seed(4))
    dev = x.device
    args = (x, rows.to(dev), offsets.to(dev), w)
    kwargs = {"activation": "gelu", "row_scale": scale.to(dev)}
    assert_close(grouped_matmul(*args, **kwargs), ref.grouped_matmul(*args, **kwargs), dtype)

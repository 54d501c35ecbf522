"""build_model on the torch backend: parameter counts, seeding, block semantics."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings

from search_space.costs import design_costs
from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims
from search_space.workload import Workload
from tests.workers.design_strategies import designs
from tests.workers.design_strategies import layer_ffns
from workers.build import build_ffn
from workers.build import build_model
from workers.modules.units import FusionUnit
from workers.modules.units import LayerUnit

WORKLOAD = Workload(phase="prefill", batch=1, seq=16)
DIMS = ModelDims(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab=64, seq_len=16)


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(design=designs())
def test_param_count_equals_costs(design: FFNDesign) -> None:
    model = build_model(design, backend="torch")
    assert _n_params(model) == design_costs(design, WORKLOAD).params


@settings(max_examples=30, deadline=None)
@given(layer=layer_ffns())
def test_build_ffn_param_count_equals_costs_per_layer(layer: LayerFFN) -> None:
    design = FFNDesign(dims=DIMS, layers=(layer, layer.model_copy(update={"fusion_group": None})))
    ffn = build_ffn(layer, DIMS, backend="torch")
    assert _n_params(ffn) == design_costs(design, WORKLOAD).layers[0].ffn_params


@settings(max_examples=10, deadline=None)
@given(design=designs())
def test_same_seed_same_weights_on_both_backends(design: FFNDesign) -> None:
    a = build_model(design, backend="torch", seed=3).state_dict()
    b = build_model(design, backend="triton", seed=3).state_dict()
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_other_seed_other_weights() -> None:
    design = FFNDesign(dims=DIMS, layers=(LayerFFN(width=32), LayerFFN(width=32)))
    a = build_model(design, backend="torch", seed=0).units[0].ffn.w_up
    b = build_model(design, backend="torch", seed=1).units[0].ffn.w_up
    assert not torch.equal(a, b)


def test_block_sparsity_keeps_contract_tile_count_and_zeroes_the_rest() -> None:
    layer = LayerFFN(width=96, sparsity={"pattern": "block", "block_size": 16, "density": 0.3})
    ffn = build_ffn(layer, DIMS, backend="torch", seed=5)
    n_tiles = (64 // 16) * (96 // 16)
    for name in ("gate", "up", "down"):
        mask = getattr(ffn, f"mask_{name}")
        assert int(mask.sum()) == max(1, round(0.3 * n_tiles))
        weight = getattr(ffn, f"w_{name}")
        full = mask.repeat_interleave(16, 0).repeat_interleave(16, 1)
        assert torch.count_nonzero(weight[~full]) == 0
        assert torch.count_nonzero(weight[full]) == full.sum()


def test_two_four_mask_keeps_two_of_every_four_along_the_input_dim() -> None:
    ffn = build_ffn(LayerFFN(width=64, sparsity="2:4"), DIMS, backend="torch")
    for name in ("gate", "up", "down"):
        mask = getattr(ffn, f"mask_{name}")
        assert torch.all(mask.reshape(mask.shape[0], -1, 4).sum(-1) == 2)
        weight = getattr(ffn, f"w_{name}")
        assert torch.count_nonzero(weight) == weight.numel() // 2


def _rms(x: torch.Tensor, norm: torch.nn.Module) -> torch.Tensor:
    if norm.norm_type == "rmsnorm":
        return F.rms_norm(x, (x.shape[-1],), norm.weight, norm.eps)
    return F.layer_norm(x, (x.shape[-1],), norm.weight, norm.bias, norm.eps)


def _brute_force_layer(unit: LayerUnit, x: torch.Tensor) -> torch.Tensor:
    """The block semantics of `search_space.design`, written out with torch.nn.functional."""
    spec = unit.spec
    attn = unit.attn(_rms(x, unit.attn_norm))
    if spec.kind == "noop":
        return x + attn
    stream = x if spec.parallel_attn else x + attn
    base = x + attn

    def ffn(h: torch.Tensor) -> torch.Tensor:
        return unit.ffn(h.reshape(-1, h.shape[-1])).reshape(h.shape)

    norms = list(unit.ffn_norms)
    if spec.norm == "pre":
        return base + ffn(_rms(stream, norms[0]))
    if spec.norm == "post":
        return _rms(base + ffn(stream), norms[0])
    if spec.norm == "sandwich":
        return base + _rms(ffn(_rms(stream, norms[0])), norms[1])
    return base + ffn(stream)


def _randomise_norms(model: torch.nn.Module, seed: int) -> None:
    # Gains of one and biases of zero would hide a norm applied in the wrong place.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.copy_(1.0 + 0.5 * torch.randn(p.shape, generator=gen))


@settings(max_examples=15, deadline=None)
@given(design=designs())
def test_units_follow_block_semantics(design: FFNDesign) -> None:
    model = build_model(design, backend="torch", seed=1)
    _randomise_norms(model, 2)
    x = torch.randn(2, 5, design.dims.d_model, generator=torch.Generator().manual_seed(0))
    for unit in model.units:
        got = unit(x)
        if isinstance(unit, LayerUnit):
            want = _brute_force_layer(unit, x)
        else:
            assert isinstance(unit, FusionUnit)
            h = x
            for norm, attn in zip(unit.attn_norms, unit.attns, strict=True):
                h = h + attn(_rms(h, norm))
            flat = h.reshape(-1, h.shape[-1])
            want = h + sum(
                ffn(_rms(flat, norm)).reshape(h.shape)
                for norm, ffn in zip(unit.ffn.norms, unit.ffn.ffns, strict=True)
            )
        # fp32 throughout; differences are reassociation only (a few ulp of O(1) values).
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        x = got


def test_model_forward_shapes_and_gradients() -> None:
    design = FFNDesign(
        dims=DIMS.model_copy(update={"tie_embeddings": True}),
        layers=(
            LayerFFN(kind="moe", width=16, experts=4, top_k=2, shared_experts=1),
            LayerFFN(kind="lowrank", width=64, rank=8, activation="gelu"),
        ),
    )
    model = build_model(design, backend="torch")
    tokens = torch.randint(0, 64, (2, 7))
    logits = model(tokens)
    assert logits.shape == (2, 7, 64)
    logits.float().logsumexp(-1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.head is None


def test_unknown_backend_is_rejected() -> None:
    design = FFNDesign(dims=DIMS, layers=(LayerFFN(width=32), LayerFFN(width=32)))
    with pytest.raises(ValueError, match="backend must be one of"):
        build_model(design, backend="jax")


def test_tokens_must_be_two_dimensional() -> None:
    design = FFNDesign(dims=DIMS, layers=(LayerFFN(width=32), LayerFFN(width=32)))
    with pytest.raises(ValueError, match=r"tokens must be \[batch, seq\]"):
        build_model(design, backend="torch")(torch.zeros(3, dtype=torch.long))


def _layers(*specs: dict) -> tuple[LayerFFN, ...]:
    return tuple(LayerFFN(**spec) for spec in specs)


# Every kind, activation, norm placement and type, sparsity, parallel attention and fusion.
BACKEND_DESIGNS = [
    _layers(
        {"kind": "dense", "width": 96, "fusion_group": 0},
        {"kind": "dense", "width": 32, "fusion_group": 0},
        {
            "kind": "moe",
            "width": 16,
            "experts": 4,
            "top_k": 2,
            "shared_experts": 1,
            "activation": "geglu",
            "norm": "sandwich",
            "norm_type": "layernorm",
        },
        {"kind": "lowrank", "width": 96, "rank": 8, "activation": "gelu", "parallel_attn": True},
    ),
    _layers(
        {"kind": "blockdiag", "width": 96, "blocks": 4, "activation": "relu2", "norm": "post"},
        {
            "kind": "dense",
            "width": 64,
            "activation": "geglu",
            "norm_type": "layernorm",
            "sparsity": {"pattern": "block", "block_size": 16, "density": 0.4},
        },
        {"kind": "dense", "width": 64, "sparsity": "2:4", "norm": "none"},
        {"kind": "noop"},
    ),
    _layers(
        {"kind": "linear", "parallel_attn": True, "norm": "sandwich"},
        {
            "kind": "dense",
            "width": 48,
            "activation": "relu2",
            "norm_type": "layernorm",
            "fusion_group": 3,
        },
        {
            "kind": "dense",
            "width": 80,
            "activation": "relu2",
            "norm_type": "layernorm",
            "fusion_group": 3,
        },
        {"kind": "lowrank", "width": 64, "rank": 24, "activation": "swiglu", "norm": "post"},
    ),
]


@pytest.mark.parametrize("layers", BACKEND_DESIGNS, ids=["fusion-moe-lowrank", "sparse", "ln"])
@pytest.mark.parametrize("tokens", [(1, 7), (2, 11)], ids=["merged-lowrank", "factored"])
def test_both_backends_compute_the_same_function(
    layers: tuple[LayerFFN, ...], tokens: tuple[int, int]
) -> None:
    dims = DIMS.model_copy(update={"n_layers": len(layers)})
    design = FFNDesign(dims=dims, layers=layers)
    models = {b: build_model(design, backend=b, seed=11) for b in ("torch", "triton")}
    for model in models.values():
        _randomise_norms(model, 4)
    ids = torch.randint(0, dims.vocab, tokens, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = models["torch"](ids)
        got = models["triton"](ids)
        paths = {u.ffn.sparse_path for u in models["triton"].units}
        # fp32 everywhere with IEEE dots: only summation order differs.
        torch.testing.assert_close(got, want, atol=2e-5, rtol=2e-5)
        x = torch.randn(13, dims.d_model, generator=torch.Generator().manual_seed(1))
        for unit_t, unit_k in zip(models["torch"].units, models["triton"].units, strict=True):
            torch.testing.assert_close(unit_k.ffn(x), unit_t.ffn(x), atol=2e-5, rtol=2e-5)
    if any(layer.kind == "lowrank" for layer in layers):
        assert ("lowrank_merged" if tokens[0] * tokens[1] < 16 else "lowrank") in paths
    if any(layer.sparsity.pattern == "block" for layer in layers):
        assert "block_sparse" in paths


@settings(max_examples=4, deadline=None)
@given(design=designs())
def test_both_backends_agree_on_random_designs(design: FFNDesign) -> None:
    ids = torch.randint(0, design.dims.vocab, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = build_model(design, backend="torch", seed=2)(ids)
        got = build_model(design, backend="triton", seed=2)(ids)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=2e-5)

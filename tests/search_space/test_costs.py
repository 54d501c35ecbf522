"""Hand-checked cost tables (d_model 64, 4 heads, 2 KV heads, vocab 256).

Every expected number below is derived by hand in the comment beside it from the contract's
conventions (docs/contracts.md), not computed by the code under test.
"""

from __future__ import annotations

import math

import pytest

from search_space.costs import design_costs
from search_space.costs import expected_experts_touched
from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims
from search_space.workload import Workload

D = 64
# attention: q,o 64*64 each + k,v 64*(2*16) each + RMSNorm 64 = 8192 + 4096 + 64
ATTN = 12352


def dims(n_layers: int = 1, **kw: object) -> ModelDims:
    base: dict[str, object] = dict(
        d_model=D, n_layers=n_layers, n_heads=4, n_kv_heads=2, vocab=256, seq_len=64
    )
    base.update(kw)
    return ModelDims.model_validate(base)


def one(layer: dict[str, object], **dims_kw: object) -> FFNDesign:
    return FFNDesign(dims=dims(**dims_kw), layers=(LayerFFN.model_validate(layer),))


# (layer, ffn params, active, nonzero, FFN norm params, FFN FLOPs per token)
TABLE: list[tuple[str, dict[str, object], int, int, int, int, int]] = [
    # dense SwiGLU: 3*d*f = 3*64*256
    ("dense-swiglu", {"kind": "dense", "width": 256}, 49152, 49152, 49152, 64, 98304),
    # dense GELU (ungated): 2*64*256; LayerNorm pre-norm = 2d
    (
        "dense-gelu-layernorm",
        {"kind": "dense", "width": 256, "activation": "gelu", "norm_type": "layernorm"},
        32768,
        32768,
        32768,
        128,
        65536,
    ),
    # moe E=4 k=2 S=1 w=64 swiglu: expert 3*64*64=12288; router 64*4=256;
    # total 256 + 4*12288 + 12288 = 61696; active 256 + (2+1)*12288 = 37120
    (
        "moe-shared",
        {"kind": "moe", "width": 64, "experts": 4, "top_k": 2, "shared_experts": 1},
        61696,
        37120,
        61696,
        64,
        74240,
    ),
    # lowrank gelu (m=2), f=256, r=16: 2*(64*16 + 16*256) = 2*5120
    (
        "lowrank",
        {"kind": "lowrank", "width": 256, "rank": 16, "activation": "gelu"},
        10240,
        10240,
        10240,
        64,
        20480,
    ),
    # blockdiag swiglu f=256 b=4: 3*64*256/4; sandwich = two RMSNorms
    (
        "blockdiag-sandwich",
        {"kind": "blockdiag", "width": 256, "blocks": 4, "norm": "sandwich"},
        12288,
        12288,
        12288,
        128,
        24576,
    ),
    # 2:4 keeps half: 49152/2; FLOPs on kept weights only
    (
        "dense-2:4",
        {"kind": "dense", "width": 256, "sparsity": "2:4"},
        49152,
        49152,
        24576,
        64,
        49152,
    ),
    # block 16x16 at density 0.3, relu2 (m=2), f=256: tiles per matrix (64/16)*(256/16)=64,
    # round(19.2)=19 tiles * 256 = 4864 per matrix, *2 matrices = 9728
    (
        "dense-block-sparse",
        {
            "kind": "dense",
            "width": 256,
            "activation": "relu2",
            "sparsity": {"pattern": "block", "block_size": 16, "density": 0.3},
        },
        32768,
        32768,
        9728,
        64,
        19456,
    ),
    # block sparse at a tiny density keeps at least one tile per matrix: max(1, round(0.32))
    (
        "dense-block-floor",
        {
            "kind": "dense",
            "width": 256,
            "sparsity": {"pattern": "block", "block_size": 16, "density": 0.005},
        },
        49152,
        49152,
        3 * 256,
        64,
        2 * 3 * 256,
    ),
    # linear: one d*d matrix; post-norm is one norm
    ("linear", {"kind": "linear", "norm": "post"}, 4096, 4096, 4096, 64, 8192),
    # noop: no FFN, no norm
    ("noop", {"kind": "noop"}, 0, 0, 0, 0, 0),
]


@pytest.mark.parametrize(
    ("layer", "params", "active", "nonzero", "norm", "flops"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_layer_cost_table(
    layer: dict[str, object], params: int, active: int, nonzero: int, norm: int, flops: int
) -> None:
    costs = design_costs(one(layer), Workload(phase="prefill", batch=1, seq=8))
    cost = costs.layers[0]
    assert cost.attn_params == ATTN
    assert cost.ffn_params == params
    assert cost.ffn_params_active == active
    assert cost.ffn_params_nonzero == nonzero
    assert cost.ffn_norm_params == norm
    assert cost.ffn_flops_per_token == flops
    assert cost.params == ATTN + params + norm
    # totals: + embedding 256*64 + head 256*64 + final RMSNorm 64
    assert costs.params == ATTN + params + norm + 16384 + 16384 + 64
    assert costs.params_nonzero == ATTN + nonzero + norm + 16384 + 16384 + 64


def test_tied_embeddings_drop_the_head() -> None:
    costs = design_costs(one({"kind": "noop"}, tie_embeddings=True))
    assert costs.head_params == 0
    assert costs.params == ATTN + 16384 + 64


def test_attention_flops_and_kv_cache() -> None:
    design = one({"kind": "noop"})
    # prefill b1 s8: projections 2*(2*64*64 + 2*64*32)*8 = 196608;
    # causal pairs 8*9/2 = 36, 4*64*36 = 9216
    prefill = design_costs(design, Workload(phase="prefill", batch=1, seq=8)).layers[0]
    assert prefill.attn_flops_per_step == 196608 + 9216
    # kv bf16: 2 * 32 * 1 * 8 * 2 bytes
    assert prefill.kv_cache_bytes == 1024
    # decode b2 over 8 cached keys: 2*12288*2 tokens + 4*64*(2*8) pairs
    decode = design_costs(design, Workload(phase="decode", batch=2, seq=8)).layers[0]
    assert decode.attn_flops_per_step == 49152 + 4096
    assert decode.kv_cache_bytes == 2048


def test_head_flops_in_totals() -> None:
    costs = design_costs(one({"kind": "noop"}), Workload(phase="decode", batch=1, seq=8))
    # one token: attention 2*12288 + 4*64*8, head 2*64*256
    assert costs.flops_per_step == 24576 + 2048 + 32768
    assert costs.flops_per_token == pytest.approx(24576 + 2048 + 32768)


def test_moe_weight_bytes_counts_distinct_experts() -> None:
    layer = {"kind": "moe", "width": 64, "experts": 4, "top_k": 2, "shared_experts": 1}
    design = one(layer)
    # decode, one token: router 256 + shared 12288 + E*(1-(1-k/E)^1) = 2 experts * 12288,
    # + norm 64 = 37184 weights * 2 bytes (bf16)
    one_token = design_costs(design, Workload(phase="decode", batch=1, seq=8)).layers[0]
    assert one_token.ffn_weight_bytes == pytest.approx(37184 * 2)
    # 3 tokens: 4*(1 - 0.5^3) = 3.5 experts
    three = design_costs(design, Workload(phase="decode", batch=3, seq=8)).layers[0]
    assert three.ffn_weight_bytes == pytest.approx((256 + 12288 + 3.5 * 12288 + 64) * 2)
    # a long prefill touches all 4 experts
    many = design_costs(design, Workload(phase="prefill", batch=1, seq=512)).layers[0]
    assert many.ffn_weight_bytes == pytest.approx((61696 + 64) * 2)


def test_expected_experts_touched_matches_brute_force() -> None:
    # E=4, k=2, T=2: enumerate all C(4,2)^2 = 36 equally likely routings
    pairs = [(a, b) for a in range(4) for b in range(a + 1, 4)]
    total = sum(len(set(p) | set(q)) for p in pairs for q in pairs)
    assert expected_experts_touched(4, 2, 2) == pytest.approx(total / 36)
    assert math.isclose(expected_experts_touched(8, 8, 1), 8.0)


def test_fused_group_reads_its_input_once() -> None:
    fused = {"kind": "dense", "width": 128, "fusion_group": 0}
    design = FFNDesign(
        dims=dims(n_layers=3, dtype="fp32"),
        layers=(
            LayerFFN.model_validate(fused),
            LayerFFN.model_validate(fused),
            LayerFFN(kind="dense", width=128),
        ),
    )
    costs = design_costs(design, Workload(phase="decode", batch=2, seq=8))
    first, second, alone = costs.layers
    # params as for unfused layers: 3*64*128 each
    assert first.ffn_params == second.ffn_params == 24576
    assert first.fusion_group == second.fusion_group == 0
    # activations, 2 tokens, fp32: first 2*(2*64 + 2*128)*4, second only 2*(2*128)*4
    assert first.activation_bytes == 2 * 384 * 4
    assert second.activation_bytes == 2 * 256 * 4
    assert alone.activation_bytes == 2 * 384 * 4


def test_moe_and_lowrank_activation_bytes() -> None:
    moe = {"kind": "moe", "width": 64, "experts": 4, "top_k": 2, "shared_experts": 1}
    cost = design_costs(one(moe, dtype="fp16"), Workload(phase="decode", batch=1)).layers[0]
    # 1 token: 2*64 + 2*4 + 2*(4*64 + 2*64) + 2*1*64 = 128 + 8 + 768 + 128, fp16
    assert cost.activation_bytes == (128 + 8 + 768 + 128) * 2
    low = {"kind": "lowrank", "width": 256, "rank": 16}
    cost = design_costs(one(low, dtype="fp16"), Workload(phase="decode", batch=1)).layers[0]
    # 2*64 + 2*256 + 2*3*16
    assert cost.activation_bytes == (128 + 512 + 96) * 2


def test_dtype_override_scales_bytes() -> None:
    design = one({"kind": "dense", "width": 256})
    bf16 = design_costs(design, Workload(phase="decode"))
    fp32 = design_costs(design, Workload(phase="decode"), dtype="fp32")
    assert fp32.dtype == "fp32"
    assert fp32.weight_bytes == pytest.approx(2 * bf16.weight_bytes)
    assert fp32.weight_memory_bytes == fp32.params * 4

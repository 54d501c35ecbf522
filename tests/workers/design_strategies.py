"""Hypothesis strategy for small random valid designs of every kind (builder tests).

Small dims keep the Triton interpreter fast; every kind, activation, norm placement, norm
type, sparsity pattern, parallel attention and fusion groups appear.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims

D_MODEL = 64
ACTS = ("swiglu", "geglu", "gelu", "relu2")
PLACEMENTS = ("pre", "post", "sandwich", "none")
NORM_TYPES = ("rmsnorm", "layernorm")


@st.composite
def layer_ffns(draw: st.DrawFn, kind: str | None = None) -> LayerFFN:
    kind = kind or draw(
        st.sampled_from(("dense", "moe", "lowrank", "blockdiag", "linear", "noop"))
    )
    if kind == "noop":
        return LayerFFN(kind="noop")
    spec: dict[str, Any] = {
        "kind": kind,
        "norm": draw(st.sampled_from(PLACEMENTS)),
        "norm_type": draw(st.sampled_from(NORM_TYPES)),
        "parallel_attn": draw(st.booleans()),
    }
    if kind != "linear":
        spec["activation"] = draw(st.sampled_from(ACTS))
    if kind == "dense":
        spec["width"] = draw(st.sampled_from((32, 96, 160)))
        sparsity = draw(st.sampled_from(("none", "2:4", "block")))
        if sparsity == "2:4":
            spec["sparsity"] = "2:4"
        elif sparsity == "block":
            spec["sparsity"] = {
                "pattern": "block",
                "block_size": draw(st.sampled_from((16, 32))),
                "density": draw(st.sampled_from((0.1, 0.5, 1.0))),
            }
            if spec["width"] % spec["sparsity"]["block_size"]:
                spec["width"] = 64
    elif kind == "moe":
        experts = draw(st.integers(2, 6))
        spec.update(
            width=draw(st.sampled_from((16, 48))),
            experts=experts,
            top_k=draw(st.integers(1, min(experts, 3))),
            shared_experts=draw(st.integers(0, 1)),
        )
    elif kind == "lowrank":
        spec.update(width=draw(st.sampled_from((64, 96))), rank=draw(st.sampled_from((8, 24))))
    elif kind == "blockdiag":
        blocks = draw(st.sampled_from((2, 4)))
        spec.update(width=blocks * draw(st.sampled_from((8, 24))), blocks=blocks)
    return LayerFFN(**spec)


@st.composite
def designs(draw: st.DrawFn, n_layers: int | None = None) -> FFNDesign:
    n = n_layers or draw(st.integers(1, 4))
    layers = [draw(layer_ffns()) for _ in range(n)]
    # Maybe turn a run of 2-3 layers into a fusion group of dense pre-norm layers.
    if n >= 2 and draw(st.booleans()):
        start = draw(st.integers(0, n - 2))
        size = draw(st.integers(2, min(3, n - start)))
        act = draw(st.sampled_from(ACTS))
        norm_type = draw(st.sampled_from(NORM_TYPES))
        for i in range(start, start + size):
            layers[i] = LayerFFN(
                kind="dense",
                width=draw(st.sampled_from((32, 96))),
                activation=act,
                norm_type=norm_type,
                fusion_group=7,
            )
    dims = ModelDims(
        d_model=D_MODEL,
        n_layers=n,
        n_heads=4,
        n_kv_heads=draw(st.sampled_from((1, 2, 4))),
        vocab=64,
        seq_len=16,
        dtype="fp32",
        tie_embeddings=draw(st.booleans()),
    )
    return FFNDesign(dims=dims, layers=tuple(layers))

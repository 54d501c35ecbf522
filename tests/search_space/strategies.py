"""Hypothesis strategies for valid designs, shared by the whole test suite.

`designs()` draws valid `FFNDesign`s that cover every kind, activation, sparsity pattern,
norm placement and type, parallel attention, and fusion groups (runs of fusable dense
layers). Widths are drawn so that every kind-specific rule holds (``top_k <= experts``,
``rank < width``, ``width % blocks == 0``, tiles divide the width, ...).

    from tests.search_space.strategies import designs
    @given(designs())
    def test_x(design): ...
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from search_space.design import ACTIVATIONS
from search_space.design import SPARSE_BLOCK_SIZES
from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims

__all__ = ["designs", "dims", "layers"]

NORMS = ("pre", "post", "sandwich", "none")
NORM_TYPES = ("rmsnorm", "layernorm")


@st.composite
def dims(
    draw: st.DrawFn, *, max_layers: int = 6, d_models: tuple[int, ...] = (64, 128, 256)
) -> ModelDims:
    d_model = draw(st.sampled_from(d_models))
    n_heads = draw(st.sampled_from([h for h in (1, 2, 4, 8) if d_model % h == 0]))
    n_kv_heads = draw(st.sampled_from([k for k in (1, 2, 4, 8) if n_heads % k == 0]))
    return ModelDims(
        d_model=d_model,
        n_layers=draw(st.integers(1, max_layers)),
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        vocab=draw(st.sampled_from([256, 1000, 32000])),
        seq_len=draw(st.sampled_from([128, 2048])),
        dtype=draw(st.sampled_from(["fp32", "fp16", "bf16"])),
        tie_embeddings=draw(st.booleans()),
    )


@st.composite
def layers(draw: st.DrawFn, d_model: int, *, fusable: bool = False) -> LayerFFN:
    """One valid layer for width `d_model`; `fusable` forces a pre-norm dense layer."""
    kind = (
        "dense"
        if fusable
        else draw(st.sampled_from(["dense", "moe", "lowrank", "blockdiag", "linear", "noop"]))
    )
    data: dict[str, Any] = {"kind": kind}
    if kind != "noop":
        data["activation"] = draw(st.sampled_from(ACTIVATIONS))
        data["norm"] = "pre" if fusable else draw(st.sampled_from(NORMS))
    data["norm_type"] = draw(st.sampled_from(NORM_TYPES))
    if kind not in ("noop", "linear") and not fusable:
        data["parallel_attn"] = draw(st.booleans())
    if kind == "dense":
        data["width"] = 16 * draw(st.integers(1, 64))
        if not fusable:
            pattern = draw(st.sampled_from(["none", "2:4", "block"]))
            if pattern == "2:4":
                data["sparsity"] = "2:4"
            elif pattern == "block":
                sizes = [s for s in SPARSE_BLOCK_SIZES if d_model % s == 0]
                size = draw(st.sampled_from(sizes))
                data["width"] = size * draw(st.integers(1, 8))
                data["sparsity"] = {
                    "pattern": "block",
                    "block_size": size,
                    "density": draw(st.sampled_from([0.05, 0.25, 0.5, 0.75, 1.0])),
                }
    elif kind == "moe":
        experts = draw(st.integers(2, 16))
        data.update(
            width=draw(st.integers(1, 512)),
            experts=experts,
            top_k=draw(st.integers(1, experts)),
            shared_experts=draw(st.integers(0, 2)),
        )
    elif kind == "lowrank":
        width = draw(st.integers(2, 1024))
        data.update(width=width, rank=draw(st.integers(1, min(width, d_model) - 1)))
    elif kind == "blockdiag":
        blocks = draw(st.sampled_from([b for b in (2, 4, 8, 16) if d_model % b == 0]))
        data.update(blocks=blocks, width=blocks * draw(st.integers(1, 64)))
    return LayerFFN.model_validate(data)


@st.composite
def designs(draw: st.DrawFn, *, max_layers: int = 6, fusion: bool = True) -> FFNDesign:
    """A valid design; runs of fusable layers sometimes share a fusion group."""
    model = draw(dims(max_layers=max_layers))
    d = model.d_model
    result: list[LayerFFN] = []
    group = draw(st.integers(0, 3))  # group ids need not start at 0
    while len(result) < model.n_layers:
        left = model.n_layers - len(result)
        if fusion and left >= 2 and draw(st.integers(0, 3)) == 0:
            size = draw(st.integers(2, min(3, left)))
            first = draw(layers(d, fusable=True))
            for _ in range(size):
                member = draw(layers(d, fusable=True)).model_dump()
                member.update(
                    activation=first.activation, norm_type=first.norm_type, fusion_group=group
                )
                result.append(LayerFFN.model_validate(member))
            group += draw(st.integers(1, 3))
        else:
            result.append(draw(layers(d)))
    name = draw(st.one_of(st.none(), st.text(max_size=20)))
    return FFNDesign(name=name, dims=model, layers=tuple(result))

"""Exports: JSON round trip, decilm/puzzletron round trips with exact lossy reports."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from pydantic import ValidationError

from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims
from search_space.design import design_json_schema
from search_space.errors import ExportError
from search_space.export import export_design
from search_space.export import import_design
from search_space.export.common import renumber_fusion
from search_space.export.decilm import width_of_ffn_mult
from search_space.export.native import shipped_schema
from tests.search_space.strategies import designs

KNOBS = (
    "kind",
    "width",
    "activation",
    "experts",
    "top_k",
    "shared_experts",
    "rank",
    "blocks",
    "sparsity",
    "fusion_group",
    "parallel_attn",
    "norm",
    "norm_type",
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def changed_knobs(before: FFNDesign, after: FFNDesign) -> set[tuple[int, str]]:
    return {
        (i, knob)
        for i, (a, b) in enumerate(zip(before.layers, after.layers, strict=True))
        for knob in KNOBS
        if getattr(a, knob) != getattr(b, knob)
    }


@SETTINGS
@given(designs())
def test_json_round_trip_is_identity(design: FFNDesign) -> None:
    assert FFNDesign.from_json(design.to_json()) == design
    result = export_design(design, "native")
    assert result.lossy == ()
    assert import_design(result.content, "native") == design


@pytest.mark.parametrize("fmt", ["decilm", "puzzletron"])
@SETTINGS
@given(design=designs())
def test_round_trip_keeps_expressible_knobs_and_reports_the_rest(
    fmt: str, design: FFNDesign
) -> None:
    result = export_design(design, fmt)
    back = import_design(result.content, fmt)
    assert back.dims == design.dims
    assert back.name == design.name
    # Fusion group ids are labels: puzzletron gives them back as 0, 1, ... in layer order.
    reference = renumber_fusion(design) if fmt == "puzzletron" else design
    reported = {(item.layer, item.knob) for item in result.lossy_only}
    assert reported == changed_knobs(reference, back)
    # What came back is expressible: exporting it again loses nothing and reads back equal.
    again = export_design(back, fmt)
    assert again.lossy_only == ()
    assert import_design(again.content, fmt) == back


def test_decilm_config_fields_follow_the_engines() -> None:
    dims = ModelDims(
        d_model=4096, n_layers=4, n_heads=32, n_kv_heads=8, vocab=128256, seq_len=8192
    )
    design = FFNDesign(
        dims=dims,
        layers=(
            LayerFFN(kind="dense", width=6144),  # ffn_mult 2.25
            LayerFFN(kind="dense", width=14336),
            LayerFFN(kind="linear"),
            LayerFFN(kind="noop"),
        ),
    )
    result = export_design(design, "decilm")
    text = result.content
    config = json.loads(text)
    assert config["architectures"] == ["DeciLMForCausalLM"]
    assert config["model_type"] == "nemotron-nas"
    assert config["auto_map"]["AutoConfig"] == "configuration_decilm.DeciLMConfig"
    assert config["num_key_value_heads"] is None
    blocks = config["block_configs"]
    assert len(blocks) == 4
    assert all(b["attention"]["n_heads_in_group"] == 4 for b in blocks)
    assert blocks[1]["ffn"]["ffn_mult"] == 5.25
    assert blocks[2]["ffn"] == {
        "ffn_mult": None,
        "no_op": False,
        "replace_with_linear": True,
        "sparsify": None,
    }
    assert blocks[3]["ffn"]["ffn_mult"] is None and blocks[3]["ffn"]["no_op"] is True
    assert result.lossy_only == ()
    warnings = [(w.layer, w.knob) for w in result.warnings]
    # linear (layer 2), noop drops attention (3), last layer noop crashes llama.cpp (3)
    assert warnings == [(2, "kind"), (3, "kind"), (3, "kind")]
    assert "GGML_ASSERT" in result.warnings[-1].reason


def test_decilm_ffn_mult_is_a_json_float() -> None:
    dims = ModelDims(d_model=256, n_layers=1, n_heads=4, n_kv_heads=4, vocab=256, seq_len=64)
    design = FFNDesign(dims=dims, layers=(LayerFFN(kind="dense", width=512),))
    text = export_design(design, "decilm").content
    assert '"ffn_mult": 3.0' in text  # llama.cpp's converter asserts on an int


@given(st.integers(1, 200), st.sampled_from([64, 256, 1000, 4096, 5120, 8192]))
def test_ffn_mult_reproduces_every_multiple_of_256(k: int, d_model: int) -> None:
    from search_space.export.decilm import ffn_mult_for

    width = 256 * k
    mult = ffn_mult_for(width, d_model)
    assert isinstance(mult, float)
    assert width_of_ffn_mult(mult, d_model) == width


def test_decilm_reports_widths_off_the_256_grid() -> None:
    dims = ModelDims(d_model=64, n_layers=1, n_heads=4, n_kv_heads=2, vocab=256, seq_len=64)
    design = FFNDesign(dims=dims, layers=(LayerFFN(kind="dense", width=300),))
    result = export_design(design, "decilm")
    assert [(i.knob, i.value) for i in result.lossy_only] == [("width", 300)]
    assert "512" in result.lossy_only[0].reason
    assert import_design(result.content, "decilm").layers[0].width == 512


def test_puzzletron_writes_fused_groups_as_parallel_blocks() -> None:
    dims = ModelDims(d_model=64, n_layers=4, n_heads=4, n_kv_heads=2, vocab=256, seq_len=64)
    fused = {"kind": "dense", "width": 128, "fusion_group": 7}
    design = FFNDesign(
        dims=dims,
        layers=(
            LayerFFN(kind="noop"),
            LayerFFN.model_validate(fused),
            LayerFFN.model_validate({**fused, "width": 64}),
            LayerFFN(kind="moe", width=32, experts=4, top_k=2, shared_experts=1),
        ),
    )
    result = export_design(design, "puzzletron")
    blocks = json.loads(result.content)["block_configs"]
    assert blocks[1]["ffn"]["no_op"] and blocks[2]["ffn"]["no_op"]
    assert blocks[1]["parallel_blocks"] is None
    parallel = blocks[2]["parallel_blocks"]
    assert [p["ffn"]["intermediate_size"] for p in parallel] == [128, 64]
    assert all(p["attention"]["no_op"] for p in parallel)
    assert blocks[3]["ffn"]["moe"] == {
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "expert_intermediate_dim": 32,
        "shared_expert_intermediate_dim": 32,
    }
    back = import_design(result.content, "puzzletron")
    assert back == renumber_fusion(design)
    assert back.layers[0].kind == "noop"  # the noop before the group is not a member


def test_import_checks_given_dims() -> None:
    dims = ModelDims(d_model=64, n_layers=1, n_heads=4, n_kv_heads=2, vocab=256, seq_len=64)
    design = FFNDesign(dims=dims, layers=(LayerFFN(kind="dense", width=256),))
    text = export_design(design, "decilm").content
    assert import_design(text, "decilm", dims=dims) == design
    with pytest.raises(ExportError, match=r"dims.vocab"):
        import_design(text, "decilm", dims=dims.model_copy(update={"vocab": 512}))


def test_import_rejects_foreign_files() -> None:
    with pytest.raises(ExportError, match="not a DeciLM config"):
        import_design(json.dumps({"model_type": "llama"}), "decilm")
    with pytest.raises(ExportError, match="block_configs"):
        import_design("{}", "puzzletron")
    with pytest.raises(ExportError, match="format must be one of"):
        export_design(
            FFNDesign(
                dims=ModelDims(
                    d_model=64, n_layers=1, n_heads=4, n_kv_heads=2, vocab=256, seq_len=64
                ),
                layers=(LayerFFN(kind="noop"),),
            ),
            "onnx",
        )


def test_shipped_schema_equals_generated() -> None:
    assert shipped_schema() == design_json_schema()


# --- invalid mutations are rejected with a message naming the field ----------------------


def _mutations(layer: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(description, changes to the layer dict, text the error must contain)."""
    kind = layer["kind"]
    out = [
        ("unknown kind", {"kind": "bogus"}, "kind"),
        ("unknown field", {"colour": 1}, "colour"),
        ("unknown norm", {"norm": "sideways"}, "norm"),
        ("unknown activation", {"activation": "tanh"}, "activation"),
        ("negative fusion group", {"fusion_group": -1}, "fusion_group"),
    ]
    if kind == "moe":
        out += [
            ("top_k > experts", {"top_k": layer["experts"] + 1}, "top_k"),
            ("one expert", {"experts": 1, "top_k": 1}, "experts"),
            ("no top_k", {"top_k": None}, "top_k"),
        ]
    if kind == "lowrank":
        out += [("rank = width", {"rank": layer["width"]}, "rank")]
    if kind == "blockdiag":
        out += [("blocks not dividing", {"blocks": layer["width"] + 1}, "blocks")]
    if kind == "dense":
        out += [
            ("block without size", {"sparsity": {"pattern": "block"}}, "block_size"),
            ("no width", {"width": None}, "width"),
            ("rank on dense", {"rank": 4}, "rank"),
        ]
    if kind in ("noop", "linear"):
        out += [("width on " + kind, {"width": 64}, "width")]
    if kind == "noop":
        out += [("noop with norm", {"norm": "pre"}, "norm")]
    return out


@SETTINGS
@given(design=designs(), data=st.data())
def test_invalid_mutations_are_rejected_naming_the_field(
    design: FFNDesign, data: st.DataObject
) -> None:
    raw = json.loads(design.to_json())
    index = data.draw(st.integers(0, len(raw["layers"]) - 1))
    layer = raw["layers"][index]
    what, change, field = data.draw(st.sampled_from(_mutations(layer)))
    raw["layers"][index] = {**layer, **change}
    with pytest.raises(ValidationError) as info:
        FFNDesign.model_validate(raw)
    assert field in str(info.value), (what, str(info.value))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r["dims"].update(n_kv_heads=3), "n_kv_heads"),
        (lambda r: r["dims"].update(d_model=-1), "d_model"),
        (lambda r: r["layers"].pop(), "len(layers)"),
        (lambda r: r.update(schema_version=2), "schema_version"),
    ],
)
def test_invalid_model_mutations(change: Any, field: str) -> None:
    dims = ModelDims(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab=256, seq_len=64)
    raw = json.loads(
        FFNDesign(dims=dims, layers=(LayerFFN(kind="dense", width=64),) * 2).to_json()
    )
    change(raw)
    with pytest.raises(ValidationError, match=field.replace("(", r"\(").replace(")", r"\)")):
        FFNDesign.model_validate(raw)

"""`decilm`: a Hugging Face ``config.json`` for ``DeciLMForCausalLM`` (``nemotron-nas``).

One ``block_configs`` entry per layer. The format (as vLLM, SGLang, TensorRT-LLM, mlx-lm and
llama.cpp read it; ``reference/nas-anchors.md`` §1 and §6) carries, per layer, attention
``n_heads_in_group`` (KV heads = ``num_attention_heads // n_heads_in_group``) and an FFN that
is a SwiGLU of width ``round_up(int(2 * ffn_mult * hidden / 3), 256)``, a no-op
(``ffn_mult: null`` *and* ``no_op: true``: llama.cpp's converter reads only the null), or one
linear layer (``replace_with_linear``). ``ffn_mult`` is always a JSON float (the llama.cpp
converter asserts on an integer in layer 0).

Everything else is reported in `ExportResult.lossy`: MoE, low-rank and block-diagonal FFNs
(exported as the dense FFN of the same width; MoE as its active width ``(top_k + shared) *
width``), widths that are not multiples of 256 (rounded up), activations other than SwiGLU,
sparsity, norm placement/type, parallel attention and fusion. Known engine faults come as
``severity="warning"`` items: llama.cpp drops the attention output of a layer without an
FFN and crashes at load when the last layer has none; FFN ``replace_with_linear`` cannot be
converted by llama.cpp and has no vLLM path.
"""

from __future__ import annotations

import json
from typing import Any

from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims
from search_space.errors import ExportError
from search_space.export.common import HF_DTYPES
from search_space.export.common import activation_from_hf
from search_space.export.common import check_dims
from search_space.export.common import dims_from_header
from search_space.export.common import round_up
from search_space.export.common import shared_lossy
from search_space.export.report import ExportResult
from search_space.export.report import LossyItem

__all__ = ["export_decilm", "ffn_mult_for", "import_decilm", "width_of_ffn_mult"]

WIDTH_MULTIPLE = 256
_ATTENTION_DEFAULTS: dict[str, Any] = {
    "no_op": False,
    "replace_with_linear": False,
    "sparsify": None,
    "window_length": None,
    "num_sink_tokens": None,
    "unshifted_sink": False,
    "use_prefill_window_in_sink_attention": False,
}


def width_of_ffn_mult(ffn_mult: float, d_model: int) -> int:
    """The FFN width engines derive from ``ffn_mult`` (DeciLM's ``_ffn_mult_to_intermediate``)."""
    return round_up(int(2 * ffn_mult * d_model / 3), WIDTH_MULTIPLE)


def ffn_mult_for(width: int, d_model: int) -> float:
    """An ``ffn_mult`` that engines turn back into `width` (a multiple of 256): the exact
    ratio ``3*width/(2*d_model)`` when it has at most 6 decimals (14336 at hidden 4096 ->
    5.25, as NVIDIA's configs write it), else the shortest decimal that rounds back."""
    exact = 3 * width / (2 * d_model)
    for digits in (6, *range(1, 10)):
        if digits == 6 and round(exact, 6) != exact:
            continue
        candidate = round(exact, digits)
        if candidate > 0 and width_of_ffn_mult(candidate, d_model) == width:
            return float(candidate)
    if width_of_ffn_mult(exact, d_model) != width:
        raise ExportError(f"no ffn_mult gives width {width} at d_model {d_model}")
    return float(exact)


def _exported_width(layer: LayerFFN) -> int:
    assert layer.width is not None
    if layer.kind == "moe":
        assert layer.top_k is not None
        return (layer.top_k + layer.shared_experts) * layer.width
    return layer.width


def _ffn(i: int, layer: LayerFFN, design: FFNDesign, lossy: list[LossyItem]) -> dict[str, Any]:
    d = design.dims.d_model
    last = i == design.dims.n_layers - 1

    def add(knob: str, value: Any, reason: str, severity: str = "lossy") -> None:
        lossy.append(
            LossyItem(layer=i, knob=knob, value=value, reason=reason, severity=severity)  # type: ignore[arg-type]
        )

    if layer.kind == "noop":
        add(
            "kind",
            "noop",
            "llama.cpp skips the whole layer when it has no FFN, dropping its attention "
            "output (src/models/deci.cpp `if (n_ff == 0) continue;`)",
            "warning",
        )
        if last:
            add(
                "kind",
                "noop",
                "llama.cpp crashes at load when the last layer has no FFN (GGML_ASSERT(buffer))",
                "warning",
            )
        return {"ffn_mult": None, "no_op": True, "replace_with_linear": False, "sparsify": None}
    if layer.kind == "linear":
        add(
            "kind",
            "linear",
            "FFN replace_with_linear loads in mlx-lm and TensorRT-LLM only: llama.cpp cannot "
            "convert it and vLLM has no linear-replacement path",
            "warning",
        )
        return {"ffn_mult": None, "no_op": False, "replace_with_linear": True, "sparsify": None}
    wanted = _exported_width(layer)
    width = round_up(wanted, WIDTH_MULTIPLE)
    if layer.kind != "dense":
        detail = {
            "moe": f"its active width (top_k + shared) * width = {wanted}",
            "lowrank": f"full rank at width {wanted}",
            "blockdiag": f"a full matrix at width {wanted}",
        }[layer.kind]
        add(
            "kind",
            layer.kind,
            f"DeciLM FFNs are dense SwiGLU; exported as dense with {detail}",
        )
    if width != layer.width:
        reason = f"exported as width {width}"
        if width != wanted or layer.kind == "dense":
            reason = (
                f"ffn_mult encodes widths that are multiples of {WIDTH_MULTIPLE}; "
                f"{wanted} exported as {width}"
            )
        add("width", layer.width, reason)
    if layer.kind == "moe":
        add("experts", layer.experts, "DeciLM has no mixture of experts")
        add("top_k", layer.top_k, "DeciLM has no mixture of experts")
        if layer.shared_experts:
            add("shared_experts", layer.shared_experts, "DeciLM has no mixture of experts")
    if layer.kind == "lowrank":
        add("rank", layer.rank, "DeciLM has no low-rank FFN")
    if layer.kind == "blockdiag":
        add("blocks", layer.blocks, "DeciLM has no block-diagonal FFN")
    return {
        "ffn_mult": ffn_mult_for(width, d),
        "no_op": False,
        "replace_with_linear": False,
        "sparsify": None,
    }


def export_decilm(design: FFNDesign) -> ExportResult:
    dims = design.dims
    lossy: list[LossyItem] = []
    blocks = []
    for i, layer in enumerate(design.layers):
        ffn = _ffn(i, layer, design, lossy)
        lossy += shared_lossy(i, layer, format_name="DeciLM", fusion=False)
        attention = {"n_heads_in_group": dims.n_heads // dims.n_kv_heads, **_ATTENTION_DEFAULTS}
        blocks.append({"attention": attention, "ffn": ffn})
    config: dict[str, Any] = {
        "architectures": ["DeciLMForCausalLM"],
        "model_type": "nemotron-nas",
        "auto_map": {
            "AutoConfig": "configuration_decilm.DeciLMConfig",
            "AutoModelForCausalLM": "modeling_decilm.DeciLMForCausalLM",
        },
        "hidden_size": dims.d_model,
        "num_hidden_layers": dims.n_layers,
        "num_attention_heads": dims.n_heads,
        # DeciLMConfig nulls these: the per-layer block_configs carry them.
        "num_key_value_heads": None,
        "intermediate_size": None,
        "vocab_size": dims.vocab,
        "max_position_embeddings": dims.seq_len,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": dims.tie_embeddings,
        "torch_dtype": HF_DTYPES[dims.dtype],
        "use_cache": True,
        "block_configs": blocks,
    }
    if design.name is not None:
        config["ffnas_design_name"] = design.name
    return ExportResult(
        format="decilm",
        filename="config.json",
        content=json.dumps(config, indent=2) + "\n",
        lossy=tuple(lossy),
    )


def _layer(i: int, block: dict[str, Any], d_model: int) -> LayerFFN:
    where = f"block_configs[{i}].ffn"
    ffn = block.get("ffn")
    if not isinstance(ffn, dict):
        raise ExportError(f"{where} must be an object, but got {ffn!r}")
    if ffn.get("replace_with_linear"):
        return LayerFFN(kind="linear")
    if ffn.get("no_op") or (ffn.get("ffn_mult") is None and ffn.get("intermediate_size") is None):
        return LayerFFN(kind="noop")
    if ffn.get("intermediate_size") is not None:
        width = int(ffn["intermediate_size"])
    else:
        mult = ffn["ffn_mult"]
        if not isinstance(mult, int | float) or mult <= 0:
            raise ExportError(f"{where}.ffn_mult must be a positive number, but got {mult!r}")
        width = width_of_ffn_mult(float(mult), d_model)
    return LayerFFN(kind="dense", width=width)


def _kv_heads(blocks: list[Any], n_heads: int) -> int:
    groups = set()
    for i, block in enumerate(blocks):
        attention = block.get("attention") if isinstance(block, dict) else None
        if not isinstance(attention, dict):
            raise ExportError(f"block_configs[{i}].attention must be an object")
        group = attention.get("n_heads_in_group")
        if attention.get("no_op") or attention.get("replace_with_linear") or group is None:
            raise ExportError(
                f"block_configs[{i}].attention: ffnas designs keep GQA attention in every "
                "layer, but this layer has none (no_op, linear, or n_heads_in_group null)"
            )
        groups.add(int(group))
    if len(groups) != 1:
        raise ExportError(
            f"ffnas designs have one KV-head count, but n_heads_in_group varies: {sorted(groups)}"
        )
    group = groups.pop()
    if group <= 0 or n_heads % group != 0:
        raise ExportError(
            f"`num_attention_heads % n_heads_in_group == 0` must hold, but got "
            f"num_attention_heads={n_heads}, n_heads_in_group={group}"
        )
    return n_heads // group


def import_decilm(text: str, dims: ModelDims | None = None) -> FFNDesign:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportError(f"config.json is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ExportError("config.json must be a JSON object")
    if data.get("model_type") != "nemotron-nas" and "DeciLMForCausalLM" not in data.get(
        "architectures", []
    ):
        raise ExportError(
            "not a DeciLM config: `model_type` must be 'nemotron-nas' or `architectures` "
            f"contain 'DeciLMForCausalLM', but got model_type={data.get('model_type')!r}"
        )
    blocks = data.get("block_configs")
    if not isinstance(blocks, list):
        raise ExportError("config.json: `block_configs` must be a list")
    n_heads = data.get("num_attention_heads")
    if not isinstance(n_heads, int):
        raise ExportError(f"`num_attention_heads` must be an integer, but got {n_heads!r}")
    found = dims_from_header(data, _kv_heads(blocks, n_heads), "config.json")
    model = check_dims(found, dims)
    activation = activation_from_hf(data, "config.json")
    layers = []
    for i, block in enumerate(blocks):
        layer = _layer(i, block, model.d_model)
        if layer.kind != "noop":
            layer = layer.model_copy(update={"activation": activation})
        layers.append(layer)
    try:
        return FFNDesign(name=data.get("ffnas_design_name"), dims=model, layers=tuple(layers))
    except ValueError as exc:
        raise ExportError(f"config.json does not give a valid design: {exc}") from None

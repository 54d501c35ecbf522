"""`puzzletron`: ModelOpt Puzzletron ``BlockConfig`` JSON, one entry per layer.

Header: the model's dimensions in Hugging Face names, plus ``block_configs``. Each entry is
``{"attention": {no_op, replace_with_linear, sparsify, num_key_value_heads},
"ffn": {no_op, replace_with_linear, sparsify, intermediate_size, moe}, "parallel_blocks"}``
with ``moe = {num_local_experts, num_experts_per_tok, expert_intermediate_dim,
shared_expert_intermediate_dim}`` (``S`` shared experts of width ``w`` are one always-on
expert of width ``S*w``: the same function, since their outputs are summed).

FFN Fusion: a fused group of layers ``a..b`` runs the attentions of ``a..b`` in order, then
all their FFNs on the same stream, summed. It is written as: entries ``a..b`` keep their
attention with ``ffn.no_op = true``, and entry ``b`` carries ``parallel_blocks``: one
``BlockConfig`` per member (attention ``no_op``, the member's FFN), in layer order. Group ids
come back numbered 0, 1, ... in layer order.

Reported in `ExportResult.lossy`: low-rank and block-diagonal FFNs (exported as the dense
FFN of the same width), activations other than SwiGLU, sparsity, norm placement/type and
parallel attention. ``replace_with_linear`` FFNs get a warning (Megatron-Bridge lists them
as unsupported).
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
from search_space.export.common import shared_lossy
from search_space.export.report import ExportResult
from search_space.export.report import LossyItem

__all__ = ["FORMAT_TAG", "export_puzzletron", "import_puzzletron"]

FORMAT_TAG = "modelopt-puzzletron-block-configs"


def _attention(kv_heads: int | None) -> dict[str, Any]:
    return {
        "no_op": kv_heads is None,
        "replace_with_linear": False,
        "sparsify": None,
        "num_key_value_heads": kv_heads,
    }


def _no_ffn() -> dict[str, Any]:
    return {
        "no_op": True,
        "replace_with_linear": False,
        "sparsify": None,
        "intermediate_size": None,
        "moe": None,
    }


def _ffn(i: int, layer: LayerFFN, lossy: list[LossyItem]) -> dict[str, Any]:
    if layer.kind == "noop":
        return _no_ffn()
    ffn: dict[str, Any] = {**_no_ffn(), "no_op": False}
    if layer.kind == "linear":
        lossy.append(
            LossyItem(
                layer=i,
                knob="kind",
                value="linear",
                reason="Megatron-Bridge lists FFN replace_with_linear as not supported",
                severity="warning",
            )
        )
        return {**ffn, "replace_with_linear": True}
    assert layer.width is not None
    if layer.kind == "moe":
        return {
            **ffn,
            "moe": {
                "num_local_experts": layer.experts,
                "num_experts_per_tok": layer.top_k,
                "expert_intermediate_dim": layer.width,
                "shared_expert_intermediate_dim": layer.shared_experts * layer.width,
            },
        }
    if layer.kind in ("lowrank", "blockdiag"):
        knob, value = ("rank", layer.rank) if layer.kind == "lowrank" else ("blocks", layer.blocks)
        reason = f"BlockConfig FFNs are dense or MoE; exported as dense width {layer.width}"
        lossy.append(LossyItem(layer=i, knob="kind", value=layer.kind, reason=reason))
        lossy.append(LossyItem(layer=i, knob=knob, value=value, reason=reason))
    return {**ffn, "intermediate_size": layer.width}


def export_puzzletron(design: FFNDesign) -> ExportResult:
    dims = design.dims
    lossy: list[LossyItem] = []
    ffns = [_ffn(i, layer, lossy) for i, layer in enumerate(design.layers)]
    for i, layer in enumerate(design.layers):
        lossy += shared_lossy(i, layer, format_name="BlockConfig", fusion=True)
    blocks: list[dict[str, Any]] = [
        {"attention": _attention(dims.n_kv_heads), "ffn": ffn, "parallel_blocks": None}
        for ffn in ffns
    ]
    for members in design.fusion_groups().values():
        for i in members:
            blocks[i]["ffn"] = _no_ffn()
        blocks[members[-1]]["parallel_blocks"] = [
            {"attention": _attention(None), "ffn": ffns[i], "parallel_blocks": None}
            for i in members
        ]
    data: dict[str, Any] = {
        "format": FORMAT_TAG,
        "version": 1,
        "name": design.name,
        "hidden_size": dims.d_model,
        "num_hidden_layers": dims.n_layers,
        "num_attention_heads": dims.n_heads,
        "num_key_value_heads": dims.n_kv_heads,
        "vocab_size": dims.vocab,
        "max_position_embeddings": dims.seq_len,
        "hidden_act": "silu",
        "tie_word_embeddings": dims.tie_embeddings,
        "torch_dtype": HF_DTYPES[dims.dtype],
        "block_configs": blocks,
    }
    return ExportResult(
        format="puzzletron",
        filename="block_configs.json",
        content=json.dumps(data, indent=2) + "\n",
        lossy=tuple(lossy),
    )


def _layer(where: str, ffn: Any, activation: str) -> LayerFFN:
    if not isinstance(ffn, dict):
        raise ExportError(f"{where} must be an object, but got {ffn!r}")
    try:
        if ffn.get("no_op"):
            return LayerFFN(kind="noop")
        if ffn.get("replace_with_linear"):
            return LayerFFN(kind="linear")
        moe = ffn.get("moe")
        if moe is not None:
            width = int(moe["expert_intermediate_dim"])
            shared_dim = int(moe.get("shared_expert_intermediate_dim") or 0)
            if shared_dim % width != 0:
                raise ExportError(
                    f"{where}.moe: `shared_expert_intermediate_dim % expert_intermediate_dim "
                    f"== 0` must hold, but got {shared_dim} and {width}"
                )
            return LayerFFN(
                kind="moe",
                width=width,
                experts=int(moe["num_local_experts"]),
                top_k=int(moe["num_experts_per_tok"]),
                shared_experts=shared_dim // width,
                activation=activation,  # type: ignore[arg-type]
            )
        size = ffn.get("intermediate_size")
        if size is None:
            raise ExportError(f"{where}: needs `intermediate_size`, `moe`, or `no_op: true`")
        return LayerFFN(kind="dense", width=int(size), activation=activation)  # type: ignore[arg-type]
    except (KeyError, TypeError) as exc:
        raise ExportError(f"{where}: missing or malformed field {exc}") from None
    except ValueError as exc:
        if isinstance(exc, ExportError):
            raise
        raise ExportError(f"{where}: {exc}") from None


def _kv_heads(data: dict[str, Any], blocks: list[Any]) -> int:
    heads = data.get("num_key_value_heads")
    for i, block in enumerate(blocks):
        attention = block.get("attention") if isinstance(block, dict) else None
        if not isinstance(attention, dict) or attention.get("no_op"):
            raise ExportError(
                f"block_configs[{i}].attention: ffnas designs keep GQA attention in every layer"
            )
        kv = attention.get("num_key_value_heads", heads)
        if heads is None:
            heads = kv
        if kv != heads:
            raise ExportError(
                f"ffnas designs have one KV-head count, but block_configs[{i}] has {kv} "
                f"and the model {heads}"
            )
    if not isinstance(heads, int):
        raise ExportError(f"`num_key_value_heads` must be an integer, but got {heads!r}")
    return heads


def import_puzzletron(text: str, dims: ModelDims | None = None) -> FFNDesign:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportError(f"BlockConfig file is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("block_configs"), list):
        raise ExportError("a BlockConfig file needs a top-level `block_configs` list")
    blocks: list[Any] = data["block_configs"]
    where = "block_configs"
    model = check_dims(dims_from_header(data, _kv_heads(data, blocks), where), dims)
    activation = activation_from_hf(data, where)
    layers = [_layer(f"{where}[{i}].ffn", b["ffn"], activation) for i, b in enumerate(blocks)]
    group = 0
    for i, block in enumerate(blocks):
        parallel = block.get("parallel_blocks")
        if not parallel:
            continue
        first = i - len(parallel) + 1
        if first < 0 or any(layers[j].kind != "noop" for j in range(first, i + 1)):
            raise ExportError(
                f"{where}[{i}].parallel_blocks: the {len(parallel)} layers ending here must "
                "have `ffn.no_op: true` (their FFNs live in the parallel blocks)"
            )
        for j, sub in enumerate(parallel):
            member = _layer(f"{where}[{i}].parallel_blocks[{j}].ffn", sub.get("ffn"), activation)
            if member.kind != "dense":
                raise ExportError(
                    f"{where}[{i}].parallel_blocks[{j}]: fused FFNs must be dense, "
                    f"but got {member.kind}"
                )
            layers[first + j] = member.model_copy(update={"fusion_group": group})
        group += 1
    try:
        return FFNDesign(name=data.get("name"), dims=model, layers=tuple(layers))
    except ValueError as exc:
        raise ExportError(f"{where} does not give a valid design: {exc}") from None

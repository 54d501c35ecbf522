"""Helpers shared by the exporters: HF-style model headers, dtype names, fusion ids."""

from __future__ import annotations

from typing import Any

from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims
from search_space.errors import ExportError
from search_space.export.report import LossyItem

__all__ = [
    "HF_DTYPES",
    "check_dims",
    "dims_from_header",
    "renumber_fusion",
    "round_up",
    "shared_lossy",
]

HF_DTYPES: dict[str, str] = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
_FROM_HF = {v: k for k, v in HF_DTYPES.items()}
ACTIVATION_OF_HF_ACT = {"silu": "swiglu"}


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def require(data: dict[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise ExportError(f"{where}: field {key!r} is missing")
    return data[key]


def dims_from_header(data: dict[str, Any], n_kv_heads: int, where: str) -> ModelDims:
    """`ModelDims` from the Hugging Face-style top-level fields of a config."""
    dtype_name = data.get("torch_dtype") or "bfloat16"
    if dtype_name not in _FROM_HF:
        raise ExportError(
            f"{where}: `torch_dtype` must be one of {sorted(_FROM_HF)}, but got {dtype_name!r}"
        )
    try:
        return ModelDims(
            d_model=require(data, "hidden_size", where),
            n_layers=require(data, "num_hidden_layers", where),
            n_heads=require(data, "num_attention_heads", where),
            n_kv_heads=n_kv_heads,
            vocab=require(data, "vocab_size", where),
            seq_len=require(data, "max_position_embeddings", where),
            dtype=_FROM_HF[dtype_name],  # type: ignore[arg-type]
            tie_embeddings=bool(data.get("tie_word_embeddings", False)),
        )
    except ValueError as exc:
        raise ExportError(f"{where}: model dimensions are invalid: {exc}") from None


def activation_from_hf(data: dict[str, Any], where: str) -> str:
    act = data.get("hidden_act", "silu")
    if act not in ACTIVATION_OF_HF_ACT:
        raise ExportError(
            f"{where}: `hidden_act` must be one of {sorted(ACTIVATION_OF_HF_ACT)} (gated MLP), "
            f"but got {act!r}"
        )
    return ACTIVATION_OF_HF_ACT[act]


def check_dims(found: ModelDims, given: ModelDims | None) -> ModelDims:
    """The file's dims; ExportError naming the field when `given` disagrees."""
    if given is None:
        return found
    for field in ModelDims.model_fields:
        if getattr(found, field) != getattr(given, field):
            raise ExportError(
                f"dims.{field}: the file says {getattr(found, field)!r}, but "
                f"{getattr(given, field)!r} was given"
            )
    return found


def renumber_fusion(design: FFNDesign) -> FFNDesign:
    """The same design with fusion groups numbered 0, 1, ... in layer order.

    Group ids are labels; formats that encode fusion structurally give them back this way.
    """
    mapping: dict[int, int] = {}
    layers: list[LayerFFN] = []
    for layer in design.layers:
        group = layer.fusion_group
        if group is not None and group not in mapping:
            mapping[group] = len(mapping)
        new = None if group is None else mapping[group]
        layers.append(layer if new == group else layer.model_copy(update={"fusion_group": new}))
    return design.with_layers(layers)


def shared_lossy(i: int, layer: LayerFFN, *, format_name: str, fusion: bool) -> list[LossyItem]:
    """Knobs neither HF-style format carries: activation other than SwiGLU, sparsity, norm
    placement and type, parallel attention, and (when `fusion` is False) fusion groups."""
    items: list[LossyItem] = []

    def add(knob: str, value: Any, reason: str) -> None:
        items.append(LossyItem(layer=i, knob=knob, value=value, reason=reason))

    if layer.activation != "swiglu":
        add(
            "activation",
            layer.activation,
            f"{format_name} has one `hidden_act` (silu, i.e. SwiGLU) for every layer; "
            "exported as swiglu",
        )
    if layer.sparsity.pattern != "none":
        add(
            "sparsity",
            layer.sparsity.model_dump(exclude_none=True),
            f"{format_name} has no weight-sparsity pattern engines read; exported dense",
        )
    expected_norm = "none" if layer.kind == "noop" else "pre"
    if layer.norm != expected_norm:
        add(
            "norm",
            layer.norm,
            f"{format_name} implies a pre-norm before every FFN (post_attention_layernorm); "
            f"exported as {expected_norm}",
        )
    if layer.norm_type != "rmsnorm":
        add("norm_type", layer.norm_type, f"{format_name} uses RMSNorm; exported as rmsnorm")
    if layer.parallel_attn:
        add(
            "parallel_attn",
            True,
            f"{format_name} runs attention then FFN; exported sequential",
        )
    if not fusion and layer.fusion_group is not None:
        add(
            "fusion_group",
            layer.fusion_group,
            f"{format_name} has no fusion field; exported as sequential layers",
        )
    return items

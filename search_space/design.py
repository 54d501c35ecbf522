"""The one definition of "an FFN design" in ffnas.

A design is the model's fixed dimensions (`ModelDims`) plus one `LayerFFN` per layer.
Everything else in the project (costs, search spaces, kernels, the model builder, the
service, the dashboard, the exports) reads these frozen models; nothing else defines a
design.

Block semantics (what `workers.build.build_model` computes for layer `l`, residual `x`):

* attention (fixed by the job, causal GQA) always uses a pre-norm:
  ``x = x + attn(attn_norm(x))``; with ``parallel_attn`` attention and FFN read the same
  input (GPT-J): ``x = x + attn(attn_norm(x)) + ffn(ffn_norm(x))``.
* FFN norm placement (`norm`):
  - ``pre``      ``x = x + ffn(norm(x))``
  - ``post``     ``x = norm(x + ffn(x))``
  - ``sandwich`` ``x = x + norm_out(ffn(norm_in(x)))``
  - ``none``     ``x = x + ffn(x)``
* FFN Fusion (`fusion_group`): consecutive layers sharing a group id run their attention
  sublayers in order, then *all* their FFNs read the same stream ``h`` and their outputs are
  summed: ``x = h + sum_l ffn_l(norm_l(h))``. The group then runs as one wide gated GEMM
  (norm gains fold into the weights), as in FFN Fusion (arXiv 2503.18908).
* ``noop`` layers have no FFN (and no FFN norm); ``linear`` replaces the FFN with one
  ``d_model x d_model`` matrix (Puzzle's ``replace_with_linear``).

Parameter conventions (they must match `search_space.costs` and the builder exactly):
no biases in linear layers; RMSNorm has one gain vector, LayerNorm a gain and a bias.
"""

from __future__ import annotations

from typing import Annotated
from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import field_validator
from pydantic import model_validator

from search_space.errors import DesignError

__all__ = [
    "ACTIVATIONS",
    "DTYPE_BYTES",
    "GATED_ACTIVATIONS",
    "KINDS",
    "Activation",
    "DType",
    "FFNDesign",
    "Kind",
    "LayerFFN",
    "ModelDims",
    "NormPlacement",
    "NormType",
    "Sparsity",
    "SparsityPattern",
    "design_json_schema",
]

Kind = Literal["dense", "moe", "lowrank", "blockdiag", "linear", "noop"]
Activation = Literal["swiglu", "geglu", "gelu", "relu2"]
NormPlacement = Literal["pre", "post", "sandwich", "none"]
NormType = Literal["rmsnorm", "layernorm"]
SparsityPattern = Literal["none", "2:4", "block"]
DType = Literal["fp32", "fp16", "bf16"]

KINDS: tuple[str, ...] = ("dense", "moe", "lowrank", "blockdiag", "linear", "noop")
ACTIVATIONS: tuple[str, ...] = ("swiglu", "geglu", "gelu", "relu2")
# Gated activations have a gate and an up projection (3 matrices); the others have 2.
GATED_ACTIVATIONS: frozenset[str] = frozenset({"swiglu", "geglu"})
DTYPE_BYTES: dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2}

# Block-sparse tiles the kernels support (multiples of the 16x16 tensor-core fragment).
SPARSE_BLOCK_SIZES: tuple[int, ...] = (16, 32, 64, 128)

PositiveInt = Annotated[int, Field(gt=0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelDims(_Frozen):
    """The fixed part of the model: every candidate in a search shares these."""

    d_model: PositiveInt = Field(description="Residual stream width (hidden size).")
    n_layers: PositiveInt = Field(description="Number of transformer blocks.")
    n_heads: PositiveInt = Field(description="Attention query heads.")
    n_kv_heads: PositiveInt = Field(description="Attention key/value heads (GQA groups).")
    vocab: PositiveInt = Field(description="Vocabulary size (256 for byte-level proxies).")
    seq_len: PositiveInt = Field(description="Maximum sequence length.")
    dtype: DType = Field(default="bf16", description="Weight and activation dtype.")
    tie_embeddings: bool = Field(
        default=False, description="Share the input embedding with the output head."
    )

    @model_validator(mode="after")
    def _check_heads(self) -> ModelDims:
        if self.d_model % self.n_heads != 0:
            raise DesignError(
                f"`d_model % n_heads == 0` must hold, but got "
                f"d_model={self.d_model}, n_heads={self.n_heads}"
            )
        if self.n_heads % self.n_kv_heads != 0:
            raise DesignError(
                f"`n_heads % n_kv_heads == 0` must hold, but got "
                f"n_heads={self.n_heads}, n_kv_heads={self.n_kv_heads}"
            )
        return self

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


class Sparsity(_Frozen):
    """Weight sparsity of a dense FFN.

    ``2:4`` keeps two of every four consecutive weights along the reduction dimension
    (the pattern sparse tensor cores run). ``block`` keeps a ``density`` share of
    ``block_size x block_size`` weight tiles and skips the rest.
    """

    pattern: SparsityPattern = "none"
    block_size: int | None = Field(default=None, description="Tile edge, for `block` only.")
    density: float | None = Field(
        default=None, description="Share of tiles kept in (0, 1], for `block` only."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        # "2:4" / "none" is the short YAML spelling of the common cases.
        if isinstance(data, str):
            return {"pattern": data}
        return data

    @model_validator(mode="after")
    def _check(self) -> Sparsity:
        if self.pattern == "block":
            if self.block_size is None or self.density is None:
                raise DesignError(
                    "sparsity `block` needs both `block_size` and `density`, but got "
                    f"block_size={self.block_size}, density={self.density}"
                )
            if self.block_size not in SPARSE_BLOCK_SIZES:
                raise DesignError(
                    f"`block_size in {SPARSE_BLOCK_SIZES}` must hold, "
                    f"but got block_size={self.block_size}"
                )
            if not 0.0 < self.density <= 1.0:
                raise DesignError(f"`0 < density <= 1` must hold, but got density={self.density}")
        elif self.block_size is not None or self.density is not None:
            raise DesignError(
                f"`block_size` and `density` are only for pattern `block`, but got "
                f"pattern={self.pattern!r}, block_size={self.block_size}, "
                f"density={self.density}"
            )
        return self


class LayerFFN(_Frozen):
    """The FFN of one layer. Fields that do not apply to `kind` must be left unset."""

    kind: Kind = "dense"
    width: int | None = Field(
        default=None,
        gt=0,
        description="Intermediate size (dense, lowrank, blockdiag) or per-expert width (moe).",
    )
    activation: Activation = "swiglu"
    experts: int | None = Field(default=None, description="Routed experts (moe, >= 2).")
    top_k: int | None = Field(default=None, description="Experts per token (moe).")
    shared_experts: int = Field(
        default=0, ge=0, description="Always-on experts of the same width (moe)."
    )
    rank: int | None = Field(default=None, description="Rank of each factorised matrix.")
    blocks: int | None = Field(default=None, description="Diagonal blocks per matrix.")
    sparsity: Sparsity = Field(default_factory=Sparsity)
    fusion_group: int | None = Field(
        default=None,
        ge=0,
        description="Consecutive layers with the same id run their FFNs in parallel.",
    )
    parallel_attn: bool = Field(
        default=False, description="Attention and FFN read the same input (GPT-J style)."
    )
    norm: NormPlacement = Field(
        # Only a fallback: `_default_norm` fills it (`none` for noop) before validation.
        default="pre",
        description="FFN norm placement; defaults to `pre`, and to `none` for noop.",
    )
    norm_type: NormType = "rmsnorm"

    @model_validator(mode="before")
    @classmethod
    def _default_norm(cls, data: Any) -> Any:
        # A noop layer has no FFN to normalise; every other kind defaults to pre-norm.
        if isinstance(data, dict) and data.get("norm") is None:
            data = {**data, "norm": "none" if data.get("kind") == "noop" else "pre"}
        return data

    @field_validator("experts", "top_k", "rank", "blocks")
    @classmethod
    def _positive(cls, value: int | None) -> int | None:
        if value is not None and value <= 0:
            raise DesignError(f"must be > 0, but got {value}")
        return value

    @model_validator(mode="after")
    def _check_kind(self) -> LayerFFN:
        kind = self.kind
        uses = {
            "width": kind in ("dense", "moe", "lowrank", "blockdiag"),
            "experts": kind == "moe",
            "top_k": kind == "moe",
            "rank": kind == "lowrank",
            "blocks": kind == "blockdiag",
        }
        for name, needed in uses.items():
            value = getattr(self, name)
            if needed and value is None:
                raise DesignError(f"kind={kind!r} needs `{name}`, but it is unset")
            if not needed and value is not None:
                raise DesignError(
                    f"`{name}` only applies to "
                    f"{_kinds_using(name)}, but got {name}={value} with kind={kind!r}"
                )
        if self.shared_experts and kind != "moe":
            raise DesignError(
                f"`shared_experts` only applies to kind 'moe', but got "
                f"shared_experts={self.shared_experts} with kind={kind!r}"
            )
        if kind == "moe":
            assert self.experts is not None and self.top_k is not None  # set above
            if self.experts < 2:
                raise DesignError(f"`experts >= 2` must hold, but got experts={self.experts}")
            if self.top_k > self.experts:
                raise DesignError(
                    f"`top_k <= experts` must hold, but got "
                    f"top_k={self.top_k}, experts={self.experts}"
                )
        if kind == "lowrank":
            assert self.rank is not None and self.width is not None
            if self.rank >= self.width:
                raise DesignError(
                    f"`rank < width` must hold for lowrank, but got "
                    f"rank={self.rank}, width={self.width}"
                )
        if kind == "blockdiag":
            assert self.blocks is not None and self.width is not None
            if self.blocks < 2:
                raise DesignError(f"`blocks >= 2` must hold, but got blocks={self.blocks}")
            if self.width % self.blocks != 0:
                raise DesignError(
                    f"`width % blocks == 0` must hold, but got "
                    f"width={self.width}, blocks={self.blocks}"
                )
        if self.sparsity.pattern != "none":
            if kind != "dense":
                raise DesignError(
                    f"sparsity {self.sparsity.pattern!r} only applies to kind 'dense', "
                    f"but got kind={kind!r}"
                )
            assert self.width is not None
            if self.sparsity.pattern == "2:4" and self.width % 4 != 0:
                raise DesignError(
                    f"`width % 4 == 0` must hold for 2:4 sparsity, but got width={self.width}"
                )
            if self.sparsity.pattern == "block":
                size = self.sparsity.block_size
                assert size is not None
                if self.width % size != 0:
                    raise DesignError(
                        f"`width % block_size == 0` must hold, but got "
                        f"width={self.width}, block_size={size}"
                    )
        if kind == "noop":
            if self.norm != "none":
                raise DesignError(
                    f"a noop layer has no FFN norm: `norm == 'none'` must hold, "
                    f"but got norm={self.norm!r}"
                )
            if self.parallel_attn:
                raise DesignError("`parallel_attn` needs an FFN, but got kind='noop'")
            if self.fusion_group is not None:
                raise DesignError(
                    f"a noop layer cannot join a fusion group, but got "
                    f"fusion_group={self.fusion_group}"
                )
        if self.fusion_group is not None and self.parallel_attn:
            raise DesignError(
                "`parallel_attn` and `fusion_group` cannot be combined, but got both "
                f"(fusion_group={self.fusion_group})"
            )
        return self

    @property
    def gated(self) -> bool:
        return self.activation in GATED_ACTIVATIONS

    @property
    def has_ffn(self) -> bool:
        return self.kind != "noop"

    def summary(self) -> str:
        """A short human label, e.g. ``dense 14336 swiglu`` or ``moe 8x1792 top2``."""
        if self.kind == "dense":
            text = f"dense {self.width}"
            if self.sparsity.pattern == "2:4":
                text += " 2:4"
            elif self.sparsity.pattern == "block":
                text += f" block{self.sparsity.block_size}@{self.sparsity.density:g}"
        elif self.kind == "moe":
            text = f"moe {self.experts}x{self.width} top{self.top_k}"
            if self.shared_experts:
                text += f"+{self.shared_experts}s"
        elif self.kind == "lowrank":
            text = f"lowrank {self.width} r{self.rank}"
        elif self.kind == "blockdiag":
            text = f"blockdiag {self.width} b{self.blocks}"
        else:
            return self.kind
        return f"{text} {self.activation}"


def _kinds_using(name: str) -> str:
    return {
        "width": "kinds dense, moe, lowrank, blockdiag",
        "experts": "kind 'moe'",
        "top_k": "kind 'moe'",
        "rank": "kind 'lowrank'",
        "blocks": "kind 'blockdiag'",
    }[name]


class FFNDesign(_Frozen):
    """A whole candidate: model dimensions plus one FFN per layer."""

    schema_version: Literal[1] = 1
    name: str | None = Field(default=None, max_length=200)
    dims: ModelDims
    layers: tuple[LayerFFN, ...]

    @model_validator(mode="after")
    def _check_layers(self) -> FFNDesign:
        if len(self.layers) != self.dims.n_layers:
            raise DesignError(
                f"`len(layers) == dims.n_layers` must hold, but got "
                f"len(layers)={len(self.layers)}, n_layers={self.dims.n_layers}"
            )
        d = self.dims.d_model
        for i, layer in enumerate(self.layers):
            if layer.kind == "blockdiag":
                assert layer.blocks is not None
                if d % layer.blocks != 0:
                    raise DesignError(
                        f"layers[{i}]: `d_model % blocks == 0` must hold, but got "
                        f"d_model={d}, blocks={layer.blocks}"
                    )
            if layer.kind == "lowrank":
                assert layer.rank is not None
                if layer.rank >= d:
                    raise DesignError(
                        f"layers[{i}]: `rank < d_model` must hold, but got "
                        f"rank={layer.rank}, d_model={d}"
                    )
            if layer.sparsity.pattern == "block":
                size = layer.sparsity.block_size
                assert size is not None
                if d % size != 0:
                    raise DesignError(
                        f"layers[{i}]: `d_model % block_size == 0` must hold, but got "
                        f"d_model={d}, block_size={size}"
                    )
            if layer.sparsity.pattern == "2:4" and d % 4 != 0:
                raise DesignError(
                    f"layers[{i}]: `d_model % 4 == 0` must hold for 2:4 sparsity, "
                    f"but got d_model={d}"
                )
        self._check_fusion()
        return self

    def _check_fusion(self) -> None:
        seen_closed: set[int] = set()
        for group, members in self.fusion_groups().items():
            if group in seen_closed:
                raise DesignError(f"fusion group {group} must be consecutive")
            seen_closed.add(group)
            if len(members) < 2:
                raise DesignError(
                    f"a fusion group needs >= 2 consecutive layers, but group {group} "
                    f"has only layer {members[0]}"
                )
            first = self.layers[members[0]]
            for i in members:
                layer = self.layers[i]
                if layer.kind != "dense" or layer.sparsity.pattern != "none":
                    raise DesignError(
                        f"layers[{i}]: fused layers must be dense without sparsity (they run "
                        f"as one wide GEMM), but got kind={layer.kind!r}, "
                        f"sparsity={layer.sparsity.pattern!r}"
                    )
                if layer.norm != "pre":
                    raise DesignError(
                        f"layers[{i}]: fused layers need norm 'pre' (all FFNs read the same "
                        f"stream), but got norm={layer.norm!r}"
                    )
                if (layer.activation, layer.norm_type) != (first.activation, first.norm_type):
                    raise DesignError(
                        f"layers[{i}]: fused layers must share activation and norm_type, but "
                        f"got ({layer.activation}, {layer.norm_type}) vs "
                        f"({first.activation}, {first.norm_type}) in group {group}"
                    )

    def fusion_groups(self) -> dict[int, list[int]]:
        """Group id -> member layer indices, for groups that appear in the design.

        Raises `DesignError` when a group id reappears after another layer (groups are runs
        of consecutive layers).
        """
        groups: dict[int, list[int]] = {}
        previous: int | None = None
        for i, layer in enumerate(self.layers):
            group = layer.fusion_group
            if group is not None:
                if group in groups and previous != group:
                    raise DesignError(
                        f"layers[{i}]: fusion group {group} must be a run of consecutive "
                        f"layers, but it reappears after layer {groups[group][-1]}"
                    )
                groups.setdefault(group, []).append(i)
            previous = group
        return groups

    def to_json(self, *, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent, exclude_none=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> FFNDesign:
        return cls.model_validate_json(text)

    def with_layers(self, layers: list[LayerFFN] | tuple[LayerFFN, ...]) -> FFNDesign:
        """A copy with other layers, validated again."""
        return FFNDesign(name=self.name, dims=self.dims, layers=tuple(layers))


def design_json_schema() -> dict[str, Any]:
    """The published JSON Schema of `FFNDesign` (versioned by `schema_version`)."""
    schema = FFNDesign.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://ffnas.dev/schema/design/v1.json"
    return schema

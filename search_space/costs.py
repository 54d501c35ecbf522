"""Exact costs of a design: parameters, FLOPs, weight bytes, activation bytes, KV cache.

`design_costs(design, workload)` returns one `LayerCost` per layer plus the fixed parts
(embedding, output head, final norm) and totals, for the design's dtype (or an override).

Parameter conventions (``docs/contracts.md``; `workers.build.build_model` must match them):

* linear layers have no bias; RMSNorm has ``d`` parameters, LayerNorm ``2d``;
* embedding ``vocab*d``; output head ``vocab*d`` unless ``tie_embeddings`` (then 0);
  final norm RMSNorm ``d``;
* attention per layer: ``q, o: d*d``, ``k, v: d*(n_kv_heads*head_dim)``, pre-norm RMSNorm ``d``;
* FFN norms: ``pre``/``post`` one norm, ``sandwich`` two, ``none`` zero; ``norm_type`` sets
  ``d`` or ``2d`` per norm (a noop layer has none);
* with ``m = 3`` for gated activations (swiglu, geglu) and ``m = 2`` otherwise:
  dense ``m*d*f``; moe router ``d*E`` + routed ``E*m*d*w`` + shared ``S*m*d*w`` (active:
  router + ``(k+S)*m*d*w``); lowrank ``m*(d*r + r*f)``; blockdiag ``m*d*f/b``; linear ``d*d``;
  noop 0;
* sparsity: ``params`` counts stored dense shapes; ``params_nonzero`` counts kept weights:
  2:4 keeps exactly half of each matrix; ``block`` keeps, per matrix (each of the ``m``
  matrices is ``d x f`` or ``f x d``, so ``n_tiles = (d/bs)*(f/bs)``),
  ``max(1, round(density * n_tiles))`` tiles of ``bs^2`` weights. ``round`` is Python's
  built-in (ties to even): that is our reading of the contract's ``round``.

Derived quantities (models, stated so they can be checked):

* FLOPs count matrix multiplies only, 2 per multiply-add: an FFN does ``2 * w`` FLOPs per
  token for the ``w`` weights it touches that are kept (active for MoE incl. the router,
  nonzero for sparse); elementwise work (activations, norms, residual adds, softmax) is
  left out, as in the usual ``6N``/``2N`` accounting (PaLM App. B).
  Attention per layer: projections ``2*(2*d*d + 2*d*kv)`` per token, plus ``4*d`` per
  (query, key) pair for ``QK^T`` and ``AV``; prefill is causal (a sequence of ``s`` tokens
  has ``s*(s+1)/2`` pairs), decode attends to the ``seq`` cached keys.
  Output head: ``2*d*vocab`` per token (logits for every token, as the model returns them).
* Weight bytes are read once per step: every kept weight and norm gain of a layer, times the
  dtype size; sparsity metadata (2-bit 2:4 indices, tile indices) is not counted.
  MoE reads the router, the shared experts and the *expected number of distinct routed
  experts* touched by ``T`` tokens each picking ``k`` of ``E`` experts uniformly:
  ``E * (1 - (1 - k/E)^T)`` (exact for uniform independent routing; real routers are
  skewed, which touches fewer). Embedding: ``min(T, vocab)`` rows; head: the whole matrix.
* Activation bytes of an FFN: input read + output written + every intermediate written once
  and read once (``T`` tokens, dtype size): dense/blockdiag ``T*(2d + 2f)``; lowrank adds
  ``2*m*r``; moe ``T*(2d + 2E + k*(4d + 2w) + 2*S*w)`` (router logits, gathered copy of the
  input and expert output per routed slot, expert intermediates); linear ``T*2d``; noop 0.
  A fused group reads its input and writes its output once: the ``2d`` term is charged to
  the group's first layer only. Norm traffic is not counted (it fuses with the residual add).
* KV cache per layer: ``2 * kv_dim * batch * seq`` elements (keys and values).
"""

from __future__ import annotations

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field

from search_space.design import DTYPE_BYTES
from search_space.design import DType
from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims
from search_space.workload import Workload

__all__ = [
    "DesignCosts",
    "FFNWeights",
    "LayerCost",
    "design_costs",
    "expected_experts_touched",
    "ffn_weights",
    "norm_params",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FFNWeights(_Frozen):
    """Weight counts of one FFN (norms excluded)."""

    params: int = Field(description="Stored weights (dense shapes, what `numel` counts).")
    active: int = Field(description="Weights one token multiplies with (router + k+S experts).")
    nonzero: int = Field(description="Stored weights that are kept by the sparsity pattern.")
    routed_expert: int = Field(default=0, description="Weights of one routed expert (moe).")
    always_read: int = Field(
        default=0, description="Weights read every step whatever the routing (moe: router+shared)."
    )


class LayerCost(_Frozen):
    """Costs of one transformer layer (attention + FFN + their norms) for one step."""

    layer: int
    kind: str
    summary: str
    fusion_group: int | None = None
    attn_params: int = Field(description="q, k, v, o and the attention pre-norm.")
    ffn_params: int = Field(description="FFN weights, stored dense shapes, norms excluded.")
    ffn_params_active: int
    ffn_params_nonzero: int
    ffn_norm_params: int
    params: int
    params_active: int
    params_nonzero: int
    ffn_flops_per_token: int
    attn_flops_per_step: int
    ffn_flops_per_step: int
    flops_per_step: int
    attn_weight_bytes: int
    ffn_weight_bytes: float = Field(description="Expected for moe (distinct experts touched).")
    weight_bytes: float
    activation_bytes: int = Field(description="FFN activation traffic (see module docstring).")
    kv_cache_bytes: int


class DesignCosts(_Frozen):
    """Per-layer and total costs of a design at one workload and dtype."""

    dtype: DType
    workload: Workload
    tokens: int = Field(description="Tokens through each FFN in this step.")
    layers: tuple[LayerCost, ...]
    embedding_params: int
    head_params: int
    final_norm_params: int
    params: int
    params_active: int
    params_nonzero: int
    ffn_params: int = Field(description="Sum of FFN weights over layers (norms excluded).")
    ffn_params_active: int
    flops_per_step: int
    flops_per_token: float
    ffn_flops_per_token: int
    weight_bytes: float
    weight_memory_bytes: int = Field(description="Stored parameters times the dtype size.")
    activation_bytes: int
    kv_cache_bytes: int


def norm_params(layer: LayerFFN, d_model: int) -> int:
    """Parameters of the FFN norms of `layer`: 0, 1 or 2 norms of ``d`` or ``2d``."""
    count = {"pre": 1, "post": 1, "sandwich": 2, "none": 0}[layer.norm]
    per_norm = d_model if layer.norm_type == "rmsnorm" else 2 * d_model
    return count * per_norm


def _kept_per_matrix(layer: LayerFFN, d: int, f: int) -> int:
    """Kept weights of one ``d x f`` matrix under the layer's sparsity pattern."""
    sparsity = layer.sparsity
    if sparsity.pattern == "2:4":
        return d * f // 2
    if sparsity.pattern == "block":
        assert sparsity.block_size is not None and sparsity.density is not None  # validated
        size = sparsity.block_size
        tiles = (d // size) * (f // size)
        return max(1, round(sparsity.density * tiles)) * size * size
    return d * f


def ffn_weights(layer: LayerFFN, d: int) -> FFNWeights:
    """Weight counts of the FFN of `layer` in a model of width `d` (contract conventions)."""
    m = 3 if layer.gated else 2
    kind = layer.kind
    if kind == "noop":
        return FFNWeights(params=0, active=0, nonzero=0)
    if kind == "linear":
        return FFNWeights(params=d * d, active=d * d, nonzero=d * d, always_read=d * d)
    assert layer.width is not None  # every other kind has a width (validated)
    f = layer.width
    if kind == "dense":
        kept = m * _kept_per_matrix(layer, d, f)
        return FFNWeights(params=m * d * f, active=m * d * f, nonzero=kept, always_read=kept)
    if kind == "moe":
        assert layer.experts is not None and layer.top_k is not None
        expert = m * d * f
        router = d * layer.experts
        shared = layer.shared_experts * expert
        total = router + layer.experts * expert + shared
        active = router + (layer.top_k + layer.shared_experts) * expert
        return FFNWeights(
            params=total,
            active=active,
            nonzero=total,
            routed_expert=expert,
            always_read=router + shared,
        )
    if kind == "lowrank":
        assert layer.rank is not None
        total = m * (d * layer.rank + layer.rank * f)
        return FFNWeights(params=total, active=total, nonzero=total, always_read=total)
    assert kind == "blockdiag" and layer.blocks is not None
    total = m * d * f // layer.blocks
    return FFNWeights(params=total, active=total, nonzero=total, always_read=total)


def expected_experts_touched(experts: int, top_k: int, tokens: int) -> float:
    """Expected distinct experts hit when `tokens` tokens each pick `top_k` of `experts`.

    Each token misses a given expert with probability ``1 - k/E``; with independent uniform
    routing the expert is untouched with probability ``(1 - k/E)^T``.
    """
    miss = 1.0 - top_k / experts
    return experts * (1.0 - miss**tokens)


def _ffn_activation_elements(layer: LayerFFN, d: int, tokens: int, first_in_unit: bool) -> int:
    """Activation elements an FFN reads and writes in one step (see module docstring)."""
    if layer.kind == "noop":
        return 0
    io = 2 * d if first_in_unit else 0
    if layer.kind == "linear":
        return tokens * io
    assert layer.width is not None
    f = layer.width
    m = 3 if layer.gated else 2
    if layer.kind in ("dense", "blockdiag"):
        return tokens * (io + 2 * f)
    if layer.kind == "lowrank":
        assert layer.rank is not None
        return tokens * (io + 2 * f + 2 * m * layer.rank)
    assert layer.experts is not None and layer.top_k is not None
    routed = layer.top_k * (4 * d + 2 * f)
    return tokens * (io + 2 * layer.experts + routed + 2 * layer.shared_experts * f)


def _attention(dims: ModelDims, workload: Workload, nbytes: int) -> tuple[int, int, int, int]:
    """(params, flops per step, weight bytes, kv-cache bytes) of one attention sublayer."""
    d = dims.d_model
    kv = dims.n_kv_heads * dims.head_dim
    proj = 2 * d * d + 2 * d * kv
    params = proj + d  # + RMSNorm pre-norm
    if workload.phase == "prefill":
        pairs = workload.batch * workload.seq * (workload.seq + 1) // 2
    else:
        pairs = workload.batch * workload.seq
    flops = 2 * proj * workload.tokens + 4 * d * pairs
    kv_bytes = 2 * kv * workload.batch * workload.seq * nbytes
    return params, flops, params * nbytes, kv_bytes


def _layer_cost(
    index: int,
    layer: LayerFFN,
    dims: ModelDims,
    workload: Workload,
    nbytes: int,
    first_in_unit: bool,
) -> LayerCost:
    d = dims.d_model
    tokens = workload.tokens
    attn_params, attn_flops, attn_bytes, kv_bytes = _attention(dims, workload, nbytes)
    weights = ffn_weights(layer, d)
    ffn_norm = norm_params(layer, d)
    if layer.kind == "moe":
        assert layer.experts is not None and layer.top_k is not None
        touched = expected_experts_touched(layer.experts, layer.top_k, tokens)
        read = weights.always_read + touched * weights.routed_expert
        flops_per_token = 2 * weights.active
    else:
        read = weights.nonzero
        flops_per_token = 2 * weights.nonzero
    ffn_bytes = (read + ffn_norm) * nbytes
    ffn_flops = flops_per_token * tokens
    activation = _ffn_activation_elements(layer, d, tokens, first_in_unit) * nbytes
    return LayerCost(
        layer=index,
        kind=layer.kind,
        summary=layer.summary(),
        fusion_group=layer.fusion_group,
        attn_params=attn_params,
        ffn_params=weights.params,
        ffn_params_active=weights.active,
        ffn_params_nonzero=weights.nonzero,
        ffn_norm_params=ffn_norm,
        params=attn_params + weights.params + ffn_norm,
        params_active=attn_params + weights.active + ffn_norm,
        params_nonzero=attn_params + weights.nonzero + ffn_norm,
        ffn_flops_per_token=flops_per_token,
        attn_flops_per_step=attn_flops,
        ffn_flops_per_step=ffn_flops,
        flops_per_step=attn_flops + ffn_flops,
        attn_weight_bytes=attn_bytes,
        ffn_weight_bytes=ffn_bytes,
        weight_bytes=attn_bytes + ffn_bytes,
        activation_bytes=activation,
        kv_cache_bytes=kv_bytes,
    )


def design_costs(
    design: FFNDesign, workload: Workload | None = None, *, dtype: DType | None = None
) -> DesignCosts:
    """Costs of `design` for one step of `workload` (default: prefill, batch 1, seq 2048).

    `dtype` overrides the design's ``dims.dtype`` for the byte counts.
    """
    workload = workload or Workload()
    dims = design.dims
    dtype = dtype or dims.dtype
    nbytes = DTYPE_BYTES[dtype]
    d = dims.d_model
    tokens = workload.tokens
    layers: list[LayerCost] = []
    previous_group: int | None = None
    for i, layer in enumerate(design.layers):
        group = layer.fusion_group
        first = group is None or group != previous_group
        layers.append(_layer_cost(i, layer, dims, workload, nbytes, first))
        previous_group = group

    embedding = dims.vocab * d
    head = 0 if dims.tie_embeddings else dims.vocab * d
    final_norm = d
    fixed = embedding + head + final_norm
    head_flops = 2 * d * dims.vocab * tokens
    fixed_bytes = (min(tokens, dims.vocab) * d + dims.vocab * d + final_norm) * nbytes
    params = fixed + sum(c.params for c in layers)
    flops = head_flops + sum(c.flops_per_step for c in layers)
    return DesignCosts(
        dtype=dtype,
        workload=workload,
        tokens=tokens,
        layers=tuple(layers),
        embedding_params=embedding,
        head_params=head,
        final_norm_params=final_norm,
        params=params,
        params_active=fixed + sum(c.params_active for c in layers),
        params_nonzero=fixed + sum(c.params_nonzero for c in layers),
        ffn_params=sum(c.ffn_params for c in layers),
        ffn_params_active=sum(c.ffn_params_active for c in layers),
        flops_per_step=flops,
        flops_per_token=flops / tokens,
        ffn_flops_per_token=sum(c.ffn_flops_per_token for c in layers),
        weight_bytes=fixed_bytes + sum(c.weight_bytes for c in layers),
        weight_memory_bytes=params * nbytes,
        activation_bytes=sum(c.activation_bytes for c in layers),
        kv_cache_bytes=sum(c.kv_cache_bytes for c in layers),
    )

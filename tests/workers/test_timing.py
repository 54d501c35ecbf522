"""The timing protocol: quantiles, CPU path, and (on a GPU) do_bench / CUDA-graph choice."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from workers.timing import CPU_MIN_BLOCKS
from workers.timing import TINY_KERNEL_MS
from workers.timing import measure
from workers.timing import quantile
from workers.timing import stats_from_samples


@pytest.mark.parametrize("values", [[3.0], [1.0, 2.0], [5.0, 1.0, 4.0, 2.0, 3.0], [0.1] * 7])
@pytest.mark.parametrize("q", [0.0, 0.2, 0.5, 0.8, 1.0])
def test_quantile_matches_numpy_linear(values: list[float], q: float) -> None:
    assert quantile(values, q) == pytest.approx(float(np.quantile(values, q)))


def test_quantile_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        quantile([], 0.5)
    with pytest.raises(ValueError, match="0 <= q <= 1"):
        quantile([1.0], 1.5)


def test_stats_from_samples_orders_quantiles() -> None:
    stats = stats_from_samples([4.0, 1.0, 3.0, 2.0, 5.0], "m")
    assert (stats.p20_ms, stats.p50_ms, stats.p80_ms) == pytest.approx((1.8, 3.0, 4.2))
    assert stats.samples == 5 and stats.method == "m"


def test_cpu_measure_times_a_known_duration() -> None:
    # A 3 ms sleep: the median must be at least 3 ms and not wildly more (scheduler slack).
    stats = measure(lambda: time.sleep(0.003), device="cpu", min_run_time_s=0.05)
    assert stats.method == "torch.utils.benchmark"
    assert stats.samples >= CPU_MIN_BLOCKS
    assert 3.0 <= stats.p50_ms < 6.0
    assert stats.p20_ms <= stats.p50_ms <= stats.p80_ms


def test_cpu_measure_slow_call_still_gets_enough_samples() -> None:
    stats = measure(lambda: time.sleep(0.03), device="cpu", min_run_time_s=0.01)
    assert stats.samples >= CPU_MIN_BLOCKS
    assert stats.p50_ms >= 30.0


@pytest.mark.gpu
def test_gpu_measure_large_gemm_uses_do_bench_with_l2_flush() -> None:
    a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    stats = measure(lambda: a @ a, device="cuda")
    assert stats.method == "do_bench+l2flush"
    assert stats.p50_ms > TINY_KERNEL_MS


@pytest.mark.gpu
def test_gpu_measure_tiny_kernel_uses_cuda_graph() -> None:
    a = torch.randn(64, 64, device="cuda", dtype=torch.bfloat16)
    stats = measure(lambda: a @ a, device="cuda")
    assert stats.method == "do_bench_cudagraph"
    assert stats.p50_ms < TINY_KERNEL_MS

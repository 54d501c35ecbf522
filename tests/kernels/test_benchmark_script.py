"""The CPU-checkable parts of benchmarks/kernels.py: roofline math, GPU detection, records,
argument parsing and the refusal to run without CUDA."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "kernels.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_kernels", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_kernels"] = module
    spec.loader.exec_module(module)
    return module


def test_detects_the_gpu_sku(bench: ModuleType) -> None:
    assert bench.detect_gpu("NVIDIA H100 80GB HBM3") == "H100 SXM"
    assert bench.detect_gpu("NVIDIA H100 PCIe") == "H100 PCIe"
    assert bench.detect_gpu("NVIDIA H200") == "H200"
    assert bench.detect_gpu("NVIDIA A10G") is None


def test_roofline_by_hand(bench: ModuleType) -> None:
    # 8192^3 bf16 GEMM on H100 SXM: compute-bound, 2*8192^3 / 989.4e12 = 1.1113 ms.
    flops = 2 * 8192**3
    nbytes = 3 * 8192 * 8192 * 2
    bound = bench.roofline_s(flops, nbytes, 989.4e12, 3.35e12)
    assert bound == pytest.approx(flops / 989.4e12)
    # Decode GEMV (1 x 4096 x 14336): memory-bound, weights 117.4 MB / 3.35 TB/s = 35.0 us.
    gemv_bytes = 2 * (4096 * 14336 + 4096 + 14336)
    assert bench.roofline_s(2 * 4096 * 14336, gemv_bytes, 989.4e12, 3.35e12) == pytest.approx(
        gemv_bytes / 3.35e12
    )
    # Running at twice the bound is 50% of roofline; unknown GPUs get no percentage.
    assert bench.roofline_pct(2 * bound, flops, nbytes, "H100 SXM") == pytest.approx(50.0)
    assert bench.roofline_pct(1.0, flops, nbytes, None) is None
    # The ridge point of H200 is 989.4/4.8 = 206 FLOP/B (performance.md §1).
    peak, bw = bench.GPU_PEAKS["H200"]
    assert peak / bw == pytest.approx(206.1, abs=0.1)


def test_record_derives_throughput(bench: ModuleType) -> None:
    rec = bench.Record(
        "dense",
        "prefill",
        {"tokens": 2},
        "triton",
        2.0,
        1.9,
        2.1,
        "do_bench",
        flops=4e12,
        nbytes=6e9,
    ).finish("H100 SXM")
    assert rec.tflops == pytest.approx(2000.0)
    assert rec.gbps == pytest.approx(3000.0)
    assert rec.roofline_pct == pytest.approx(100 * (4e12 / 989.4e12) / 2e-3)
    table = bench.format_table([rec])
    assert "dense" in table and "2.0000" in table


def test_lowrank_crossover(bench: ModuleType) -> None:
    merged = {1: 1.0, 2: 1.0, 4: 1.0, 8: 1.0}
    factored = {1: 2.0, 2: 0.9, 4: 1.1, 8: 0.5}
    assert bench.lowrank_crossover(merged, factored) == 8
    assert bench.lowrank_crossover(merged, {t: 0.1 for t in merged}) == 1
    assert bench.lowrank_crossover(merged, {t: 9.0 for t in merged}) is None


def test_shapes_cover_the_issue_ranges(bench: ModuleType) -> None:
    tokens = [t for _, t in bench.phases(quick=False)]
    assert min(bench.PREFILL_TOKENS) == 512 and max(bench.PREFILL_TOKENS) == 16384
    assert min(bench.DECODE_TOKENS) == 1 and max(bench.DECODE_TOKENS) == 256
    assert set(bench.phases(quick=True)) <= set(bench.phases(quick=False))
    assert len(tokens) == 8
    experts = [e for _, _, e, _ in bench.MOE_SHAPES]
    top_k = [k for _, _, _, k in bench.MOE_SHAPES]
    assert min(experts) == 8 and max(experts) == 128 and max(top_k) == 8
    assert set(bench.BENCHES) == set(bench.OPS)


def test_parse_args(bench: ModuleType) -> None:
    args = bench.parse_args(["--quick", "--op", "moe", "--op", "dense"])
    assert args.quick and args.op == ["moe", "dense"]
    assert bench.parse_args([]).op == list(bench.OPS)
    with pytest.raises(SystemExit):
        bench.parse_args(["--op", "conv"])


def test_results_json(bench: ModuleType, tmp_path: Path) -> None:
    rec = bench.Record(
        "moe",
        "decode",
        {"tokens": 16},
        "triton",
        0.1,
        0.09,
        0.11,
        "cudagraph",
        flops=1e9,
        nbytes=1e8,
    ).finish("H200")
    path = bench.result_path(tmp_path, "NVIDIA H200", dt.datetime(2026, 1, 2, 3, 4, 5))
    assert path.name == "kernels-nvidia-h200-20260102-030405.json"
    args = argparse.Namespace(quick=True, op=["moe"])
    bench.write_results(path, {"device_name": "NVIDIA H200"}, "H200", args, [rec])
    data = json.loads(path.read_text())
    assert data["records"][0]["method"] == "cudagraph"
    assert data["peaks"]["bytes_per_s"] == 4.8e12


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU refusal")
def test_refuses_without_cuda(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--quick"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err

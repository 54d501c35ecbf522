# The timed lambdas close over loop variables on purpose: each is run to completion by
# `Bench.run` inside the iteration that made it, so late binding cannot bite.
# ruff: noqa: B023
"""Benchmark every FFN kernel against the baseline a user would otherwise run.

Usage: ``python benchmarks/kernels.py [--quick] [--op dense --op moe ...] [--out DIR]``

Per op and shape (prefill 512-16384 tokens, decode 1-256, Llama-scale widths, bf16) it reports
the median time with p20/p80, TFLOP/s, GB/s, percent of the roofline bound
``min(peak, AI x bandwidth)`` of the detected GPU, and the speedup over a baseline measured in
the same run. Timing follows `../shared/reference/performance.md` section 3:
``triton.testing.do_bench`` (256 MB L2 flush before each call, quantiles 0.5/0.2/0.8) and
``do_bench_cudagraph`` for kernels under ~50 us (launch overhead removed; no L2 flush, so
those rows say ``cudagraph``). GPU clocks are read with ``nvidia-smi --query-gpu`` and never
set. Results go to stdout as a table and to ``benchmarks/results/kernels-<gpu>-<date>.json``.
Needs a CUDA GPU: without one it exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import math
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger("benchmarks.kernels")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
OPS = ("dense", "activation", "norms", "moe", "blockdiag", "lowrank", "sparse", "fused_group")

# Spec peaks (dense bf16 FLOP/s, HBM bytes/s), from ../shared/reference/performance.md §1.
GPU_PEAKS: dict[str, tuple[float, float]] = {
    "H100 SXM": (989.4e12, 3.35e12),
    "H100 PCIe": (756e12, 2.0e12),
    "H200": (989.4e12, 4.8e12),
}
CUDAGRAPH_BELOW_MS = 0.05  # kernels under ~50 us are re-timed in a CUDA graph
QUANTILES = [0.5, 0.2, 0.8]

PREFILL_TOKENS = (512, 2048, 8192, 16384)
DECODE_TOKENS = (1, 16, 64, 256)
DENSE_SHAPES = ((4096, 14336), (8192, 28672))  # (d_model, width): Llama-3 8B / 70B
# (d_model, expert width, experts, top_k): Mixtral-8x7B, DeepSeek-V2-Lite-like, Qwen3-30B-A3B.
MOE_SHAPES = ((4096, 14336, 8, 2), (2048, 1408, 64, 6), (2048, 768, 128, 8))
LOWRANK_CROSSOVER_TOKENS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def detect_gpu(name: str) -> str | None:
    """Key of `GPU_PEAKS` for an nvidia-smi / torch device name (None when unknown)."""
    upper = name.upper()
    if "H200" in upper:
        return "H200"
    if "H100" in upper:
        return "H100 PCIe" if "PCIE" in upper else "H100 SXM"
    return None


def roofline_s(flops: float, nbytes: float, peak: float, bandwidth: float) -> float:
    """Lower bound on time: the larger of compute time at peak and traffic time at HBM
    bandwidth (equivalently, throughput bounded by ``min(peak, AI x bandwidth)``)."""
    return max(flops / peak, nbytes / bandwidth)


def roofline_pct(seconds: float, flops: float, nbytes: float, gpu: str | None) -> float | None:
    if gpu is None or seconds <= 0:
        return None
    peak, bandwidth = GPU_PEAKS[gpu]
    return 100.0 * roofline_s(flops, nbytes, peak, bandwidth) / seconds


def gemm_flops(m: int, n: int, k: int) -> int:
    return 2 * m * n * k


@dataclass
class Record:
    """One timed implementation at one shape."""

    op: str
    phase: str
    shape: dict[str, int]
    impl: str
    p50_ms: float
    p20_ms: float
    p80_ms: float
    method: str
    flops: float
    nbytes: float
    baseline: str | None = None
    speedup: float | None = None  # baseline p50 / this p50 (> 1: faster than the baseline)
    tflops: float = 0.0
    gbps: float = 0.0
    roofline_pct: float | None = None
    path: str | None = None
    notes: list[str] = field(default_factory=list)

    def finish(self, gpu: str | None) -> Record:
        seconds = self.p50_ms * 1e-3
        self.tflops = self.flops / seconds / 1e12 if seconds > 0 else 0.0
        self.gbps = self.nbytes / seconds / 1e9 if seconds > 0 else 0.0
        self.roofline_pct = roofline_pct(seconds, self.flops, self.nbytes, gpu)
        return self


def format_table(records: list[Record]) -> str:
    head = (
        f"{'op':<12}{'phase':<8}{'shape':<34}{'impl':<22}{'p50 ms':>9}{'p20':>9}{'p80':>9}"
        f"{'TFLOP/s':>9}{'GB/s':>8}{'%roof':>7}{'speedup':>9}  method/path"
    )
    lines = [head, "-" * len(head)]
    for r in records:
        shape = ",".join(f"{k}={v}" for k, v in r.shape.items())
        roof = "-" if r.roofline_pct is None else f"{r.roofline_pct:.0f}"
        speed = "-" if r.speedup is None else f"{r.speedup:.2f}x"
        extra = r.method + (f"/{r.path}" if r.path else "")
        lines.append(
            f"{r.op:<12}{r.phase:<8}{shape:<34}{r.impl:<22}{r.p50_ms:>9.4f}{r.p20_ms:>9.4f}"
            f"{r.p80_ms:>9.4f}{r.tflops:>9.1f}{r.gbps:>8.0f}{roof:>7}{speed:>9}  {extra}"
        )
    return "\n".join(lines) + "\n"


def lowrank_crossover(merged_ms: dict[int, float], factored_ms: dict[int, float]) -> int | None:
    """Smallest token count from which the factorised form is never slower than the merged
    dense one (None when merged wins everywhere measured)."""
    tokens = sorted(set(merged_ms) & set(factored_ms))
    for i, t in enumerate(tokens):
        if all(factored_ms[u] <= merged_ms[u] for u in tokens[i:]):
            return t
    return None


def phases(quick: bool) -> list[tuple[str, int]]:
    if quick:
        return [("decode", 16), ("prefill", 2048)]
    return [("decode", t) for t in DECODE_TOKENS] + [("prefill", t) for t in PREFILL_TOKENS]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small subset of shapes")
    parser.add_argument(
        "--op", action="append", choices=OPS, help="ops to run (repeatable; default all)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="JSON output directory")
    args = parser.parse_args(argv)
    args.op = list(args.op or OPS)
    return args


def read_environment() -> dict[str, Any]:
    """GPU name, driver and clocks as read (never set), torch/triton versions."""
    import triton

    env: dict[str, Any] = {
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cuda": torch.version.cuda,
        "device_name": torch.cuda.get_device_name(0),
        "capability": list(torch.cuda.get_device_capability(0)),
    }
    query = (
        "name,driver_version,clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem,"
        "power.draw,power.limit,temperature.gpu"
    )
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.splitlines()[0]
        env["nvidia_smi"] = dict(
            zip(query.split(","), (v.strip() for v in out.split(",")), strict=False)
        )
    except (OSError, subprocess.SubprocessError, IndexError) as exc:
        env["nvidia_smi"] = {"error": str(exc)}
    return env


class Bench:
    """Times callables and builds records (GPU only)."""

    def __init__(self, gpu: str | None) -> None:
        self.gpu = gpu
        self.records: list[Record] = []

    def time(self, fn: Callable[[], Any]) -> tuple[float, float, float, str]:
        from triton.testing import do_bench
        from triton.testing import do_bench_cudagraph

        fn()
        torch.cuda.synchronize()
        p50, p20, p80 = do_bench(fn, warmup=25, rep=100, quantiles=QUANTILES)
        method = "do_bench"
        if p50 < CUDAGRAPH_BELOW_MS:
            try:
                p50, p20, p80 = do_bench_cudagraph(fn, rep=100, quantiles=QUANTILES)
                method = "cudagraph"
            except RuntimeError as exc:  # an op that syncs cannot be captured
                log.info("cudagraph capture failed (%s); keeping do_bench", exc)
        return float(p50), float(p20), float(p80), method

    def run(
        self,
        op: str,
        phase: str,
        shape: dict[str, int],
        impls: dict[str, Callable[[], Any]],
        *,
        flops: float,
        nbytes: float,
        baseline: str,
        paths: dict[str, str] | None = None,
    ) -> list[Record]:
        out = []
        for impl, fn in impls.items():
            try:
                p50, p20, p80, method = self.time(fn)
            except Exception as exc:  # noqa: BLE001 - a failed baseline is reported, not fatal
                log.warning("%s %s %s failed: %s", op, shape, impl, exc)
                continue
            out.append(
                Record(
                    op,
                    phase,
                    dict(shape),
                    impl,
                    p50,
                    p20,
                    p80,
                    method,
                    flops,
                    nbytes,
                    path=(paths or {}).get(impl),
                )
            )
        base = next((r for r in out if r.impl == baseline), None)
        for r in out:
            if base is not None and r is not base:
                r.baseline, r.speedup = baseline, base.p50_ms / r.p50_ms
            r.finish(self.gpu)
        self.records.extend(out)
        torch.cuda.empty_cache()
        return out


def _w(*shape: int, fan_in: int) -> torch.Tensor:
    return torch.randn(shape, device="cuda", dtype=torch.bfloat16) / math.sqrt(fan_in)


def bench_dense(b: Bench, quick: bool) -> None:
    from kernels.dense_ffn import dense_ffn

    for d, f in DENSE_SHAPES[:1] if quick else DENSE_SHAPES:
        wg, wu, wd = _w(f, d, fan_in=d), _w(f, d, fan_in=d), _w(d, f, fan_in=f)
        for phase, t in phases(quick):
            x, r = _w(t, d, fan_in=1), _w(t, d, fan_in=1)
            flops = 3 * gemm_flops(t, f, d)
            nbytes = 2 * (3 * d * f + 3 * t * d)  # weights + x, residual, out (bf16)
            b.run(
                "dense",
                phase,
                {"tokens": t, "d": d, "f": f},
                {
                    "triton": lambda: dense_ffn(
                        x, wu, wd, activation="swiglu", w_gate=wg, residual=r
                    ),
                    "cublas+eager": lambda: (
                        F.linear(F.silu(F.linear(x, wg)) * F.linear(x, wu), wd) + r
                    ),
                },
                flops=flops,
                nbytes=nbytes,
                baseline="cublas+eager",
            )


def bench_activation(b: Bench, quick: bool) -> None:
    from kernels.activation import activate

    for phase, t in phases(quick):
        f = 14336
        g, u = _w(t, f, fan_in=1), _w(t, f, fan_in=1)
        b.run(
            "activation",
            phase,
            {"tokens": t, "f": f},
            {
                "triton": lambda: activate(g, "swiglu", u),
                "eager": lambda: F.silu(g) * u,
            },
            flops=0,
            nbytes=2 * 3 * t * f,
            baseline="eager",
        )


def bench_norms(b: Bench, quick: bool) -> None:
    from kernels.layer_norm import add_layer_norm
    from kernels.rms_norm import add_rms_norm

    for d in (4096,) if quick else (4096, 8192):
        w, bias = _w(d, fan_in=1), _w(d, fan_in=1)
        for phase, t in phases(quick):
            x, r = _w(t, d, fan_in=1), _w(t, d, fan_in=1)
            nbytes = 2 * 4 * t * d  # read x, r; write sum, normed
            b.run(
                "rmsnorm",
                phase,
                {"tokens": t, "d": d},
                {
                    "triton_add_rms": lambda: add_rms_norm(x, r, w),
                    "torch_add+rms_norm": lambda: F.rms_norm(x + r, (d,), w, 1e-6),
                },
                flops=0,
                nbytes=nbytes,
                baseline="torch_add+rms_norm",
            )
            b.run(
                "layernorm",
                phase,
                {"tokens": t, "d": d},
                {
                    "triton_add_ln": lambda: add_layer_norm(x, r, w, bias),
                    "torch_add+layer_norm": lambda: F.layer_norm(x + r, (d,), w, bias),
                },
                flops=0,
                nbytes=nbytes,
                baseline="torch_add+layer_norm",
            )


def _grouped_mm_moe(
    x: torch.Tensor,
    router: torch.Tensor,
    wg: torch.Tensor,
    wu: torch.Tensor,
    wd: torch.Tensor,
    top_k: int,
) -> torch.Tensor:
    """Baseline: torch routing/permutation + `torch._grouped_mm` (CUTLASS) for the experts."""
    logits = F.linear(x, router).float()
    top, idx = torch.topk(logits, top_k, dim=-1)
    weights = torch.softmax(top, -1)
    flat = idx.reshape(-1)
    order = torch.argsort(flat, stable=True)
    ends = torch.cumsum(torch.bincount(flat, minlength=wg.shape[0]), 0).to(torch.int32)
    xs = x[order // top_k]
    g = torch._grouped_mm(xs, wg.transpose(1, 2), offs=ends)
    u = torch._grouped_mm(xs, wu.transpose(1, 2), offs=ends)
    y = torch._grouped_mm(F.silu(g) * u, wd.transpose(1, 2), offs=ends)
    y = y * weights.reshape(-1)[order, None].to(y.dtype)
    out = torch.zeros_like(x)
    out.index_add_(0, order // top_k, y)
    return out


def bench_moe(b: Bench, quick: bool) -> None:
    from kernels import reference as ref
    from kernels.moe import moe_ffn

    for d, w, e, k in MOE_SHAPES[-1:] if quick else MOE_SHAPES:
        router = _w(e, d, fan_in=d)
        wg, wu, wd = _w(e, w, d, fan_in=d), _w(e, w, d, fan_in=d), _w(e, d, w, fan_in=w)
        for phase, t in phases(quick):
            x = _w(t, d, fan_in=1)
            touched = e * (1 - (1 - k / e) ** t)
            flops = 3 * gemm_flops(t * k, w, d) + gemm_flops(t, e, d)
            nbytes = 2 * (touched * 3 * d * w + 2 * t * d)
            impls = {
                "triton": lambda: moe_ffn(
                    x, router, wu, wd, top_k=k, activation="swiglu", w_gate=wg
                ),
                "expert_loop": lambda: ref.moe_ffn(
                    x, router, wu, wd, top_k=k, activation="swiglu", w_gate=wg
                ),
            }
            if hasattr(torch, "_grouped_mm"):
                impls["torch._grouped_mm"] = lambda: _grouped_mm_moe(x, router, wg, wu, wd, k)
            b.run(
                "moe",
                phase,
                {"tokens": t, "d": d, "w": w, "E": e, "k": k},
                impls,
                flops=flops,
                nbytes=nbytes,
                baseline="expert_loop",
            )


def bench_blockdiag(b: Bench, quick: bool) -> None:
    from kernels.blockdiag import blockdiag_ffn

    d, f = 4096, 14336
    wg, wu, wd = _w(f, d, fan_in=d), _w(f, d, fan_in=d), _w(d, f, fan_in=f)
    for blocks in (4,) if quick else (2, 4):
        bg = _w(blocks, f // blocks, d // blocks, fan_in=d // blocks)
        bu = _w(blocks, f // blocks, d // blocks, fan_in=d // blocks)
        bd = _w(blocks, d // blocks, f // blocks, fan_in=f // blocks)
        for phase, t in phases(quick):
            x = _w(t, d, fan_in=1)
            b.run(
                "blockdiag",
                phase,
                {"tokens": t, "d": d, "f": f, "blocks": blocks},
                {
                    "triton": lambda: blockdiag_ffn(x, bu, bd, activation="swiglu", w_gate=bg),
                    "dense_cublas": lambda: F.linear(
                        F.silu(F.linear(x, wg)) * F.linear(x, wu), wd
                    ),
                },
                flops=3 * gemm_flops(t, f, d) / blocks,
                nbytes=2 * (3 * d * f / blocks + 2 * t * d),
                baseline="dense_cublas",
            )


def bench_lowrank(b: Bench, quick: bool) -> None:
    from kernels.dense_ffn import dense_ffn
    from kernels.lowrank import lowrank_ffn

    d, f = 4096, 14336
    r = 2048  # 3*(d*r + r*f) / (3*d*f) = 64% of the dense parameters
    wg, wu, wd = _w(f, d, fan_in=d), _w(f, d, fan_in=d), _w(d, f, fan_in=f)

    def pair(out: int, inp: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _w(out, r, fan_in=r), _w(r, inp, fan_in=inp)

    gate, up, down = pair(f, d), pair(f, d), pair(d, f)
    merged = {n: p[0] @ p[1] for n, p in (("gate", gate), ("up", up), ("down", down))}
    flops_per_token = 3 * 2 * (d * r + r * f)
    token_list = [t for _, t in phases(quick)]
    if not quick:
        token_list = sorted(set(token_list) | set(LOWRANK_CROSSOVER_TOKENS))
    merged_ms: dict[int, float] = {}
    factored_ms: dict[int, float] = {}
    for t in token_list:
        phase = "decode" if t <= 256 else "prefill"
        x = _w(t, d, fan_in=1)
        recs = b.run(
            "lowrank",
            phase,
            {"tokens": t, "d": d, "f": f, "rank": r},
            {
                "triton_factored": lambda: lowrank_ffn(
                    x, up, down, activation="swiglu", gate=gate
                ),
                "triton_merged": lambda: dense_ffn(
                    x, merged["up"], merged["down"], activation="swiglu", w_gate=merged["gate"]
                ),
                "dense_cublas": lambda: F.linear(F.silu(F.linear(x, wg)) * F.linear(x, wu), wd),
            },
            flops=flops_per_token * t,
            nbytes=2 * (3 * (d * r + r * f) + 2 * t * d),
            baseline="dense_cublas",
        )
        for rec in recs:
            if rec.impl == "triton_factored":
                factored_ms[t] = rec.p50_ms
            elif rec.impl == "triton_merged":
                merged_ms[t] = rec.p50_ms
    crossover = lowrank_crossover(merged_ms, factored_ms)
    if b.records:
        b.records[-1].notes.append(f"lowrank merge crossover (tokens): {crossover}")


def bench_sparse(b: Bench, quick: bool) -> None:
    from kernels.block_sparse import block_sparse_matmul
    from kernels.block_sparse import tile_index

    d, f = 4096, 14336
    w = _w(f, d, fan_in=d)
    for bs, density in ((64, 0.5),) if quick else ((64, 0.5), (128, 0.5), (128, 0.25)):
        gen = torch.Generator().manual_seed(0)
        mask = (torch.rand(f // bs, d // bs, generator=gen) < density).cuda()
        tiles = tile_index(mask)
        kept = int(mask.sum()) * bs * bs
        for phase, t in phases(quick):
            x = _w(t, d, fan_in=1)
            b.run(
                "block_sparse",
                phase,
                {"tokens": t, "n": f, "k": d, "block": bs, "density_pct": int(100 * density)},
                {
                    "triton": lambda: block_sparse_matmul(x, w, mask, bs, tiles=tiles),
                    "dense_cublas": lambda: F.linear(x, w),
                },
                flops=gemm_flops(t, 1, 1) * kept,
                nbytes=2 * (kept + t * d + t * f),
                baseline="dense_cublas",
                paths={"triton": "block_sparse"},
            )
    try:
        from torch.sparse import to_sparse_semi_structured

        w24 = w.clone()
        groups = w24.view(f, -1, 4)
        drop = torch.topk(groups.abs(), 2, dim=-1, largest=False).indices
        groups.scatter_(-1, drop, 0)
        ws = to_sparse_semi_structured(w24)
    except (RuntimeError, ValueError, ImportError) as exc:
        log.warning("2:4 semi-structured path unavailable: %s", exc)
        return
    for phase, t in phases(quick):
        x = _w(t, d, fan_in=1)
        b.run(
            "2:4",
            phase,
            {"tokens": t, "n": f, "k": d},
            {
                "semi_structured": lambda: F.linear(x, ws),
                "dense_cublas": lambda: F.linear(x, w24),
            },
            flops=gemm_flops(t, f, d) / 2,
            nbytes=2 * (d * f / 2 + t * d + t * f),
            baseline="dense_cublas",
            paths={"semi_structured": "semi_structured"},
        )


def bench_fused_group(b: Bench, quick: bool) -> None:
    from kernels.fused_group import fold_group
    from kernels.fused_group import fused_group_ffn_folded

    d, f = 4096, 14336
    for members in (2,) if quick else (2, 3):
        gains = [_w(d, fan_in=1) for _ in range(members)]
        gates = [_w(f, d, fan_in=d) for _ in range(members)]
        ups = [_w(f, d, fan_in=d) for _ in range(members)]
        downs = [_w(d, f, fan_in=f) for _ in range(members)]
        folded = fold_group(gains, None, ups, downs, w_gates=gates)

        def sequential(x: torch.Tensor) -> torch.Tensor:
            out = x
            for g, wg, wu, wd in zip(gains, gates, ups, downs, strict=True):
                h = F.rms_norm(x, (d,), g, 1e-6)
                out = out + F.linear(F.silu(F.linear(h, wg)) * F.linear(h, wu), wd)
            return out

        for phase, t in phases(quick):
            x = _w(t, d, fan_in=1)
            b.run(
                "fused_group",
                phase,
                {"tokens": t, "d": d, "f": f, "members": members},
                {
                    "triton_fused": lambda: fused_group_ffn_folded(
                        x, folded, activation="swiglu", residual=x
                    ),
                    "members_cublas": lambda: sequential(x),
                },
                flops=members * 3 * gemm_flops(t, f, d),
                nbytes=2 * (members * 3 * d * f + 2 * t * d),
                baseline="members_cublas",
            )


BENCHES: dict[str, Callable[[Bench, bool], None]] = {
    "dense": bench_dense,
    "activation": bench_activation,
    "norms": bench_norms,
    "moe": bench_moe,
    "blockdiag": bench_blockdiag,
    "lowrank": bench_lowrank,
    "sparse": bench_sparse,
    "fused_group": bench_fused_group,
}


def result_path(out_dir: Path, device_name: str, when: dt.datetime) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-") or "gpu"
    return out_dir / f"kernels-{slug}-{when:%Y%m%d-%H%M%S}.json"


def write_results(
    path: Path,
    env: dict[str, Any],
    gpu: str | None,
    args: argparse.Namespace,
    records: list[Record],
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "environment": env,
        "roofline_gpu": gpu,
        "peaks": None
        if gpu is None
        else {"flops": GPU_PEAKS[gpu][0], "bytes_per_s": GPU_PEAKS[gpu][1]},
        "quick": args.quick,
        "ops": args.op,
        "records": [dataclasses.asdict(r) for r in records],
    }
    path.write_text(json.dumps(payload, indent=2))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    if not torch.cuda.is_available():
        sys.stderr.write("benchmarks/kernels.py needs a CUDA GPU; none is available here.\n")
        return 2
    env = read_environment()
    gpu = detect_gpu(env["device_name"])
    if gpu is None:
        log.warning("no roofline peaks for %r: %%roof will be empty", env["device_name"])
    torch.manual_seed(0)
    bench = Bench(gpu)
    for op in args.op:
        log.info("benchmarking %s", op)
        with torch.inference_mode():
            BENCHES[op](bench, args.quick)
    sys.stdout.write(format_table(bench.records))
    for r in bench.records:
        for note in r.notes:
            sys.stdout.write(note + "\n")
    path = result_path(args.out, env["device_name"], dt.datetime.now())
    write_results(path, env, gpu, args, bench.records)
    sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())

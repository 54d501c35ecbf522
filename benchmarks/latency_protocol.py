"""The latency protocol on a search space: additive (per-op, cached) vs end-to-end timings.

For ``--designs`` designs drawn by Optuna's random sampler from a space, at each workload:
the additive estimate (`workers.latency.measure_design`, one shared latency table) and the
end-to-end timing of the assembled stack (`measure_end_to_end`, the model built once per
design); then MAPE and Spearman of additive vs end-to-end per workload (goals: MAPE <= 5%
and Spearman >= 0.95 on GPU targets, MAPE <= 10% on CPU). The target fingerprint and a
calibration GEMM are recorded with the numbers.

GPU (the issue's protocol run, Llama-3-8B-shaped space, prefill 4096 tokens and decode at
batch 64 over a 4096-token KV cache)::

    .venv/bin/python -m benchmarks.latency_protocol --device cuda \
        --space examples/spaces/llama3-8b.yaml --designs 20 \
        --prefill 1x4096 --decode 64x4096 --max-weight-gb 40

CPU (tiny-cpu space, its own workloads)::

    .venv/bin/python -m benchmarks.latency_protocol --threads 1
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import optuna
import torch

from search_space.costs import design_costs
from search_space.design import FFNDesign
from search_space.space import load_space
from search_space.workload import Workload
from workers.latency import TORCH_DTYPES
from workers.latency import MemoryLatencyCache
from workers.latency import additive_error
from workers.latency import measure_design
from workers.latency import measure_end_to_end
from workers.latency import resolve_backend_dtype
from workers.targets import calibrate
from workers.targets import default_target_name
from workers.targets import fingerprint

logger = logging.getLogger("latency_protocol")
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _workload(phase: str, text: str) -> Workload:
    batch, seq = (int(x) for x in text.lower().split("x"))
    return Workload(phase=phase, batch=batch, seq=seq)  # type: ignore[arg-type]


def sample(space_path: Path, n: int, seed: int, max_weight_bytes: float) -> list[FFNDesign]:
    """``n`` designs from the space whose weights fit ``max_weight_bytes``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(space_path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out: list[FFNDesign] = []
    while len(out) < n:
        trial = study.ask()
        design = space.suggest(trial)
        study.tell(trial, 0.0)
        if design_costs(design, Workload()).weight_memory_bytes <= max_weight_bytes:
            out.append(design)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", type=Path, default=ROOT / "examples/spaces/tiny-cpu.yaml")
    parser.add_argument("--designs", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--prefill", default="4x256", help="BATCHxSEQ")
    parser.add_argument("--decode", default="1x256", help="BATCHxCONTEXT")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-weight-gb", type=float, default=40.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)

    fp = fingerprint(args.device)
    target = default_target_name(fp)
    cal = calibrate(args.device)
    logger.info("target %s: %s; calibration %.1f GFLOP/s", target, fp["name"], cal.gflops)
    workloads = [_workload("prefill", args.prefill), _workload("decode", args.decode)]
    designs = sample(args.space, args.designs, args.seed, args.max_weight_gb * 1e9)
    cache = MemoryLatencyCache()
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for i, design in enumerate(designs):
        from workers.build import build_model

        backend, dtype = resolve_backend_dtype(design, target, None, None)
        model = build_model(design, backend=backend, device=args.device, dtype=TORCH_DTYPES[dtype])
        for workload in workloads:
            additive = measure_design(
                design, workload, target=target, cache=cache, device=args.device
            )
            e2e = measure_end_to_end(
                design, workload, target=target, device=args.device, model=model
            )
            rows.append(
                {
                    "design": i,
                    "layers": [layer.summary() for layer in design.layers],
                    "workload": workload.label(),
                    "additive_ms": additive.total_ms,
                    "fixed_ms": additive.fixed_ms,
                    "end_to_end_ms": e2e.p50_ms,
                    "end_to_end_p20_p80_ms": [e2e.p20_ms, e2e.p80_ms],
                    "method": additive.method,
                    "cache_hits": additive.cache_hits,
                    "cache_misses": additive.cache_misses,
                }
            )
            logger.info(
                "design %2d %-18s additive %9.3f ms  end-to-end %9.3f ms  (%+.1f%%)",
                i,
                workload.label(),
                additive.total_ms,
                e2e.p50_ms,
                100 * (additive.total_ms - e2e.p50_ms) / e2e.p50_ms,
            )
        del model
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    errors = {
        w.label(): additive_error(
            [(r["additive_ms"], r["end_to_end_ms"]) for r in rows if r["workload"] == w.label()]
        )
        for w in workloads
    }
    summary = {
        "target": target,
        "fingerprint": fp,
        "calibration": cal.model_dump(),
        "space": str(args.space),
        "designs": args.designs,
        "workloads": [w.model_dump() for w in workloads],
        "threads": torch.get_num_threads(),
        "errors": errors,
        "latency_table_rows": len(cache),
        "elapsed_s": time.perf_counter() - started,
        "rows": rows,
    }
    out = args.out or RESULTS / f"latency_protocol_{target}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str))
    for label, err in errors.items():
        logger.info(
            "%s: MAPE %.1f%%, Spearman %.3f over %d designs",
            label,
            100 * err["mape"],
            err["spearman"],
            int(err["n"]),
        )
    logger.info("-> %s", out)


if __name__ == "__main__":
    main()

"""Does the two-objective `dominated` pruner save training without losing the front?

A CPU proxy job on the tiny-cpu space (examples/spaces/tiny-cpu.yaml): 24 designs from
Optuna's random sampler, latency measured on this CPU (prefill, 1 x 256 tokens; one shared
latency table), quality = validation bpb after 192 steps of 16 x 64 bytes with 8
checkpoints (the trial's seed is its number, as `workers.tasks` sets it).

* without pruning: every trial trains to the end;
* with pruning: trials run in order, and at each checkpoint `service.pruning.should_stop`
  compares the trial with the completed ones that are at least as fast, with a noise
  margin of ``--margin`` seed stds (default 0.25; the seed std is the one
  benchmarks/proxy_fidelity.py measured). Other margins are replayed on the same curves.

Reported: training tokens of both runs (goal: >= 2x fewer with pruning) and the hypervolume
of both (latency, bpb) fronts (goal: within seed noise, i.e. within the area a one-std shift
of the front moves: ``seed_std * (ref_latency - min_latency)``). Since CPU training is
deterministic for a fixed seed, the pruned run is also replayed from the unpruned curves as a
check that both runs saw the same numbers.

    .venv/bin/python -m benchmarks.early_stopping           # ~3-5 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import optuna

from search_space.design import FFNDesign
from search_space.space import load_space
from search_space.workload import Workload
from service.pruning import Curve
from service.pruning import should_stop
from workers.proxy import ProxySettings
from workers.proxy import train_proxy

logger = logging.getLogger("early_stopping")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SPACE = ROOT / "examples" / "spaces" / "tiny-cpu.yaml"
WORKLOAD = Workload(phase="prefill", batch=1, seq=256)
UNTRAINED_BPB = 8.0
FALLBACK_SEED_STD = 0.2
MARGIN_SWEEP = (0.0, 0.25, 0.5, 1.0, 2.0)


def settings(steps: int) -> ProxySettings:
    return ProxySettings(
        tokens=steps * 16 * 64,
        batch_size=16,
        seq_len=64,
        checkpoints=8,
        eval_tokens=8192,
        max_corpus_bytes=2 << 20,
        threads=1,
    )


def sample_designs(n: int, seed: int) -> list[FFNDesign]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(space.suggest(trial))
        study.tell(trial, 0.0)
    return out


def measure_latencies(designs: list[FFNDesign]) -> list[float]:
    import torch

    from workers.latency import MemoryLatencyCache
    from workers.latency import measure_design

    torch.set_num_threads(1)
    cache = MemoryLatencyCache()
    return [measure_design(d, WORKLOAD, target="cpu", cache=cache).total_ms for d in designs]


def _full(args: tuple[int, str, int]) -> dict[str, Any]:
    number, design_json, steps = args
    result = train_proxy(FFNDesign.from_json(design_json), settings(steps), seed=number)
    return {"number": number, "bpb": result.bpb, "curve": result.curve, "tokens": result.tokens}


def run_pruned(
    designs: list[FFNDesign], latencies: list[float], steps: int, noise: float
) -> list[dict[str, Any]]:
    completed: list[Curve] = []
    out = []
    for number, (design, latency) in enumerate(zip(designs, latencies, strict=True)):
        points: list[tuple[int, float]] = []

        def report(
            step: int, value: float, points: list[tuple[int, float]] = points, lat: float = latency
        ) -> bool:
            points.append((step, value))
            return should_stop(Curve(latency_ms=lat, points=tuple(points)), completed, noise=noise)

        result = train_proxy(design, settings(steps), seed=number, report=report)
        if not result.pruned:
            completed.append(Curve(latency_ms=latency, points=tuple(result.curve)))
        out.append(
            {
                "number": number,
                "bpb": result.bpb,
                "curve": result.curve,
                "tokens": result.tokens,
                "pruned": result.pruned,
            }
        )
    return out


def replay_pruned(
    full: list[dict[str, Any]], latencies: list[float], noise: float, tokens_per_step: int
) -> list[tuple[bool, int]]:
    """(pruned, tokens) per trial, from the unpruned curves (deterministic training)."""
    completed: list[Curve] = []
    out = []
    for run, latency in zip(full, latencies, strict=True):
        points: list[tuple[int, float]] = []
        pruned = False
        for step, value in run["curve"]:
            points.append((int(step), float(value)))
            if should_stop(
                Curve(latency_ms=latency, points=tuple(points)), completed, noise=noise
            ):
                pruned = True
                break
        if not pruned:
            completed.append(Curve(latency_ms=latency, points=tuple(points)))
        out.append((pruned, points[-1][0] * tokens_per_step))
    return out


def hypervolume(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """2-D hypervolume (both minimised) dominated by ``points`` up to ``ref``."""
    front = sorted(p for p in points if p[0] < ref[0] and p[1] < ref[1])
    volume, best = 0.0, ref[1]
    for i, (x, y) in enumerate(front):
        if y >= best:
            continue
        next_x = ref[0]
        for x2, y2 in front[i + 1 :]:
            if y2 < y:
                next_x = x2
                break
        volume += (next_x - x) * (ref[1] - y)
        best = y
    return volume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--steps", type=int, default=192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--margin", type=float, default=0.25, help="pruner noise margin in seed stds"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "early_stopping.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    fidelity = RESULTS / "proxy_fidelity.json"
    seed_std = (
        json.loads(fidelity.read_text())["seed_std_bpb_mean"]
        if fidelity.exists()
        else FALLBACK_SEED_STD
    )
    noise = args.margin * seed_std
    designs = sample_designs(args.trials, args.seed)
    started = time.perf_counter()
    latencies = measure_latencies(designs)
    logger.info(
        "latency of %d designs measured in %.0f s", len(designs), time.perf_counter() - started
    )

    started = time.perf_counter()
    jobs = [(i, d.to_json(), args.steps) for i, d in enumerate(designs)]
    with mp.get_context("spawn").Pool(args.workers) as pool:
        full = sorted(pool.map(_full, jobs, chunksize=1), key=lambda r: r["number"])
    full_s = time.perf_counter() - started
    started = time.perf_counter()
    pruned = run_pruned(designs, latencies, args.steps, noise)
    pruned_s = time.perf_counter() - started
    per_step = settings(args.steps).batch_size * settings(args.steps).seq_len
    replay = replay_pruned(full, latencies, noise, per_step)
    replay_matches = [(r["pruned"], r["tokens"]) for r in pruned] == replay

    ref = (max(latencies) * 1.1, UNTRAINED_BPB)
    hv_full = hypervolume([(lat, r["bpb"]) for lat, r in zip(latencies, full, strict=True)], ref)
    hv_pruned = hypervolume(
        [(lat, r["bpb"]) for lat, r in zip(latencies, pruned, strict=True) if not r["pruned"]],
        ref,
    )
    hv_tolerance = seed_std * (ref[0] - min(latencies))
    tokens_full = sum(r["tokens"] for r in full)
    tokens_pruned = sum(r["tokens"] for r in pruned)
    # The margin is a knob: replay (exact, see above) other margins on the same curves.
    sweep = []
    for factor in MARGIN_SWEEP:
        replayed = replay_pruned(full, latencies, factor * seed_std, per_step)
        kept = [
            (lat, r["bpb"])
            for lat, r, (was_pruned, _) in zip(latencies, full, replayed, strict=True)
            if not was_pruned
        ]
        hv = hypervolume(kept, ref)
        sweep.append(
            {
                "margin_in_seed_std": factor,
                "noise_margin_bpb": factor * seed_std,
                "token_ratio": tokens_full / sum(t for _, t in replayed),
                "pruned_trials": sum(p for p, _ in replayed),
                "hypervolume": hv,
                "within_noise": abs(hv_full - hv) <= seed_std * (ref[0] - min(latencies)),
            }
        )
    summary = {
        "config": {
            "space": str(SPACE.relative_to(ROOT)),
            "trials": args.trials,
            "workload": WORKLOAD.model_dump(),
            "settings": settings(args.steps).model_dump(),
            "seed_std_bpb": seed_std,
            "noise_margin_bpb": noise,
        },
        "tokens_unpruned": tokens_full,
        "tokens_pruned": tokens_pruned,
        "token_ratio": tokens_full / tokens_pruned,
        "pruned_trials": sum(r["pruned"] for r in pruned),
        "hypervolume_unpruned": hv_full,
        "hypervolume_pruned": hv_pruned,
        "hypervolume_gap": hv_full - hv_pruned,
        "hypervolume_noise_tolerance": hv_tolerance,
        "within_noise": abs(hv_full - hv_pruned) <= hv_tolerance,
        "reference_point": ref,
        "replay_matches_real_run": replay_matches,
        "seconds": {"unpruned_2_workers": full_s, "pruned_1_worker": pruned_s},
        "margin_sweep": sweep,
        "full_curves": [r["curve"] for r in full],
        "trials_detail": [
            {
                "number": i,
                "design": [layer.summary() for layer in designs[i].layers],
                "latency_ms": latencies[i],
                "bpb_full": full[i]["bpb"],
                "pruned": pruned[i]["pruned"],
                "pruned_at_tokens": pruned[i]["tokens"],
            }
            for i in range(len(designs))
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    logger.info(
        "tokens: %d unpruned vs %d pruned (%.2fx fewer); %d of %d trials pruned",
        tokens_full,
        tokens_pruned,
        tokens_full / tokens_pruned,
        summary["pruned_trials"],
        args.trials,
    )
    logger.info(
        "hypervolume: %.4f unpruned vs %.4f pruned (gap %.4f, noise tolerance %.4f) -> %s",
        hv_full,
        hv_pruned,
        hv_full - hv_pruned,
        hv_tolerance,
        "within noise" if summary["within_noise"] else "OUTSIDE noise",
    )
    logger.info("replay of the pruned run from unpruned curves matches: %s", replay_matches)
    for row in sweep:
        logger.info(
            "  margin %.2f std (%.3f bpb): %.2fx fewer tokens, %d pruned, HV %.4f (%s)",
            row["margin_in_seed_std"],
            row["noise_margin_bpb"],
            row["token_ratio"],
            row["pruned_trials"],
            row["hypervolume"],
            "within noise" if row["within_noise"] else "outside noise",
        )
    logger.info("-> %s", args.out)


if __name__ == "__main__":
    main()

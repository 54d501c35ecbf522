"""How honest is the proxy? Seed noise, budget fidelity and sanity on a small CPU config.

(a) seed noise: std of the final validation bpb over 3 seeds, for 4 designs;
(b) fidelity: Spearman rank correlation between the final bpb at the job's budget and at a
    4x budget, over 12 diverse designs (target >= 0.8);
(c) sanity: at equal tokens a wider dense FFN does not lose to a narrower one beyond seed
    noise, and the all-noop model is the worst of the 12.

The configuration is the demo job's (examples/jobs/demo.yaml): the tiny-cpu dims (d_model 64,
4 layers, 4 heads, byte vocabulary), 192 steps of 16 x 64 bytes (196,608 tokens) on the
standard-library corpus. Runs on 2 worker processes with one torch thread each.

    .venv/bin/python -m benchmarks.proxy_fidelity            # ~5-8 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims
from workers.latency import spearman
from workers.proxy import ProxySettings
from workers.proxy import train_proxy

logger = logging.getLogger("proxy_fidelity")

RESULTS = Path(__file__).resolve().parent / "results"
DIMS = ModelDims(
    d_model=64, n_layers=4, n_heads=4, n_kv_heads=2, vocab=256, seq_len=256, dtype="fp32"
)


def _uniform(label: str, layer: LayerFFN) -> tuple[str, FFNDesign]:
    return label, FFNDesign(name=label, dims=DIMS, layers=(layer,) * 4)


def designs() -> dict[str, FFNDesign]:
    """12 designs spanning every kind, widths 64..512, fusion and sparsity."""
    items = [
        _uniform("noop", LayerFFN(kind="noop")),
        _uniform("linear", LayerFFN(kind="linear")),
        _uniform("dense64-gelu", LayerFFN(width=64, activation="gelu")),
        _uniform("dense64", LayerFFN(width=64)),
        _uniform("dense128", LayerFFN(width=128)),
        _uniform("dense256", LayerFFN(width=256)),
        _uniform("dense512", LayerFFN(width=512)),
        _uniform("moe4x64-top2", LayerFFN(kind="moe", width=64, experts=4, top_k=2)),
        _uniform("lowrank256-r16", LayerFFN(kind="lowrank", width=256, rank=16)),
        _uniform("blockdiag256-b4", LayerFFN(kind="blockdiag", width=256, blocks=4)),
        _uniform("dense256-2:4", LayerFFN(width=256, sparsity="2:4")),
        (
            "fused128-pairs",
            FFNDesign(
                name="fused128-pairs",
                dims=DIMS,
                layers=(
                    LayerFFN(width=128, fusion_group=0),
                    LayerFFN(width=128, fusion_group=0),
                    LayerFFN(width=128, fusion_group=1),
                    LayerFFN(width=128, fusion_group=1),
                ),
            ),
        ),
    ]
    return dict(items)


NOISE_DESIGNS = ("dense64", "dense256", "moe4x64-top2", "linear")
DENSE_BY_WIDTH = ("dense64", "dense128", "dense256", "dense512")


def job_settings(steps: int, lr: float = 3e-3) -> ProxySettings:
    return ProxySettings(
        tokens=steps * 16 * 64,
        batch_size=16,
        seq_len=64,
        lr=lr,
        checkpoints=4,
        eval_tokens=8192,
        max_corpus_bytes=2 << 20,
        threads=1,
    )


def _run(args: tuple[str, str, int, int, float]) -> dict[str, Any]:
    label, design_json, steps, seed, lr = args
    design = FFNDesign.from_json(design_json)
    result = train_proxy(design, job_settings(steps, lr), seed=seed)
    return {
        "design": label,
        "steps": steps,
        "seed": seed,
        "bpb": result.bpb,
        "curve": result.curve,
        "seconds": result.seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=192, help="the job's budget in steps")
    parser.add_argument("--factor", type=int, default=4, help="long budget = factor x steps")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "proxy_fidelity.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    table = designs()
    jobs = [(label, d.to_json(), args.steps, 0, args.lr) for label, d in table.items()]
    jobs += [
        (label, d.to_json(), args.steps * args.factor, 0, args.lr) for label, d in table.items()
    ]
    jobs += [
        (label, table[label].to_json(), args.steps, seed, args.lr)
        for label in NOISE_DESIGNS
        for seed in (1, 2)
    ]
    started = time.perf_counter()
    # Longest first so the two workers finish together.
    jobs.sort(key=lambda job: -job[2])
    with mp.get_context("spawn").Pool(args.workers) as pool:
        runs = pool.map(_run, jobs, chunksize=1)
    elapsed = time.perf_counter() - started

    def bpb(label: str, steps: int, seed: int = 0) -> float:
        return next(
            r["bpb"]
            for r in runs
            if r["design"] == label and r["steps"] == steps and r["seed"] == seed
        )

    short = {label: bpb(label, args.steps) for label in table}
    long = {label: bpb(label, args.steps * args.factor) for label in table}
    noise = {
        label: statistics.stdev([bpb(label, args.steps, s) for s in (0, 1, 2)])
        for label in NOISE_DESIGNS
    }
    seed_std = statistics.mean(noise.values())
    rho = spearman([short[k] for k in table], [long[k] for k in table])
    # (c) every wider dense model within noise of, or better than, every narrower one.
    margin = 2 * seed_std
    wider_ok = all(
        short[wide] <= short[narrow] + margin
        for i, narrow in enumerate(DENSE_BY_WIDTH)
        for wide in DENSE_BY_WIDTH[i + 1 :]
    )
    noop_worst = max(short, key=lambda k: short[k]) == "noop"
    summary = {
        "config": {
            "dims": DIMS.model_dump(),
            "settings": job_settings(args.steps, args.lr).model_dump(),
            "long_steps": args.steps * args.factor,
            "workers": args.workers,
        },
        "seed_std_bpb": noise,
        "seed_std_bpb_mean": seed_std,
        "bpb_job_budget": short,
        "bpb_4x_budget": long,
        "spearman_job_vs_4x": rho,
        "spearman_target": 0.8,
        "wider_dense_not_worse_within_2std": wider_ok,
        "noop_is_worst": noop_worst,
        "elapsed_s": elapsed,
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    logger.info("seed std of final bpb (3 seeds): %s", {k: round(v, 4) for k, v in noise.items()})
    logger.info(
        "Spearman(job budget, %dx budget) over %d designs: %.3f", args.factor, len(table), rho
    )
    for label in sorted(table, key=lambda k: short[k]):
        logger.info("  %-16s %.4f  (4x: %.4f)", label, short[label], long[label])
    logger.info("wider dense not worse within 2 std: %s; noop worst: %s", wider_ok, noop_worst)
    logger.info("elapsed %.0f s -> %s", elapsed, args.out)


if __name__ == "__main__":
    main()

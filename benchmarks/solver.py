"""Exact front (one DP) vs one HiGHS MIP per budget, on the real Puzzle block library.

    .venv/bin/python benchmarks/solver.py [--library PATH] [--budgets 100]

For `--budgets` budgets spread evenly over the front's cost range, the MIP's optimum must
equal the front's answer at that budget (the last front point whose cost is within the
budget plus `solve`'s tolerance). Prints a table and writes
benchmarks/results/solver-<hostname>.json with the machine and library versions.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import socket
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from search_space.library import BlockLibrary
from search_space.solve import Constraint
from search_space.solve import front
from search_space.solve import solve

logger = logging.getLogger("benchmarks.solver")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LIBRARY = ROOT.parent / "shared" / "data" / "puzzle" / "block_library.json"
COST = "stats.runtime_ms"
OBJECTIVE = "metrics.kl_div"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(library_path: Path, n_budgets: int) -> dict[str, Any]:
    library = BlockLibrary.load(library_path)
    front(library, objective=OBJECTIVE, cost=COST)  # warm-up (imports, allocator)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    result = front(library, objective=OBJECTIVE, cost=COST)
    front_wall, front_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    costs = np.array([p.cost for p in result.points])
    gaps = np.diff(costs)
    logger.info("front: %d points, %.3f s wall, %.3f s CPU", len(costs), front_wall, front_cpu)

    budgets = np.linspace(costs[0], costs[-1], n_budgets).tolist()
    rows = []
    mip_wall = 0.0
    for i, budget in enumerate(budgets):
        start = time.perf_counter()
        res = solve(
            library, objective=OBJECTIVE, constraints=[Constraint(key=COST, op="<=", bound=budget)]
        )
        elapsed = time.perf_counter() - start
        mip_wall += elapsed
        expected = result.best_at(budget + res.tolerances[COST])
        assert expected is not None
        got = res.solutions[0].objective
        rows.append(
            {
                "budget": budget,
                "mip_objective": got,
                "front_objective": expected.objective,
                "abs_diff": abs(got - expected.objective),
                "mip_s": elapsed,
                "optimal": res.optimal,
            }
        )
        logger.info(
            "budget %3d/%d %.2f: %.3f s, diff %.3g",
            i + 1,
            n_budgets,
            budget,
            elapsed,
            rows[-1]["abs_diff"],
        )
    diffs = np.array([r["abs_diff"] for r in rows])
    mip_times = np.array([r["mip_s"] for r in rows])
    return {
        "library": str(library_path.name),
        "layers": library.n_layers,
        "variants_per_layer": [len(layer.variants) for layer in library.layers][:1],
        "cost": COST,
        "objective": OBJECTIVE,
        "front": {
            "points": len(result.points),
            "n_states_peak": result.n_states_peak,
            "wall_s": front_wall,
            "cpu_s": front_cpu,
            # Pairs of points whose costs differ by at most 1e-9 of the largest cost: designs
            # equal in real arithmetic whose float sums differ in the last bits.
            "near_duplicate_costs": int(np.sum(gaps <= 1e-9 * costs[-1])),
        },
        "mip_sweep": {
            "budgets": n_budgets,
            "wall_s": mip_wall,
            "per_budget_s": {
                "min": float(mip_times.min()),
                "median": float(np.median(mip_times)),
                "max": float(mip_times.max()),
            },
            "all_optimal": all(r["optimal"] for r in rows),
        },
        "time_ratio_sweep_over_front": mip_wall / front_wall,
        "max_abs_objective_diff": float(diffs.max()),
        "max_rel_objective_diff": float(
            max(r["abs_diff"] / max(1.0, abs(r["front_objective"])) for r in rows)
        ),
        "rows": rows,
        "machine": {
            "hostname": socket.gethostname(),
            "cpu": _cpu_model(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "highspy": metadata.version("highspy"),
            "platform": platform.platform(),
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _table(report: dict[str, Any]) -> str:
    f, m = report["front"], report["mip_sweep"]
    front_note = f"{f['points']} points, CPU {f['cpu_s']:.3f} s"
    mip_note = f"{m['budgets']} budgets, median {m['per_budget_s']['median']:.3f} s"
    lines = [
        f"library {report['library']}: {report['layers']} layers, {COST} vs {OBJECTIVE}",
        f"{'method':<28}{'wall s':>10}{'notes':>40}",
        f"{'exact front (DP)':<28}{f['wall_s']:>10.3f}{front_note:>40}",
        f"{'MIP sweep (HiGHS)':<28}{m['wall_s']:>10.3f}{mip_note:>40}",
        f"time ratio (sweep / front): {report['time_ratio_sweep_over_front']:.1f}x",
        f"largest objective difference: {report['max_abs_objective_diff']:.3g} "
        f"(relative {report['max_rel_objective_diff']:.3g}); all MIPs proven optimal: "
        f"{m['all_optimal']}",
        f"front points with a near-duplicate cost (float rounding): {f['near_duplicate_costs']}",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--library", type=Path, default=DEFAULT_LIBRARY)
    parser.add_argument("--budgets", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not args.library.exists():
        sys.stderr.write(f"error: block library not found at {args.library}\n")
        raise SystemExit(2)
    report = run(args.library, args.budgets)
    out = args.out or ROOT / "benchmarks" / "results" / f"solver-{socket.gethostname()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    sys.stdout.write(_table(report))
    sys.stdout.write(f"wrote {out}\n")


if __name__ == "__main__":
    main()

"""The solvers on the real 80 x 16 Puzzle library (Llama-3.3-70B on H100, ../shared)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest

from search_space.library import BlockLibrary
from search_space.solve import Constraint
from search_space.solve import FrontResult
from search_space.solve import Throughput
from search_space.solve import front
from search_space.solve import solve

logger = logging.getLogger(__name__)

COST = "stats.runtime_ms"
OBJECTIVE = "metrics.kl_div"


@pytest.fixture(scope="module")
def library(puzzle_library_path: Path) -> BlockLibrary:
    return BlockLibrary.load(puzzle_library_path)


@pytest.fixture(scope="module")
def kl_front(library: BlockLibrary) -> FrontResult:
    return front(library, objective=OBJECTIVE, cost=COST)


def test_front_is_fast_on_one_core(library: BlockLibrary) -> None:
    # Issue 4 asks < 1 s on one core (numpy's sort and sums here are single-threaded);
    # the assert allows 2 s so a loaded CI machine does not flake. Measured: ~0.3 s.
    front(library, objective=OBJECTIVE, cost=COST)  # warm imports and caches
    start = time.process_time()
    result = front(library, objective=OBJECTIVE, cost=COST)
    cpu_s = time.process_time() - start
    logger.info("front on the real library: %.3f s CPU, %d points", cpu_s, len(result.points))
    assert cpu_s < 2.0


def test_front_shape(library: BlockLibrary, kl_front: FrontResult) -> None:
    points = kl_front.points
    # performance.md §8: the exact front has 19,859 points (computed independently).
    assert len(points) == 19_859
    costs = np.array([p.cost for p in points])
    objs = np.array([p.objective for p in points])
    assert np.all(np.diff(costs) > 0) and np.all(np.diff(objs) < 0)
    # Ends: the all-no-op design (cost 0) and the parent itself (KL 0, the most expensive).
    noop = library.variant_names(0)[-1]
    assert points[0].cost == 0.0 and points[0].choices == (noop,) * 80
    assert points[-1].objective == 0.0
    parent = tuple(library.variant_names(i)[0] for i in range(80))
    assert points[-1].choices == parent
    for p in (points[0], points[len(points) // 2], points[-1]):
        assert library.total(p.choices, COST) == p.cost
        assert library.total(p.choices, OBJECTIVE) == p.objective


# ~25 s on 2 busy cores: 24 HiGHS solves proven to gap 0, 0.03-3 s each.
@pytest.mark.slow
def test_front_matches_mip_at_24_budgets(library: BlockLibrary, kl_front: FrontResult) -> None:
    points = kl_front.points
    picks = np.linspace(0, len(points) - 1, 12).round().astype(int).tolist()
    budgets = [points[i].cost for i in picks]  # exactly on a front point
    # ... and halfway to the next point (the front's answer is the cheaper point).
    budgets += [(points[i].cost + points[i + 1].cost) / 2 for i in picks[:-1]]
    budgets.append(points[-1].cost * 2)
    assert len(budgets) >= 24
    for budget in budgets:
        result = solve(
            library,
            objective=OBJECTIVE,
            constraints=[Constraint(key=COST, op="<=", bound=budget)],
        )
        assert result.optimal, result.message
        # `solve` admits totals up to budget + tol (tol = 1e-9 of the largest runtime sum,
        # ~6.5e-5 ms): the front's answer at that budget is the reference.
        tol = result.tolerances[COST]
        expected = kl_front.best_at(budget + tol)
        assert expected is not None
        got = result.solutions[0].objective
        assert abs(got - expected.objective) <= 1e-9 * max(1.0, expected.objective), budget
        assert result.solutions[0].totals[COST] <= budget + tol


def test_throughput_floor_is_the_runtime_budget(library: BlockLibrary) -> None:
    # Puzzle's demo workload: batch 256, sequence 1200, runtimes in ms.
    floor = Throughput(batch=256, seq=1200, min_tokens_per_s=8000.0)
    budget = 256 * 1200 / 8000.0 * 1000.0
    by_floor = solve(library, objective=OBJECTIVE, throughput=floor)
    by_budget = solve(
        library, objective=OBJECTIVE, constraints=[Constraint(key=COST, op="<=", bound=budget)]
    )
    assert by_floor.solutions[0].objective == by_budget.solutions[0].objective
    sol = by_floor.solutions[0]
    assert sol.tokens_per_s is not None and sol.tokens_per_s >= 8000.0


def test_infeasible_memory_budget_reports_the_cheapest(library: BlockLibrary) -> None:
    result = solve(
        library,
        objective=OBJECTIVE,
        constraints=[
            Constraint(key=COST, op="<=", bound=40000.0),
            Constraint(key="stats.memory_mib", op="<=", bound=-1.0),
        ],
    )
    assert result.status == "infeasible" and result.solutions == ()
    (why,) = result.infeasible
    assert why.constraint.key == "stats.memory_mib" and why.alone_infeasible
    assert why.best_total == 0.0
    assert "no design meets stats.memory_mib<=-1" in result.message

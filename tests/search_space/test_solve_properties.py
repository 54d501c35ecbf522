"""Property tests: on random small libraries `front` and `solve` equal brute force.

Brute force enumerates every design, totals it left to right in layer order (the exact
float sums both solvers are defined on) and filters/sorts in plain Python.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import search_space.solver.mip
from search_space.library import BlockLibrary
from search_space.solve import Constraint
from search_space.solve import front
from search_space.solve import solve

KEYS = ("stats.a", "stats.b", "metrics.q")
# A small pool of values makes exact ties in sums (and equal variants) common.
_POOL = st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 0.1, 0.2, 0.3])
_VALUE = st.one_of(_POOL, st.floats(-20.0, 100.0, allow_nan=False, allow_infinity=False))


@st.composite
def libraries(draw: st.DrawFn) -> BlockLibrary:
    n_layers = draw(st.integers(2, 5))
    data: dict[str, Any] = {}
    for layer in range(n_layers):
        n_variants = draw(st.integers(1, 5))
        data[f"layer_{layer}"] = {
            f"v{j}": {
                "stats": {"a": draw(_VALUE), "b": draw(_VALUE)},
                "metrics": {"q": draw(_VALUE)},
            }
            for j in range(n_variants)
        }
    return BlockLibrary.from_dict(data)


def _designs(library: BlockLibrary) -> list[tuple[str, ...]]:
    return list(itertools.product(*(layer.names for layer in library.layers)))


def _totals(library: BlockLibrary, design: tuple[str, ...]) -> dict[str, float]:
    return {key: library.total(design, key) for key in KEYS}


def _brute_front(
    library: BlockLibrary, cost: str, objective: str, maximize: bool
) -> list[tuple[float, float]]:
    sign = -1.0 if maximize else 1.0
    pairs = sorted(
        {(library.total(d, cost), sign * library.total(d, objective)) for d in _designs(library)}
    )
    out: list[tuple[float, float]] = []
    for c, o in pairs:  # sorted by cost, then objective: keep strict improvements
        if out and out[-1][0] == c:
            continue
        if not out or o < out[-1][1]:
            out.append((c, o))
    return [(c, sign * o) for c, o in out]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    library=libraries(),
    cost=st.sampled_from(KEYS),
    objective=st.sampled_from(KEYS),
    maximize=st.booleans(),
)
def test_front_equals_brute_force(
    library: BlockLibrary, cost: str, objective: str, maximize: bool
) -> None:
    result = front(library, objective=objective, cost=cost, maximize=maximize)
    got = [(p.cost, p.objective) for p in result.points]
    assert got == _brute_front(library, cost, objective, maximize)
    assert result.optimal
    assert result.n_states_peak >= len(result.points)
    for point in result.points:
        # Every point's choices reproduce its totals exactly.
        assert library.total(point.choices, cost) == point.cost
        assert library.total(point.choices, objective) == point.objective


def _constraints(draw: st.DrawFn, library: BlockLibrary) -> list[Constraint]:
    designs = _designs(library)
    out = []
    for key in draw(st.lists(st.sampled_from(("stats.a", "stats.b")), max_size=2, unique=True)):
        # Bounds sit exactly on some design's total (ties at the budget), one ulp inside it
        # (within HiGHS's tolerance but not met exactly), or anywhere.
        totals = sorted(library.total(d, key) for d in designs)
        bound = draw(
            st.one_of(
                st.sampled_from(totals),
                st.sampled_from(totals).flatmap(
                    lambda t: st.sampled_from(
                        [math.nextafter(t, -math.inf), math.nextafter(t, math.inf)]
                    )
                ),
                st.floats(totals[0] - 5.0, totals[-1] + 5.0, allow_nan=False),
            )
        )
        out.append(Constraint(key=key, op=draw(st.sampled_from(("<=", ">="))), bound=bound))
    return out


def _tolerance(library: BlockLibrary, key: str) -> float:
    """`solve`'s documented tolerance: 1e-9 of the key's largest possible total."""
    return 1e-9 * sum(max(abs(float(x)) for x in col) for col in library.column(key))


def _feasible(library: BlockLibrary, constraints: list[Constraint]) -> list[tuple[str, ...]]:
    return [
        d
        for d in _designs(library)
        if all(c.holds(library.total(d, c.key), _tolerance(library, c.key)) for c in constraints)
    ]


def _close(a: float, b: float) -> bool:
    # HiGHS proves optimality to its dual tolerance (1e-7 in objective units): objectives
    # closer than that are equal to it (a 5.96e-8 vs 0.0 case was found by hypothesis).
    return abs(a - b) <= 1e-6 + 1e-9 * max(abs(a), abs(b))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), library=libraries(), maximize=st.booleans())
def test_solve_equals_brute_force(
    data: st.DataObject, library: BlockLibrary, maximize: bool
) -> None:
    constraints = _constraints(data.draw, library)
    result = solve(library, objective="metrics.q", constraints=constraints, maximize=maximize)
    feasible = _feasible(library, constraints)
    if not feasible:
        assert result.status == "infeasible"
        assert result.solutions == ()
        assert result.infeasible
        return
    assert result.status == "optimal" and result.optimal
    assert len(result.solutions) == 1
    best = (max if maximize else min)(library.total(d, "metrics.q") for d in feasible)
    solution = result.solutions[0]
    assert _close(solution.objective, best)
    assert solution.objective == library.total(solution.choices, "metrics.q")
    for c in constraints:
        assert solution.totals[c.key] == library.total(solution.choices, c.key)
        assert c.holds(solution.totals[c.key], _tolerance(library, c.key)), (c, solution.totals)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), library=libraries())
def test_diverse_solutions_match_sequential_brute_force(
    data: st.DataObject, library: BlockLibrary
) -> None:
    n_layers = library.n_layers
    k = data.draw(st.integers(2, 4), label="solutions")
    d = data.draw(st.integers(1, n_layers), label="min_diversity")
    constraints = _constraints(data.draw, library)
    result = solve(
        library, objective="metrics.q", constraints=constraints, solutions=k, min_diversity=d
    )
    feasible = _feasible(library, constraints)
    if not feasible:
        assert result.status == "infeasible"
        return
    assert result.status == "optimal"
    sols = [s.choices for s in result.solutions]
    assert 1 <= len(sols) <= k
    for a, b in itertools.combinations(sols, 2):
        assert sum(x != y for x, y in zip(a, b, strict=True)) >= d
    # The i-th solution is the best feasible design diverse from the ones before it.
    for i in range(len(sols) + (1 if len(sols) < k else 0)):
        allowed = [
            x
            for x in feasible
            if all(sum(p != q for p, q in zip(x, s, strict=True)) >= d for s in sols[:i])
        ]
        if i == len(sols):
            assert allowed == [], "solve stopped early although a diverse design remains"
            assert result.message
        else:
            best = min(library.total(x, "metrics.q") for x in allowed)
            assert _close(result.solutions[i].objective, best)
            for c in constraints:
                assert c.holds(library.total(sols[i], c.key), _tolerance(library, c.key))


def test_solve_refuses_repeating_solutions() -> None:
    library = BlockLibrary.from_dict(
        {"layer_0": {"x": {"stats": {"a": 1.0}, "metrics": {"q": 1.0}}}}
    )
    with pytest.raises(ValueError, match=r"`min_diversity >= 1` must hold when solutions > 1"):
        solve(library, objective="metrics.q", solutions=2)
    with pytest.raises(ValueError, match=r"`0 <= min_diversity <= n_layers` must hold"):
        solve(library, objective="metrics.q", solutions=2, min_diversity=2)


def test_design_highs_accepts_but_the_tolerance_refuses_is_cut_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With solve's tolerance set to 0, (a, a) totals 0.1 + 0.2 = 0.30000000000000004 > 0.3:
    # HiGHS accepts it (1e-9 feasibility tolerance), the exact re-check must refuse it.
    monkeypatch.setattr(search_space.solver.mip, "_TOL_REL", 0.0)
    library = BlockLibrary.from_dict(
        {
            "layer_0": {
                "a": {"stats": {"t": 0.1}, "metrics": {"q": 0.0}},
                "b": {"stats": {"t": 0.0}, "metrics": {"q": 5.0}},
            },
            "layer_1": {
                "a": {"stats": {"t": 0.2}, "metrics": {"q": 0.0}},
                "b": {"stats": {"t": 0.25}, "metrics": {"q": 1.0}},
            },
        }
    )
    result = solve(
        library, objective="metrics.q", constraints=[Constraint(key="stats.t", op="<=", bound=0.3)]
    )
    assert result.tolerances == {"stats.t": 0.0}
    assert result.solutions[0].choices == ("b", "a")
    assert result.solutions[0].totals["stats.t"] == 0.2


def test_totals_equal_in_real_arithmetic_are_feasible_alike() -> None:
    # 0.1 + 0.2 == 0.30000000000000004 in float64, yet 0.3 in real arithmetic: the
    # tolerance keeps (a, a) within a budget of 0.3, like (b, b) whose total is exactly 0.3.
    library = BlockLibrary.from_dict(
        {
            "layer_0": {
                "a": {"stats": {"t": 0.1}, "metrics": {"q": 0.0}},
                "b": {"stats": {"t": 0.3}, "metrics": {"q": 1.0}},
            },
            "layer_1": {
                "a": {"stats": {"t": 0.2}, "metrics": {"q": 0.0}},
                "b": {"stats": {"t": 0.0}, "metrics": {"q": 1.0}},
            },
        }
    )
    result = solve(
        library, objective="metrics.q", constraints=[Constraint(key="stats.t", op="<=", bound=0.3)]
    )
    assert result.solutions[0].choices == ("a", "a")

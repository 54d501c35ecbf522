"""The front and the hypervolume against brute-force recomputations."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from dataclasses import field

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from service.pareto import REFERENCE_MARGIN
from service.pareto import dominates
from service.pareto import hypervolume
from service.pareto import non_dominated
from service.pareto import pareto_front


def brute_front(points: list[tuple[float, ...]]) -> list[int]:
    """O(n^2) definition: i is on the front iff no j is <= everywhere and < somewhere."""
    out = []
    for i, p in enumerate(points):
        dominated = any(
            all(q[k] <= p[k] for k in range(len(p))) and any(q[k] < p[k] for k in range(len(p)))
            for j, q in enumerate(points)
            if j != i
        )
        if not dominated:
            out.append(i)
    return out


def brute_hypervolume(points: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    """Exact volume by coordinate compression: sum the grid cells some point dominates."""
    inside = [p for p in points if all(v < r for v, r in zip(p, ref, strict=True))]
    axes = [sorted({p[k] for p in inside} | {ref[k]}) for k in range(len(ref))]
    total = 0.0
    for cell in itertools.product(*(range(len(a) - 1) for a in axes)):
        low = [axes[k][c] for k, c in enumerate(cell)]
        if any(all(p[k] <= low[k] for k in range(len(ref))) for p in inside):
            total += math.prod(axes[k][c + 1] - axes[k][c] for k, c in enumerate(cell))
    return total


coords = st.integers(min_value=0, max_value=12).map(float)


def point_lists(dim: int, max_size: int = 25) -> st.SearchStrategy[list[tuple[float, ...]]]:
    return st.lists(st.tuples(*([coords] * dim)), min_size=0, max_size=max_size)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 3).flatmap(point_lists))
def test_non_dominated_equals_brute_force(points: list[tuple[float, ...]]) -> None:
    assert non_dominated(points) == brute_front(points)


@settings(max_examples=150, deadline=None)
@given(point_lists(2))
def test_hypervolume_2d_equals_grid_count(points: list[tuple[float, ...]]) -> None:
    ref = (10.0, 10.0)
    assert hypervolume(points, ref) == pytest.approx(brute_hypervolume(points, ref), abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(point_lists(3, max_size=10))
def test_hypervolume_3d_equals_grid_count(points: list[tuple[float, ...]]) -> None:
    ref = (10.0, 10.0, 10.0)
    assert hypervolume(points, ref) == pytest.approx(brute_hypervolume(points, ref), abs=1e-9)


def test_hypervolume_hand_derived() -> None:
    # Two boxes 3x1 and 1x3 overlapping in a 1x1 square: 3 + 3 - 1 = 5.
    assert hypervolume([(0, 2), (2, 0)], (3, 3)) == pytest.approx(5.0)
    assert hypervolume([(0, 0, 0)], (1, 1, 1)) == pytest.approx(1.0)
    # Boxes 2x1x1 (z in [1, 2]) and 1x1x2 (x in [1, 2]) overlap in a 1x1x1 cube: 2 + 2 - 1.
    assert hypervolume([(0, 0, 1), (1, 0, 0)], (2, 1, 2)) == pytest.approx(3.0)
    # A dominated point adds nothing.
    assert hypervolume([(0, 0, 1), (0, 0, 0)], (2, 1, 2)) == pytest.approx(4.0)
    assert hypervolume([(4,)], (10,)) == pytest.approx(6.0)
    assert hypervolume([(10, 0)], (10, 10)) == 0.0  # on the reference: adds nothing
    with pytest.raises(ValueError, match="n_objectives <= 3"):
        hypervolume([(0, 0, 0, 0)], (1, 1, 1, 1))


def test_dominates() -> None:
    assert dominates((1, 2), (1, 3))
    assert not dominates((1, 2), (1, 2))
    assert not dominates((0, 3), (1, 2))


@dataclass
class FakeTrial:
    number: int
    values: dict[str, float]
    state: str = "complete"
    feasible: bool | None = True
    constraints: dict[str, float] = field(default_factory=dict)


trial_rows = st.lists(
    st.tuples(
        coords,
        coords,
        st.sampled_from(["complete", "complete", "complete", "failed", "pruned", "running"]),
        st.sampled_from([True, True, None, False]),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(trial_rows, st.sampled_from(["minimize", "maximize"]))
def test_pareto_front_matches_brute_force(
    rows: list[tuple[float, float, str, bool | None]], direction: str
) -> None:
    trials = [
        FakeTrial(number=i, values={"params": a, "bpb": b}, state=s, feasible=f)
        for i, (a, b, s, f) in enumerate(rows)
    ]
    result = pareto_front(trials, ["params", "bpb"], ["minimize", direction])
    eligible = [t for t in trials if t.state == "complete" and t.feasible is not False]
    sign = 1.0 if direction == "minimize" else -1.0
    vectors = [(t.values["params"], sign * t.values["bpb"]) for t in eligible]
    expected = sorted(eligible[i].number for i in brute_front(vectors))
    assert [t.number for t in result.front] == expected

    # History: one entry per eligible trial, non-decreasing, ending at the front's volume.
    assert [n for n, _ in result.hypervolume] == [t.number for t in eligible]
    volumes = [v for _, v in result.hypervolume]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(volumes))
    if eligible:
        lows = [min(v[k] for v in vectors) for k in range(2)]
        highs = [max(v[k] for v in vectors) for k in range(2)]
        scales = [(h - lo) or 1.0 for lo, h in zip(lows, highs, strict=True)]
        normalised = [tuple((v[k] - lows[k]) / scales[k] for k in range(2)) for v in vectors]
        ref = (REFERENCE_MARGIN, REFERENCE_MARGIN)
        assert volumes[-1] == pytest.approx(brute_hypervolume(normalised, ref), abs=1e-9)
        # The stated reference point, in objective units, maps to 1.1 after normalising.
        for k, r in enumerate(result.reference_point):
            signed = r if k == 0 else sign * r
            assert (signed - lows[k]) / scales[k] == pytest.approx(REFERENCE_MARGIN)
    else:
        assert result.front == [] and result.reference_point == []


def test_pareto_front_three_objectives_history_by_hand() -> None:
    trials = [
        FakeTrial(0, {"params": 0.0, "flops": 1.0, "bpb": 1.0}),
        FakeTrial(1, {"params": 1.0, "flops": 0.0, "bpb": 1.0}),
        FakeTrial(2, {"params": 1.0, "flops": 1.0, "bpb": 1.0}),  # dominated by both
        FakeTrial(3, {"params": 1.0, "flops": 1.0, "bpb": 0.0}),
    ]
    result = pareto_front(trials, ["params", "flops", "bpb"], ["minimize"] * 3)
    assert [t.number for t in result.front] == [0, 1, 3]
    # Normalised box [0, 1.1]^3. Trial 0 alone: 1.1 x 0.1 x 0.1 = 0.011.
    # Adding trial 1 (0.1 x 1.1 x 0.1) overlaps trial 0 in 0.1^3: 0.011 + 0.011 - 0.001.
    # Trial 2 adds nothing; trial 3 adds 0.1 x 0.1 x 1.1 minus its overlaps with both (2 x
    # 0.001) plus the triple overlap (0.001): 0.021 + 0.011 - 0.002 + 0.001 = 0.031.
    assert [n for n, _ in result.hypervolume] == [0, 1, 2, 3]
    assert [v for _, v in result.hypervolume] == pytest.approx([0.011, 0.021, 0.021, 0.031])
    assert result.reference_point == pytest.approx([1.1, 1.1, 1.1])


def test_pareto_front_rejects_mismatched_directions() -> None:
    with pytest.raises(ValueError, match="len\\(names\\) == len\\(directions\\)"):
        pareto_front([], ["params"], ["minimize", "maximize"])

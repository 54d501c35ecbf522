"""Pareto fronts and exact hypervolumes of a job's trials.

The front is the non-dominated set of *complete and feasible* trials under the job's
objective directions (the same set Optuna's constraint-aware `study.best_trials` returns).
Internally every objective is turned into minimisation (maximised values are negated).

Hypervolume is computed exactly for 1, 2 and 3 objectives, on values normalised per
objective to [0, 1] over all eligible trials of the job (0 = best seen, 1 = worst seen), with
the reference point at 1.1 in every normalised coordinate. The response states that point in
the objectives' own units, so the numbers can be reproduced. Because the scale is fixed by
the whole job, the history over trial numbers is non-decreasing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "REFERENCE_MARGIN",
    "ParetoResult",
    "dominates",
    "eligible_values",
    "hypervolume",
    "non_dominated",
    "pareto_front",
]

# Reference point at 1.1 x the normalised worst value: extreme front points still add volume.
REFERENCE_MARGIN = 1.1

Point = tuple[float, ...]


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when `a` is no worse than `b` everywhere and better somewhere (minimisation)."""
    better = False
    for x, y in zip(a, b, strict=True):
        if x > y:
            return False
        if x < y:
            better = True
    return better


def non_dominated(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the points no other point dominates (minimisation; ties all kept)."""
    order = sorted(range(len(points)), key=lambda i: tuple(points[i]))
    front: list[int] = []
    # In lexicographic order a point can only be dominated by one before it, and any
    # dominator of it is itself dominated by (or equal to) a front member.
    for i in order:
        if not any(dominates(points[j], points[i]) for j in front):
            front.append(i)
    return sorted(front)


def _hv2(points: Sequence[Point], ref: Point) -> float:
    """Area dominated by `points` and bounded by `ref` (2 objectives, minimisation)."""
    volume = 0.0
    best_y = ref[1]
    for x, y in sorted(points):
        if y < best_y:
            volume += (ref[0] - x) * (best_y - y)
            best_y = y
    return volume


def _hv3(points: Sequence[Point], ref: Point) -> float:
    """Volume by sweeping z: each slab's area is the 2-D hypervolume of the points below."""
    ordered = sorted(points, key=lambda p: p[2])
    volume = 0.0
    below: list[Point] = []
    for k, p in enumerate(ordered):
        below.append((p[0], p[1]))
        z_next = ordered[k + 1][2] if k + 1 < len(ordered) else ref[2]
        if z_next > p[2]:
            volume += _hv2(below, (ref[0], ref[1])) * (z_next - p[2])
    return volume


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Exact hypervolume of `points` w.r.t. `reference` (minimisation, 1 to 3 objectives).

    Points not strictly better than the reference in every coordinate add nothing.
    """
    dim = len(reference)
    if dim not in (1, 2, 3):
        raise ValueError(f"`1 <= n_objectives <= 3` must hold for hypervolume, but got {dim}")
    ref = tuple(float(r) for r in reference)
    inside = [
        tuple(float(v) for v in p)
        for p in points
        if all(v < r for v, r in zip(p, ref, strict=True))
    ]
    if not inside:
        return 0.0
    if dim == 1:
        return ref[0] - min(p[0] for p in inside)
    if dim == 2:
        return _hv2(inside, ref)
    return _hv3(inside, ref)


def eligible_values(
    trials: Sequence[Any], names: Sequence[str], directions: Sequence[str]
) -> list[tuple[Any, Point]]:
    """(trial, minimisation vector) for trials that are complete, feasible and fully scored.

    `trials` are `Trial` rows (or anything with `state`, `feasible`, `values`).
    """
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    out: list[tuple[Any, Point]] = []
    for trial in trials:
        if trial.state != "complete" or trial.feasible is False:
            continue
        values = trial.values or {}
        raw = [values.get(name) for name in names]
        if any(v is None or not math.isfinite(float(v)) for v in raw):
            continue
        out.append((trial, tuple(s * float(v) for s, v in zip(signs, raw, strict=True))))  # type: ignore[arg-type]
    return out


@dataclass(frozen=True)
class ParetoResult:
    """The front (trials in number order), the hypervolume history and its reference."""

    front: list[Any]
    hypervolume: list[tuple[int, float]]
    reference_point: list[float]


def pareto_front(
    trials: Sequence[Any], names: Sequence[str], directions: Sequence[str]
) -> ParetoResult:
    """Front and normalised hypervolume history of `trials` (rows with `number`)."""
    if len(names) != len(directions):
        raise ValueError(
            f"`len(names) == len(directions)` must hold, but got {len(names)} and "
            f"{len(directions)}"
        )
    scored = sorted(eligible_values(trials, names, directions), key=lambda tv: tv[0].number)
    if not scored:
        return ParetoResult(front=[], hypervolume=[], reference_point=[])
    vectors = [v for _, v in scored]
    front = [scored[i][0] for i in non_dominated(vectors)]
    dim = len(names)
    lows = [min(v[k] for v in vectors) for k in range(dim)]
    highs = [max(v[k] for v in vectors) for k in range(dim)]
    # A flat objective (all trials equal) gets scale 1 so it does not divide by zero.
    scales = [(h - lo) if h > lo else 1.0 for lo, h in zip(lows, highs, strict=True)]
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    reference = [
        s * (lo + REFERENCE_MARGIN * sc) for s, lo, sc in zip(signs, lows, scales, strict=True)
    ]
    norm_ref = (REFERENCE_MARGIN,) * dim

    history: list[tuple[int, float]] = []
    current: list[Point] = []
    volume = 0.0
    for trial, vector in scored:
        point = tuple((v - lo) / sc for v, lo, sc in zip(vector, lows, scales, strict=True))
        # A point dominated by, or equal to, a front member leaves the volume unchanged.
        if not any(dominates(q, point) or q == point for q in current):
            current = [q for q in current if not dominates(point, q)] + [point]
            volume = hypervolume(current, norm_ref)
        history.append((trial.number, volume))
    return ParetoResult(front=front, hypervolume=history, reference_point=reference)

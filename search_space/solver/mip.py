"""Several budgets at once: the optimum by MIP (HiGHS), with diverse alternatives.

The problem is Puzzle's (arXiv 2411.19146 §4.1): binary ``x[l, v]``, one variant per layer,
minimise (or maximise) the summed objective subject to linear budgets on summed keys, the
throughput floor ``batch * seq / sum(runtime) >= T`` written as the linear budget
``sum(runtime) <= batch * seq / T``, and for ``K`` diverse solutions, after each solution
the cut ``sum over its chosen (l, v) of x[l, v] <= L - D``, so every later solution
differs from it in at least ``D`` layers.

Tolerance. A design meets ``key <= B`` when its total (float64, added left to right in
layer order, as in `BlockLibrary.total`) is ``<= B + tol``, with ``tol = 1e-9 *`` the key's
largest possible total (sum over layers of the largest ``|value|``). Without it, designs
whose sums are equal in real arithmetic but differ in the last bit (the Puzzle library
repeats runtimes across layers, so permuted choices abound) would be feasible or not by
rounding luck, and HiGHS, which works to its own tolerance, cannot prove optimality over
such a set: a budget set exactly on a front point ran past 300 s. HiGHS gets the row
``sum <= B + tol``; a returned design that passes ``B + tol`` (only possible within HiGHS's
own feasibility tolerance) is cut off (``sum x <= L - 1`` on its choices) and the model
re-solved. The objective reported is the exact total of the chosen variants, not HiGHS's.

Optimality is proven to HiGHS's tolerances (gaps set to 0; its dual tolerance is 1e-7 in
objective units, so designs whose objectives differ by less than that may tie). On the real
Puzzle library the MIP optimum equals the exact front's to the last bit at 24 budgets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from search_space.errors import LibraryError
from search_space.library import BlockLibrary
from search_space.solver.highs_model import ChoiceModel
from search_space.solver.types import Constraint
from search_space.solver.types import Infeasibility
from search_space.solver.types import Solution
from search_space.solver.types import SolveResult
from search_space.solver.types import SolveStatus
from search_space.solver.types import Throughput

__all__ = ["best_possible", "solve"]

logger = logging.getLogger(__name__)

_TOL_REL = 1e-9
# A re-solve per design HiGHS accepts within its own tolerance but ours refuses: rare.
_MAX_EXACTNESS_CUTS = 1000


def solve(
    library: BlockLibrary,
    *,
    objective: str,
    constraints: Sequence[Constraint] = (),
    maximize: bool = False,
    throughput: Throughput | None = None,
    solutions: int = 1,
    min_diversity: int = 0,
    time_limit_s: float | None = None,
) -> SolveResult:
    """The best design(s) under several budgets, by MIP with HiGHS.

    Args:
        library: the block library.
        objective: dotted key summed over layers, e.g. ``metrics.kl_div``.
        constraints: budgets on summed keys, e.g. ``Constraint("stats.runtime_ms", "<=",
            40000)``; `parse_constraint` reads ``'stats.runtime_ms<=40000'``.
        maximize: maximise the objective (default: minimise).
        throughput: Puzzle's floor ``batch * seq / sum(runtime) >= min_tokens_per_s``.
        solutions: how many designs to return (``K``); the k-th is the best design that
            differs from each earlier one in at least `min_diversity` layers.
        min_diversity: ``D``; must be in ``1..n_layers`` when ``solutions > 1``.
        time_limit_s: wall-time limit over all solves; when hit, the best design found so
            far is returned with ``optimal=False`` and its gap.

    Returns:
        `SolveResult`: `status` ``optimal`` | ``time_limit`` | ``infeasible``; `solutions`
        best first, each with choices, exact objective and totals of every key used;
        `optimal`, `gap` (largest relative MIP gap), `elapsed_s`. When infeasible,
        `infeasible` names the constraint(s) and the best total any design reaches. Fewer
        than `solutions` designs come back when no further design is diverse enough
        (`message` says so).

    Raises:
        LibraryError: a key is malformed or missing in the library, or bad arguments.
    """
    start = time.perf_counter()
    n_layers = library.n_layers
    if solutions < 1:
        raise LibraryError(f"`solutions >= 1` must hold, but got solutions={solutions}")
    if not 0 <= min_diversity <= n_layers:
        raise LibraryError(
            f"`0 <= min_diversity <= n_layers` must hold, but got "
            f"min_diversity={min_diversity}, n_layers={n_layers}"
        )
    if solutions > 1 and min_diversity < 1:
        raise LibraryError(
            f"`min_diversity >= 1` must hold when solutions > 1 (else the same design "
            f"repeats), but got min_diversity={min_diversity}, solutions={solutions}"
        )
    all_constraints = list(constraints)
    if throughput is not None:
        all_constraints.append(throughput.as_constraint())

    obj = library.column(objective)
    columns = {key: library.column(key) for key in _keys(objective, all_constraints, throughput)}
    names = [layer.names for layer in library.layers]

    def finish(
        status: SolveStatus,
        found: list[Solution],
        *,
        infeasible: tuple[Infeasibility, ...] = (),
        message: str = "",
    ) -> SolveResult:
        return SolveResult(
            objective_key=objective,
            maximize=maximize,
            status=status,
            solutions=tuple(found),
            optimal=bool(found) and all(s.optimal for s in found),
            gap=max((s.gap for s in found), default=0.0 if status == "optimal" else float("inf")),
            elapsed_s=time.perf_counter() - start,
            constraints=tuple(all_constraints),
            tolerances=tolerances,
            infeasible=infeasible,
            message=message,
        )

    tolerances = {
        c.key: _TOL_REL * sum(float(np.max(np.abs(v))) for v in columns[c.key])
        for c in all_constraints
    }
    alone = [
        best_possible(library, c, columns[c.key], tolerance=tolerances[c.key])
        for c in all_constraints
    ]
    if any(a.alone_infeasible for a in alone):
        blocked = tuple(a for a in alone if a.alone_infeasible)
        return finish("infeasible", [], infeasible=blocked, message=blocked[0].message())

    model = ChoiceModel(obj, maximize=maximize)
    for c in all_constraints:
        values = columns[c.key]
        # Rows are divided by the key's largest |value| so HiGHS's absolute tolerances
        # mean the same for milliseconds (~1e3 per layer) as for parameters (~1e9).
        scale = max(float(np.max(np.abs(v))) for v in values) or 1.0
        scaled = [v / scale for v in values]
        tol = tolerances[c.key] / scale
        if c.op == "<=":
            model.add_sum_row(scaled, -np.inf, c.bound / scale + tol)
        else:
            model.add_sum_row(scaled, c.bound / scale - tol, np.inf)

    found: list[Solution] = []
    cuts = 0
    status: SolveStatus = "optimal"
    message = ""
    while len(found) < solutions:
        remaining = None if time_limit_s is None else time_limit_s - (time.perf_counter() - start)
        if remaining is not None and remaining <= 0:
            status, message = "time_limit", "time limit reached"
            break
        outcome = model.run(remaining)
        if outcome.choice is None:
            if outcome.status == "time_limit":
                status, message = "time_limit", "time limit reached before a design was found"
            elif not found:
                blocked = tuple(a for a in alone)
                return finish(
                    "infeasible",
                    [],
                    infeasible=blocked,
                    message="no design meets all constraints together: "
                    + ", ".join(c.label() for c in all_constraints),
                )
            else:
                message = (
                    f"only {len(found)} design(s) meet the constraints while differing in "
                    f">= {min_diversity} layers from each other"
                )
            break
        choice = outcome.choice
        totals = {key: _exact_total(col, choice) for key, col in columns.items()}
        if not all(c.holds(totals[c.key], tolerances[c.key]) for c in all_constraints):
            # Feasible only within HiGHS's tolerance: exclude this exact design, re-solve.
            cuts += 1
            if cuts > _MAX_EXACTNESS_CUTS:
                raise RuntimeError(f"more than {_MAX_EXACTNESS_CUTS} exactness cuts")
            model.add_choice_cut(choice, n_layers - 1)
            continue
        found.append(
            Solution(
                choices=tuple(names[layer][v] for layer, v in enumerate(choice.tolist())),
                objective=_exact_total(obj, choice),
                totals=totals,
                optimal=outcome.proven,
                gap=outcome.gap,
                tokens_per_s=None
                if throughput is None
                else throughput.tokens_per_s(totals[throughput.runtime_key]),
            )
        )
        if outcome.status == "time_limit":
            status, message = "time_limit", "time limit reached; the last design is unproven"
            break
        model.add_choice_cut(choice, n_layers - max(min_diversity, 1))
    logger.debug("solve: %d solution(s), %d exactness cut(s)", len(found), cuts)
    return finish(status, found, message=message)


def best_possible(
    library: BlockLibrary,
    constraint: Constraint,
    values: list[np.ndarray] | None = None,
    *,
    tolerance: float = 0.0,
) -> Infeasibility:
    """The design with the smallest (for ``<=``; largest for ``>=``) total of the key.

    Returns it as an `Infeasibility` record whose `alone_infeasible` says whether even this
    design breaks the constraint.
    """
    if values is None:
        values = library.column(constraint.key)
    pick = np.argmin if constraint.op == "<=" else np.argmax
    choice = np.array([int(pick(v)) for v in values])
    total = _exact_total(values, choice)
    return Infeasibility(
        constraint=constraint,
        best_total=total,
        best_choices=tuple(
            layer.names[v] for layer, v in zip(library.layers, choice.tolist(), strict=True)
        ),
        alone_infeasible=not constraint.holds(total, tolerance),
    )


def _keys(
    objective: str, constraints: list[Constraint], throughput: Throughput | None
) -> list[str]:
    keys = dict.fromkeys([objective, *(c.key for c in constraints)])
    if throughput is not None:
        keys[throughput.runtime_key] = None
    return list(keys)


def _exact_total(values: list[np.ndarray], choice: np.ndarray) -> float:
    """Left-to-right float64 sum over layers (the definition every solver shares)."""
    total = 0.0
    for layer, v in enumerate(choice.tolist()):
        value = float(values[layer][v])
        total = value if layer == 0 else total + value
    return total

"""Public entry point of the exact solvers (the contract names `search_space.solve`).

* `front(library, *, objective, cost, maximize=False) -> FrontResult`: the exact Pareto
  front of (summed cost, summed objective) over all budgets, by a DP over layers.
* `solve(library, *, objective, constraints, maximize=False, throughput=None, solutions=1,
  min_diversity=0, time_limit_s=None) -> SolveResult`: the optimum under several budgets
  by MIP (HiGHS), with K diverse solutions.

The implementations live in `search_space.solver`.
"""

from search_space.solver import Constraint
from search_space.solver import FrontPoint
from search_space.solver import FrontResult
from search_space.solver import Infeasibility
from search_space.solver import Solution
from search_space.solver import SolveResult
from search_space.solver import Throughput
from search_space.solver import best_possible
from search_space.solver import front
from search_space.solver import parse_constraint
from search_space.solver import solve

__all__ = [
    "Constraint",
    "FrontPoint",
    "FrontResult",
    "Infeasibility",
    "Solution",
    "SolveResult",
    "Throughput",
    "best_possible",
    "front",
    "parse_constraint",
    "solve",
]

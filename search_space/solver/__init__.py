"""Exact solvers over a block library: the whole Pareto front (DP) and budgeted MIPs."""

from search_space.solver.front import front
from search_space.solver.mip import best_possible
from search_space.solver.mip import solve
from search_space.solver.parse import parse_constraint
from search_space.solver.types import Constraint
from search_space.solver.types import FrontPoint
from search_space.solver.types import FrontResult
from search_space.solver.types import Infeasibility
from search_space.solver.types import Solution
from search_space.solver.types import SolveResult
from search_space.solver.types import Throughput

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

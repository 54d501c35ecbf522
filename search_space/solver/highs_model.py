"""A thin HiGHS model of the one-variant-per-layer choice (binary x[layer, variant])."""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from typing import Literal

import highspy
import numpy as np

__all__ = ["ChoiceModel", "RunOutcome"]

_BANNER_LOCK = threading.Lock()
_BANNER_SHOWN = False

# HiGHS's default gaps (mip_rel_gap 1e-4, mip_abs_gap 1e-6) stop short of the optimum; the
# exact solver must prove it. Rows are normalised to O(1) per layer, and the feasibility
# tolerances are tightened from 1e-6/1e-7 to 1e-9 so that HiGHS accepts no design that
# `solve`'s own tolerance (1e-9 of the largest total, i.e. >= 1e-9 per layer normalised)
# refuses: the re-solve loop in `solve` then stays a safety net.
_OPTIONS: dict[str, float | bool] = {
    "output_flag": False,
    "mip_rel_gap": 0.0,
    "mip_abs_gap": 0.0,
    "mip_feasibility_tolerance": 1e-9,
    "primal_feasibility_tolerance": 1e-9,
}


def _new_highs() -> highspy.Highs:
    """A silent `Highs`; the first one per process prints a banner on fd 1 unless hidden.

    The banner is written by C++ to the process's stdout before any option can be set,
    which would corrupt `--json` output, so fd 1 points at /dev/null while it is created.
    """
    global _BANNER_SHOWN
    with _BANNER_LOCK:
        if _BANNER_SHOWN:
            return highspy.Highs()
        sys.stdout.flush()
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            highs = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
        _BANNER_SHOWN = True
        return highs


@dataclass(frozen=True)
class RunOutcome:
    """What one HiGHS run gave: status, chosen variant index per layer (if any), gap."""

    status: Literal["optimal", "time_limit", "infeasible"]
    choice: np.ndarray | None
    gap: float
    proven: bool


class ChoiceModel:
    """min/max sum(obj * x) s.t. one variant per layer, plus rows added later."""

    def __init__(self, objective: list[np.ndarray], *, maximize: bool) -> None:
        self.sizes = [len(o) for o in objective]
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        n = int(self.starts[-1])
        self.n_layers = len(objective)
        self.highs = _new_highs()
        for name, value in _OPTIONS.items():
            self.highs.setOptionValue(name, value)
        cost = np.concatenate(objective).astype(np.float64)
        zeros = np.zeros(n)
        self.highs.addCols(
            n,
            cost,
            zeros,
            np.ones(n),
            0,
            np.zeros(0, np.int32),
            np.zeros(0, np.int32),
            np.zeros(0),
        )
        self.highs.changeColsIntegrality(
            n, np.arange(n, dtype=np.int32), np.full(n, 1, dtype=np.uint8)
        )
        if maximize:
            self.highs.changeObjectiveSense(highspy.ObjSense.kMaximize)
        # One variant per layer: sum_v x[l, v] == 1.
        starts = self.starts[:-1].astype(np.int32)
        self.highs.addRows(
            self.n_layers,
            np.ones(self.n_layers),
            np.ones(self.n_layers),
            n,
            starts,
            np.arange(n, dtype=np.int32),
            np.ones(n),
        )

    def add_sum_row(self, values: list[np.ndarray], lower: float, upper: float) -> None:
        """lower <= sum over layers of values[l][v] * x[l, v] <= upper."""
        coeffs = np.concatenate(values).astype(np.float64)
        n = len(coeffs)
        self.highs.addRow(lower, upper, n, np.arange(n, dtype=np.int32), coeffs)

    def add_choice_cut(self, choice: np.ndarray, max_shared: int) -> None:
        """sum over layers of x[l, choice[l]] <= max_shared (differ in the other layers)."""
        cols = (self.starts[:-1] + choice).astype(np.int32)
        self.highs.addRow(
            -highspy.kHighsInf, float(max_shared), len(cols), cols, np.ones(len(cols))
        )

    def run(self, time_limit_s: float | None) -> RunOutcome:
        # HiGHS's clock runs across the runs of one model: the limit is absolute on it.
        self.highs.setOptionValue(
            "time_limit",
            float("inf")
            if time_limit_s is None
            else self.highs.getRunTime() + max(time_limit_s, 1e-3),
        )
        self.highs.run()
        model_status = self.highs.getModelStatus()
        info = self.highs.getInfo()
        has_solution = info.primal_solution_status == highspy.kSolutionStatusFeasible
        status: Literal["optimal", "time_limit"]
        if model_status == highspy.HighsModelStatus.kOptimal:
            status, proven = "optimal", True
        elif model_status in (
            highspy.HighsModelStatus.kInfeasible,
            highspy.HighsModelStatus.kUnboundedOrInfeasible,
        ):
            return RunOutcome("infeasible", None, float("inf"), True)
        elif model_status == highspy.HighsModelStatus.kTimeLimit:
            status, proven = "time_limit", False
        else:
            raise RuntimeError(
                f"HiGHS stopped with model status {self.highs.modelStatusToString(model_status)!r}"
            )
        if not has_solution:
            return RunOutcome(status, None, float("inf"), proven)
        x = np.asarray(self.highs.getSolution().col_value)
        choice = np.array(
            [
                int(np.argmax(x[a:b]))
                for a, b in zip(self.starts[:-1], self.starts[1:], strict=True)
            ]
        )
        gap = 0.0 if proven else float(info.mip_gap)
        return RunOutcome(status, choice, gap, proven)

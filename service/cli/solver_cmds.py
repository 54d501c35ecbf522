"""`ffnas front` and `ffnas solve`: exact solvers over a block library, no server needed.

Bad input (unreadable or malformed library, unknown key, missing stat, malformed
constraint, a budget no design meets) prints a message naming it on stderr and exits 2.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Annotated
from typing import Any

import typer

from search_space.errors import LibraryError
from search_space.library import BlockLibrary
from search_space.solve import FrontResult
from search_space.solve import SolveResult
from search_space.solve import Throughput
from search_space.solve import front
from search_space.solve import parse_constraint
from search_space.solve import solve

_TABLE_LIMIT = 40  # rows the front table shows unless --limit says otherwise
_CODES = string.digits + string.ascii_lowercase + string.ascii_uppercase


def register(app: typer.Typer) -> None:
    """Add `front` and `solve` to `app`."""
    app.command("front")(front_cmd)
    app.command("solve")(solve_cmd)


def front_cmd(
    library: Annotated[Path, typer.Argument(help="block_library.json (Puzzle or native).")],
    objective: Annotated[str, typer.Option(help="Quality key summed over layers.")] = (
        "metrics.kl_div"
    ),
    cost: Annotated[str, typer.Option(help="Cost key summed over layers.")] = "stats.runtime_ms",
    maximize: Annotated[bool, typer.Option(help="Maximise the objective.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    limit: Annotated[
        int | None,
        typer.Option(
            min=0,
            help=f"Show N points spread evenly along the front (0: all; table default "
            f"{_TABLE_LIMIT}, JSON default all).",
        ),
    ] = None,
) -> None:
    """The exact Pareto front of summed COST vs summed OBJECTIVE over all budgets."""
    lib = _load(library)
    result = _guard(lambda: front(lib, objective=objective, cost=cost, maximize=maximize))
    shown = _spread(
        len(result.points), limit if limit is not None else (0 if as_json else _TABLE_LIMIT)
    )
    if as_json:
        typer.echo(json.dumps(_front_json(result, shown)))
        return
    _print_front(lib, result, shown)


def solve_cmd(
    library: Annotated[Path, typer.Argument(help="block_library.json (Puzzle or native).")],
    objective: Annotated[str, typer.Option(help="Quality key summed over layers.")] = (
        "metrics.kl_div"
    ),
    maximize: Annotated[bool, typer.Option(help="Maximise the objective.")] = False,
    constraint: Annotated[
        list[str] | None,
        typer.Option(help="Budget on a summed key, e.g. 'stats.runtime_ms<=40000' (repeat)."),
    ] = None,
    throughput: Annotated[
        str | None,
        typer.Option(
            help="Throughput floor BATCH,SEQ,TOKENS_PER_S (runtime in ms from "
            "stats.runtime_ms), e.g. '256,1200,5500'."
        ),
    ] = None,
    solutions: Annotated[int, typer.Option(min=1, help="How many designs (K).")] = 1,
    min_diversity: Annotated[
        int, typer.Option(min=0, help="Each design differs from the others in >= D layers.")
    ] = 1,
    time_limit: Annotated[
        float | None, typer.Option(min=0.0, help="Seconds for all solves together.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The best design(s) for OBJECTIVE under several budgets (MIP with HiGHS)."""
    lib = _load(library)
    constraints = _guard(lambda: [parse_constraint(c, lib) for c in constraint or []])
    floor = _parse_throughput(throughput) if throughput else None
    diversity = min_diversity if solutions > 1 else 0
    result = _guard(
        lambda: solve(
            lib,
            objective=objective,
            constraints=constraints,
            maximize=maximize,
            throughput=floor,
            solutions=solutions,
            min_diversity=diversity,
            time_limit_s=time_limit,
        )
    )
    if as_json:
        typer.echo(json.dumps(result.to_json()))
    else:
        _print_solve(lib, result)
    if result.status == "infeasible":
        typer.echo("error: infeasible: no design meets the constraints", err=True)
        for why in result.infeasible:
            typer.echo(f"  {why.message()}", err=True)
            if not as_json:
                typer.echo(f"  that design: {_codes(lib, why.best_choices)}", err=True)
        raise typer.Exit(2)


# ----------------------------------------------------------------------------- helpers


def _load(path: Path) -> BlockLibrary:
    return _guard(lambda: BlockLibrary.load(path))


def _guard(fn: Any) -> Any:
    try:
        return fn()
    except LibraryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _parse_throughput(text: str) -> Throughput:
    parts = text.split(",")
    try:
        if len(parts) != 3:
            raise ValueError
        batch, seq, tps = int(parts[0]), int(parts[1]), float(parts[2])
        return Throughput(batch=batch, seq=seq, min_tokens_per_s=tps)
    except ValueError:
        typer.echo(
            f"error: --throughput must be BATCH,SEQ,TOKENS_PER_S with positive numbers, "
            f"e.g. '256,1200,5500', but got {text!r}",
            err=True,
        )
        raise typer.Exit(2) from None


def _spread(n: int, limit: int) -> list[int]:
    """`limit` indices spread evenly over range(n), ends included (all when 0 or >= n)."""
    if limit == 0 or limit >= n:
        return list(range(n))
    if limit == 1:
        return [n - 1]
    return sorted({round(i * (n - 1) / (limit - 1)) for i in range(limit)})


def _legend(lib: BlockLibrary) -> dict[str, str]:
    """One short code per distinct variant name, in first-seen order."""
    codes: dict[str, str] = {}
    for layer in lib.layers:
        for name in layer.names:
            if name not in codes:
                i = len(codes)
                codes[name] = _CODES[i] if i < len(_CODES) else f"<{i}>"
    return codes


def _codes(lib: BlockLibrary, choices: tuple[str, ...]) -> str:
    legend = _legend(lib)
    return "".join(legend[c] for c in choices)


def _print_legend(lib: BlockLibrary) -> None:
    typer.echo("variants (one code per layer, layer 0 first):")
    for name, code in _legend(lib).items():
        typer.echo(f"  {code}  {' '.join(name.split())}")


def _front_json(result: FrontResult, shown: list[int]) -> dict[str, Any]:
    return {
        "objective": result.objective_key,
        "cost": result.cost_key,
        "maximize": result.maximize,
        "optimal": result.optimal,
        "elapsed_s": result.elapsed_s,
        "n_points": len(result.points),
        "n_states_peak": result.n_states_peak,
        "points": [result.points[i].model_dump(mode="json") for i in shown],
    }


def _print_front(lib: BlockLibrary, result: FrontResult, shown: list[int]) -> None:
    _print_legend(lib)
    typer.echo(
        f"exact Pareto front: {len(result.points)} points, {result.elapsed_s:.3f} s "
        f"(showing {len(shown)}; --limit 0 for all)"
    )
    typer.echo(f"{'#':>6}  {result.cost_key:>18}  {result.objective_key:>18}  choices")
    for i in shown:
        p = result.points[i]
        typer.echo(f"{i:>6}  {p.cost:>18.6f}  {p.objective:>18.9g}  {_codes(lib, p.choices)}")


def _print_solve(lib: BlockLibrary, result: SolveResult) -> None:
    gap = "proven optimal" if result.optimal else f"not proven optimal, gap {result.gap:.3g}"
    typer.echo(
        f"status: {result.status} ({gap}), {len(result.solutions)} solution(s), "
        f"{result.elapsed_s:.2f} s"
    )
    if result.message and result.status != "infeasible":
        typer.echo(f"note: {result.message}")
    _print_legend(lib)
    for k, sol in enumerate(result.solutions):
        totals = ", ".join(f"{key}={value:.10g}" for key, value in sol.totals.items())
        extra = "" if sol.tokens_per_s is None else f", {sol.tokens_per_s:.1f} tokens/s"
        typer.echo(f"solution {k + 1}: {result.objective_key}={sol.objective:.10g}{extra}")
        typer.echo(f"  totals: {totals}")
        typer.echo(f"  choices: {_codes(lib, sol.choices)}")

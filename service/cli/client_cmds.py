"""Client commands: `ffnas submit`, `status`, `watch`, `pareto`.

`ffnas export ID --trial N` lives with the local export in `design_cmds`.

They talk to a running server over HTTP (`service.client`): the URL and token come from
``FFNAS_URL`` and ``FFNAS_TOKEN`` (or `.env`). Bad input and API 4xx answers print the
server's message on stderr and exit with code 2; an unreachable server exits with 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated
from typing import Any

import typer

__all__ = ["api_client", "register"]


@contextmanager
def api_client() -> Iterator[Any]:
    from service.client import ApiError
    from service.client import Client

    try:
        with Client() as client:
            yield client
    except ApiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2 if 400 <= exc.status < 500 else 1) from None


def _load_spec(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text()
    except OSError as exc:
        typer.echo(f"error: cannot read {path}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    try:
        data = yaml.safe_load(text)  # YAML is a superset of JSON: both load here
    except yaml.YAMLError as exc:
        typer.echo(f"error: {path} is not valid YAML/JSON: {exc}", err=True)
        raise typer.Exit(2) from None
    if not isinstance(data, dict):
        typer.echo(
            f"error: {path} must hold a mapping (a job spec), got {type(data).__name__}", err=True
        )
        raise typer.Exit(2)
    return data


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


def _counts_line(job: dict[str, Any]) -> str:
    c = job["counts"]
    done = c["complete"] + c["pruned"] + c["failed"]
    return (
        f"{done}/{job['n_trials']} done: {c['complete']} complete, {c['pruned']} pruned, "
        f"{c['failed']} failed, {c['running']} running, {c['queued']} queued"
    )


def _print_job(job: dict[str, Any]) -> None:
    typer.echo(f"{job['id']}  {job['name']}")
    typer.echo(f"  status:    {job['status']}")
    typer.echo(
        f"  strategy:  {job['strategy']}  evaluator: {job['evaluator']}  target: {job['target']}"
    )
    typer.echo(f"  trials:    {_counts_line(job)}")
    if job.get("best"):
        best = ", ".join(f"{k}={v:.6g}" for k, v in job["best"].items())
        typer.echo(f"  best:      {best}")
    if job.get("error"):
        typer.echo(f"  error:     {job['error']}")


def _exit_for(job: dict[str, Any]) -> None:
    if job["status"] == "failed":
        raise typer.Exit(1)


def submit(
    file: Annotated[Path, typer.Argument(help="Job spec, YAML or JSON (see docs/api.md).")],
    wait: Annotated[bool, typer.Option("--wait", help="Block until the job ends.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Submit a search job; print its id (or, with --wait, its final state)."""
    spec = _load_spec(file)
    with api_client() as client:
        job = client.submit_job(spec)
        if wait:
            job = client.wait(job["id"])
    if as_json:
        _echo_json(job)
    elif wait:
        _print_job(job)
    else:
        typer.echo(job["id"])
    _exit_for(job) if wait else None


def status(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Show a job's status, trial counts and best values."""
    with api_client() as client:
        job = client.get_job(job_id)
    _echo_json(job) if as_json else _print_job(job)


class FrontTracker:
    """The size of the non-dominated set of complete feasible trials, updated per event."""

    def __init__(self, objectives: list[dict[str, Any]]) -> None:
        self.names = [o["name"] for o in objectives]
        self.signs = [
            1.0 if o.get("direction", "minimize") == "minimize" else -1.0 for o in objectives
        ]
        self.front: dict[int, tuple[float, ...]] = {}

    def add(self, trial: dict[str, Any]) -> None:
        from service.pareto import dominates

        number = trial["number"]
        self.front.pop(number, None)
        values = trial.get("values") or {}
        if trial["state"] != "complete" or trial.get("feasible") is False:
            return
        if any(values.get(n) is None for n in self.names):
            return
        point = tuple(s * float(values[n]) for s, n in zip(self.signs, self.names, strict=True))
        if any(dominates(q, point) for q in self.front.values()):
            return
        self.front = {k: q for k, q in self.front.items() if not dominates(point, q)}
        self.front[number] = point

    def __len__(self) -> int:
        return len(self.front)


def watch(job_id: Annotated[str, typer.Argument(help="The job id.")]) -> None:
    """Live progress of a job: trials done/running/failed/pruned and the front size."""
    from rich.progress import BarColumn
    from rich.progress import MofNCompleteColumn
    from rich.progress import Progress
    from rich.progress import TextColumn
    from rich.progress import TimeElapsedColumn

    with api_client() as client:
        job = client.get_job(job_id)
        tracker = FrontTracker(job["spec"]["objectives"])
        states: dict[int, str] = {}
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, transient=False) as progress:
            task = progress.add_task(job["name"], total=job["n_trials"], detail=job["status"])
            for event, data in client.events(job_id):
                if event == "trial":
                    states[data["number"]] = data["state"]
                    tracker.add(data)
                elif event == "job":
                    job = data
                values = list(states.values())
                done = sum(values.count(s) for s in ("complete", "pruned", "failed"))
                detail = (
                    f"{job['status']}  running {values.count('running')}  "
                    f"failed {values.count('failed')}  pruned {values.count('pruned')}  "
                    f"front {len(tracker)}"
                )
                progress.update(task, completed=done, detail=detail)
        job = client.get_job(job_id)
    typer.echo(f"{job['status']}: {_counts_line(job)}; front size {len(tracker)}")
    _exit_for(job)


def pareto(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Print the job's Pareto front (complete, feasible, non-dominated trials)."""
    with api_client() as client:
        front = client.pareto(job_id)
    if as_json:
        _echo_json(front)
        return
    from rich.console import Console
    from rich.table import Table

    names = [o["name"] for o in front["objectives"]]
    arrows = {"minimize": "min", "maximize": "max"}
    table = Table(title=f"Pareto front of {job_id} ({len(front['points'])} points)")
    table.add_column("trial", justify="right")
    for o in front["objectives"]:
        table.add_column(f"{o['name']} ({arrows[o['direction']]})", justify="right")
    table.add_column("latency p50 ms", justify="right")
    table.add_column("design")
    for point in front["points"]:
        latency = point.get("latency") or {}
        p50 = latency.get("p50_ms")
        table.add_row(
            str(point["number"]),
            *(f"{point['values'][n]:.6g}" for n in names),
            f"{p50:.4g}" if p50 is not None else "-",
            point["summary"],
        )
    Console().print(table)
    if front["hypervolume"]:
        ref = ", ".join(f"{v:.6g}" for v in front["reference_point"])
        typer.echo(
            f"hypervolume (normalised, reference [{ref}]): {front['hypervolume'][-1]['value']:.6g}"
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("submit")(submit)
    app.command("status")(status)
    app.command("watch")(watch)
    app.command("pareto")(pareto)

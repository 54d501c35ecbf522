"""Design, space, schema and export commands: pure `search_space` work, no server needed.

``ffnas schema design``, ``ffnas design validate|costs``, ``ffnas space size|sample`` and
``ffnas export`` (a local design file, or with ``--trial N`` a trial of a job on the server).
Bad input prints the reasons on stderr and exits with code 2.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Annotated
from typing import Any
from typing import Literal
from typing import NoReturn

import typer
import yaml
from pydantic import ValidationError

from search_space.design import FFNDesign

__all__ = ["register", "scientific"]

design_app = typer.Typer(help="Check and cost FFN designs.", no_args_is_help=True)
space_app = typer.Typer(help="Inspect search spaces.", no_args_is_help=True)
schema_app = typer.Typer(help="Print published JSON Schemas.", no_args_is_help=True)

FileArg = Annotated[
    Path, typer.Argument(help="A file (JSON or YAML).", exists=False, dir_okay=False)
]


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(2)


def _read(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror or exc}")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        _fail(f"{path} is not valid JSON/YAML: {exc}")


def _validation_lines(exc: ValidationError) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in err['loc']) or '<design>'}: {err['msg']}"
        for err in exc.errors()
    ]


def _read_design(path: Path) -> FFNDesign:
    data = _read(path)
    try:
        return FFNDesign.model_validate(data)
    except ValidationError as exc:
        _fail(f"{path}: invalid design:\n  " + "\n  ".join(_validation_lines(exc)))


def scientific(value: int, digits: int = 3) -> str:
    """``12345`` -> ``1.23e+04``, exact for integers beyond the float range."""
    text = str(abs(value))
    exponent = len(text) - 1
    rounded = round(int(text[: digits + 1]) / 10**digits, digits - 1) if len(text) > 1 else value
    if rounded >= 10:  # 9.999 rounded up
        rounded /= 10
        exponent += 1
    sign = "-" if value < 0 else ""
    return f"{sign}{rounded:.{digits - 1}f}e+{exponent:02d}"


@schema_app.command("design")
def schema_design() -> None:
    """Print the JSON Schema of an FFN design (native export format, version 1)."""
    from search_space.export.native import schema_text

    typer.echo(schema_text(), nl=False)


@design_app.command("validate")
def design_validate(file: FileArg) -> None:
    """Check a design file; exit 0 if valid, else print every problem and exit 2."""
    design = _read_design(file)
    kinds = ", ".join(layer.summary() for layer in design.layers)
    typer.echo(f"ok: {design.dims.n_layers} layers, d_model {design.dims.d_model}: {kinds}")


@design_app.command("costs")
def design_costs_cmd(
    file: FileArg,
    batch: Annotated[int, typer.Option(help="Sequences per step.", min=1)] = 1,
    seq: Annotated[
        int, typer.Option(help="Tokens per sequence (prefill) or context (decode).", min=1)
    ] = 2048,
    phase: Annotated[
        Literal["prefill", "decode"], typer.Option(help="prefill or decode.")
    ] = "prefill",
    dtype: Annotated[
        Literal["fp32", "fp16", "bf16"] | None,
        typer.Option(help="Byte counts in this dtype (default: the design's)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Parameters, FLOPs and bytes per layer and in total for one step of a workload."""
    from search_space.costs import design_costs
    from search_space.workload import Workload

    design = _read_design(file)
    try:
        workload = Workload(phase=phase, batch=batch, seq=seq)
    except ValidationError as exc:
        _fail("bad workload:\n  " + "\n  ".join(_validation_lines(exc)))
    costs = design_costs(design, workload, dtype=dtype)
    if as_json:
        typer.echo(costs.model_dump_json(indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{design.name or file.name}: {workload.label()} {costs.dtype}")
    for column in (
        "layer",
        "ffn",
        "params",
        "active",
        "nonzero",
        "GFLOP/step",
        "weight MB",
        "act MB",
        "KV MB",
    ):
        table.add_column(column, justify="left" if column == "ffn" else "right")
    for c in costs.layers:
        fused = f" [fuse {c.fusion_group}]" if c.fusion_group is not None else ""
        table.add_row(
            str(c.layer),
            c.summary + fused,
            f"{c.params:,}",
            f"{c.params_active:,}",
            f"{c.params_nonzero:,}",
            f"{c.flops_per_step / 1e9:.3f}",
            f"{c.weight_bytes / 1e6:.2f}",
            f"{c.activation_bytes / 1e6:.2f}",
            f"{c.kv_cache_bytes / 1e6:.2f}",
        )
    table.add_row(
        "total",
        f"+ embedding {costs.embedding_params:,}, head {costs.head_params:,}",
        f"{costs.params:,}",
        f"{costs.params_active:,}",
        f"{costs.params_nonzero:,}",
        f"{costs.flops_per_step / 1e9:.3f}",
        f"{costs.weight_bytes / 1e6:.2f}",
        f"{costs.activation_bytes / 1e6:.2f}",
        f"{costs.kv_cache_bytes / 1e6:.2f}",
        style="bold",
    )
    Console(width=160).print(table)
    typer.echo(f"FLOPs per token: {costs.flops_per_token:,.0f}")


def _load_space(file: Path) -> Any:
    from search_space.errors import SpaceError
    from search_space.space import SearchSpace

    data = _read(file)
    try:
        return SearchSpace.from_dict(data)
    except SpaceError as exc:
        _fail(f"{file}: {exc}")


@space_app.command("size")
def space_size(
    file: FileArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """The exact number of distinct designs in a search space."""
    space = _load_space(file)
    size = space.size()
    if as_json:
        typer.echo(json.dumps({"size": str(size), "scientific": scientific(size)}))
        return
    typer.echo(str(size))
    typer.echo(f"~ {scientific(size)} designs")


@space_app.command("sample")
def space_sample(
    file: FileArg,
    n: Annotated[int, typer.Option("--n", help="How many designs.", min=1)] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
) -> None:
    """Random designs from a search space, one JSON document per line."""
    space = _load_space(file)
    rng = random.Random(seed)
    for _ in range(n):
        typer.echo(space.sample(rng).to_json(indent=None))


def export_cmd(
    target: Annotated[str, typer.Argument(help="A native design file, or a job id with --trial.")],
    fmt: Annotated[
        Literal["native", "decilm", "puzzletron"],
        typer.Option("--format", "-f", help="Export format."),
    ] = "native",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", "--out", help="Write here (a file, or a folder) instead of stdout."
        ),
    ] = None,
    trial: Annotated[
        int | None,
        typer.Option("--trial", help="Export trial N of job TARGET from the server."),
    ] = None,
) -> None:
    """Export a design as native JSON, a DeciLM config.json or a ModelOpt BlockConfig file.

    Knobs the format cannot express are listed on stderr (never dropped silently).
    """
    if trial is not None:
        from search_space.export import LossyItem
        from service.cli.client_cmds import api_client

        with api_client() as client:
            result = client.export_trial(job_id=target, number=trial, fmt=fmt)
        content = str(result["content"])
        filename = str(result.get("filename") or "design.json")
        lossy_lines = [LossyItem.model_validate(item).line() for item in result.get("lossy", [])]
    else:
        from search_space.export import export_design

        exported = export_design(_read_design(Path(target)), fmt)
        content = exported.content
        filename = exported.filename
        lossy_lines = [item.line() for item in exported.lossy]
    for line in lossy_lines:
        typer.echo(line, err=True)
    if output is None:
        typer.echo(content, nl=False)
    else:
        path = output / filename if output.is_dir() else output
        path.write_text(content)
        typer.echo(f"wrote {path} ({len(lossy_lines)} lossy/warning items)", err=True)


def register(app: typer.Typer) -> None:
    """Add the schema, design and space groups and the export command to `app`."""
    app.add_typer(schema_app, name="schema")
    app.add_typer(design_app, name="design")
    app.add_typer(space_app, name="space")
    app.command("export")(export_cmd)

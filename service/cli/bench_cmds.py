"""`ffnas bench`: measure one design's latency on this machine, layer by layer.

The same measurement a `latency` trial makes on a worker (per-unit op timings, summed with the
fixed parts), plus an end-to-end timing of the assembled stack so the additive model's error
is shown next to it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated
from typing import Literal

import typer

__all__ = ["register"]


def bench(
    design_file: Annotated[Path, typer.Argument(help="A native design JSON file.")],
    phase: Annotated[Literal["prefill", "decode"], typer.Option(help="Workload phase.")] = (
        "prefill"
    ),
    batch: Annotated[int, typer.Option(min=1, help="Sequences per step.")] = 1,
    seq: Annotated[int, typer.Option(min=1, help="Tokens per sequence (decode: context).")] = 512,
    device: Annotated[
        Literal["auto", "cpu", "cuda"], typer.Option(help="Where to run (auto: cuda if present).")
    ] = "auto",
    end_to_end: Annotated[
        bool, typer.Option("--e2e/--no-e2e", help="Also time the assembled stack.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Time every layer of a design at a workload, sum them, and check against end to end."""
    from pydantic import ValidationError

    from search_space.design import FFNDesign
    from search_space.workload import Workload

    try:
        design = FFNDesign.model_validate_json(design_file.read_bytes())
    except OSError as exc:
        typer.echo(f"error: cannot read {design_file}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    except ValidationError as exc:
        typer.echo(f"error: {design_file} is not a valid design:\n{exc}", err=True)
        raise typer.Exit(2) from None
    workload = Workload(phase=phase, batch=batch, seq=seq)

    import torch

    from workers.latency import MemoryLatencyCache
    from workers.latency import measure_design
    from workers.latency import measure_end_to_end

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        typer.echo("error: --device cuda, but torch sees no CUDA device", err=True)
        raise typer.Exit(2)
    target = "cpu" if device == "cpu" else "cuda"
    additive = measure_design(
        design, workload, target=target, cache=MemoryLatencyCache(), device=device
    )
    e2e = (
        measure_end_to_end(design, workload, target=target, device=device) if end_to_end else None
    )
    error = (additive.total_ms - e2e.p50_ms) / e2e.p50_ms if e2e is not None else None
    if as_json:
        out = {
            "workload": workload.model_dump(),
            "device": device,
            "additive": additive.model_dump(),
            "end_to_end": e2e.model_dump() if e2e is not None else None,
            "additive_error": error,
        }
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{design.name or design_file.name}: {workload.label()} on {device}")
    for column in ("layer", "ffn", "ms", "share"):
        table.add_column(column, justify="right" if column in ("ms", "share") else "left")
    for i, (layer, ms) in enumerate(zip(design.layers, additive.per_layer_ms, strict=True)):
        table.add_row(str(i), layer.summary(), f"{ms:.4g}", f"{ms / additive.total_ms:.1%}")
    table.add_row("", "attention (all layers)", f"{additive.attention_ms:.4g}", "")
    table.add_row("", "embedding + head", f"{additive.embed_head_ms:.4g}", "")
    Console().print(table)
    typer.echo(
        f"additive: {additive.total_ms:.4g} ms (ops p20..p80 {additive.p20_ms:.4g}.."
        f"{additive.p80_ms:.4g}; {additive.method}, backend {additive.backend}, {additive.dtype})"
    )
    if e2e is not None and error is not None:
        typer.echo(
            f"end to end: {e2e.p50_ms:.4g} ms (p20..p80 {e2e.p20_ms:.4g}..{e2e.p80_ms:.4g}); "
            f"additive model error {error:+.1%}"
        )


def register(app: typer.Typer) -> None:
    """Add `ffnas bench` to `app`."""
    app.command("bench")(bench)

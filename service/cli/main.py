"""Entry point of the `ffnas` console script.

Each command group lives in its own module and registers its commands on the shared `app`
through `register(app)`. Modules import heavy dependencies (torch, FastAPI, Celery) inside
the commands, so `ffnas --help` and the pure design commands start fast.
"""

from __future__ import annotations

import logging

import typer

from service.cli import bench_cmds
from service.cli import client_cmds
from service.cli import design_cmds
from service.cli import server_cmds
from service.cli import solver_cmds

app = typer.Typer(
    name="ffnas",
    help="Architecture search for the feed-forward layers of transformer language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (design_cmds, solver_cmds, server_cmds, client_cmds, bench_cmds):
    _module.register(app)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app()


if __name__ == "__main__":
    main()

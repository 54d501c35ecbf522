"""Server-side commands: `ffnas up`, `ffnas worker`, `ffnas token create|list|revoke`.

`ffnas up` is the embedded default: the API (uvicorn), a controller worker and one
evaluation worker for the local target run as child processes on SQLite and kombu's
SQLAlchemy transport, every file under ``--data-dir``. Production runs the same processes
on PostgreSQL + Redis (docker/compose.yml, docs/running.md).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated
from typing import Any

import typer

__all__ = ["register"]

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEMO_JOB = REPO / "examples" / "jobs" / "demo.yaml"
_FINISHED = ("completed", "stopped", "failed")

token_app = typer.Typer(help="API tokens.", no_args_is_help=True)


def _use_data_dir(data_dir: Path | None) -> None:
    """Point this process (and the children it starts) at `data_dir`."""
    from service.core.config import get_settings

    if data_dir is not None:
        os.environ["FFNAS_DATA_DIR"] = str(data_dir.expanduser().resolve())
        get_settings.cache_clear()


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


# ---------------------------------------------------------------------------------------
# ffnas token create
# ---------------------------------------------------------------------------------------


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="A label for the token (e.g. your name).")],
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory of the embedded default.")
    ] = None,
) -> None:
    """Create an API token for a new owner and print it on stdout (shown only once)."""
    _use_data_dir(data_dir)
    from service.auth import create_token
    from service.core.db import init_db
    from service.core.db import session_scope

    try:
        init_db()
        with session_scope() as session:
            _, token = create_token(session, name)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(token)


@token_app.command("list")
def token_list(
    owner: Annotated[
        str | None, typer.Option(help="Only this owner's tokens (default: every owner's).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory of the embedded default.")
    ] = None,
) -> None:
    """List API tokens: id, owner, name and creation time (never a secret or hash)."""
    _use_data_dir(data_dir)
    from rich.console import Console
    from rich.table import Table

    from service import crud
    from service.core.db import init_db
    from service.core.db import session_scope

    init_db()
    with session_scope() as session:
        tokens = crud.list_tokens(session, owner_id=owner)
    table = Table(title=f"{len(tokens)} API tokens")
    table.add_column("id", justify="right")
    # Owner ids are 32 hex digits; wrapping one would make it uncopyable.
    table.add_column("owner", no_wrap=True, min_width=32)
    table.add_column("name")
    table.add_column("created", no_wrap=True)
    for token in tokens:
        table.add_row(
            str(token.id),
            token.owner_id,
            token.name,
            token.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        )
    Console().print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(metavar="ID", help="The token id (`token list`).")],
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory of the embedded default.")
    ] = None,
) -> None:
    """Revoke an API token. Running API processes refuse it within 10 s (their token cache)."""
    _use_data_dir(data_dir)
    from service import crud
    from service.auth import TOKEN_CACHE_TTL_S
    from service.core.db import init_db
    from service.core.db import session_scope
    from service.models import ApiToken

    init_db()
    with session_scope() as session:
        # The operator may revoke any owner's token: look the owner up, then revoke as it.
        token = session.get(ApiToken, token_id)
        if token is None or not crud.revoke_token(
            session, owner_id=token.owner_id, token_id=token_id
        ):
            _fail(f"no API token with id {token_id}; `ffnas token list` shows the ids")
    typer.echo(
        f"revoked token {token_id}; running API processes refuse it within {TOKEN_CACHE_TTL_S:g} s"
    )


# ---------------------------------------------------------------------------------------
# ffnas worker
# ---------------------------------------------------------------------------------------


def _register_target(name: str) -> tuple[bool, str]:
    """Fingerprint and calibrate this machine, then create or refresh the target's row.

    Returns ``(serve, message)``. ``serve`` is False when the calibration GEMM ran below 90%
    of the target's rolling median (`workers.targets.check_calibration`): the row is marked
    unhealthy with the reason, which `GET /api/v1/targets` shows, and the worker refuses to
    start. A machine whose fingerprint fails still serves, with the failure recorded.
    """
    from service.core.db import session_scope
    from service.core.sqltypes import utcnow
    from service.models import Target
    from workers import targets
    from workers.sandbox import Sandbox

    fingerprint: dict[str, Any] = {}
    calibration: targets.Calibration | None = None
    problem: str | None = None
    try:
        # Probe in a spawned child that exits afterwards: CUDA must never start in the
        # forking Celery parent, and the parent need not keep torch loaded for a CPU probe.
        with Sandbox(preload=()) as sandbox:
            device = "cpu" if name == "cpu" else "cuda"
            found = sandbox.call(targets.probe, device, timeout_s=300.0)
        fingerprint = dict(found.fingerprint)
        calibration = found.calibration
    except Exception as exc:  # noqa: BLE001 - a worker without a fingerprint still serves
        problem = f"fingerprint failed: {type(exc).__name__}: {exc}"
        logger.warning("target %s: %s", name, problem)
    serve, message = True, problem or "no calibration"
    with session_scope() as session:
        row = session.get(Target, name) or Target(name=name)
        row.fingerprint = fingerprint
        if calibration is not None:
            row.calibration, serve, message = targets.record_calibration(
                row.calibration, calibration
            )
            logger.info("target %s: %s", name, message)
        row.healthy = serve and problem is None
        row.status_message = message if not serve else problem
        row.last_seen = utcnow()
        session.add(row)
        session.commit()
    return serve, message


def _celery_args(
    queues: str, *, pool: str, concurrency: int, name: str, loglevel: str
) -> list[str]:
    return [
        "worker",
        "-Q",
        queues,
        "-P",
        pool,
        "-c",
        str(concurrency),
        "-n",
        f"{name}@%h",
        "-l",
        loglevel,
        # Gossip, mingle and worker heartbeats are broadcasts the SQLAlchemy transport
        # cannot carry; trial liveness is our own heartbeat in the database.
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


def worker(
    target: Annotated[
        str, typer.Option(help="Target whose queue (eval.<target>) to serve.")
    ] = "cpu",
    concurrency: Annotated[int, typer.Option(min=1, help="Trials run at once.")] = 1,
    queues: Annotated[
        str | None, typer.Option(help="Comma-separated queues (default eval.<target>).")
    ] = None,
    controller: Annotated[
        bool, typer.Option("--controller", help="Run the controller (queue 'controller').")
    ] = False,
    pool: Annotated[str, typer.Option(help="Celery pool: prefork or solo.")] = "prefork",
    data_dir: Annotated[Path | None, typer.Option(help="Embedded default's directory.")] = None,
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "INFO",
) -> None:
    """Run an evaluation worker for a target, or (with --controller) the controller."""
    _use_data_dir(data_dir)
    if pool not in ("prefork", "solo"):
        _fail(f"`--pool` must be prefork or solo, but got {pool!r}")
    from service.core.config import get_settings
    from service.core.db import init_db

    settings = get_settings()
    init_db()
    if controller:
        # One controller process: its decisions about a job must not race each other.
        from service.tasks import app as celery_app

        args = _celery_args(
            "controller", pool="solo", concurrency=1, name="controller", loglevel=loglevel
        )
        args += ["-B", "-s", str(settings.data_dir / "beat-schedule")]
        celery_app.worker_main(args)
        return
    from workers.celery_app import eval_queue
    from workers.tasks import app as celery_app

    serve, message = _register_target(target)
    if not serve:
        typer.echo(f"error: refusing to serve target {target!r}: {message}", err=True)
        raise typer.Exit(3)
    celery_app.worker_main(
        _celery_args(
            queues or eval_queue(target),
            pool=pool,
            concurrency=concurrency,
            name=f"eval-{target}",
            loglevel=loglevel,
        )
    )


# ---------------------------------------------------------------------------------------
# ffnas up
# ---------------------------------------------------------------------------------------


def _die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """A pre-exec hook that makes a child get SIGTERM when `ffnas up` itself dies.

    The children run in their own sessions (so Ctrl-C reaches only `ffnas up`, which stops
    them in order). If `ffnas up` is killed outright (SIGKILL, OOM killer, a test's timeout)
    its `stop()` never runs, and the API and workers were left running with no parent: seen
    here as a stray `ffnas up` stack still serving 40 minutes after its test timed out.
    Linux's PR_SET_PDEATHSIG has the kernel signal the child when the parent dies.
    """
    if sys.platform != "linux":
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def hook() -> None:
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before the hook ran
            os._exit(1)

    return hook


class _Children:
    """The processes `ffnas up` runs, stopped together."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str]) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),
        )

    def dead(self) -> list[str]:
        return [name for name, p in self.procs.items() if p.poll() is not None]

    def stop(self, timeout: float = 15.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    del frame
    raise _Stop(signal.Signals(signum).name)


def _wait_healthy(url: str, children: _Children, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = children.dead()
        if dead:
            raise RuntimeError(f"{dead} exited during start-up; see {children.log_dir}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API did not answer at {url}/healthz within {timeout:g} s")


def _run_demo(url: str, token: str, children: _Children) -> str:
    """Submit the demo job, show its progress, return its final status."""
    import httpx
    import yaml

    if not DEMO_JOB.exists():
        raise RuntimeError(f"demo job {DEMO_JOB} is missing")
    spec = yaml.safe_load(DEMO_JOB.read_text())
    headers = {"Authorization": f"Bearer {token}"}
    response = httpx.post(f"{url}/api/v1/jobs", json=spec, headers=headers, timeout=30)
    if response.status_code >= 300:
        raise RuntimeError(f"the demo job was refused ({response.status_code}): {response.text}")
    job_id = response.json()["id"]
    typer.echo(f"demo job {job_id} submitted: {spec['name']} ({spec['n_trials']} trials)")
    last = ""
    while True:
        if children.dead():
            raise RuntimeError(f"{children.dead()} exited; see {children.log_dir}")
        body = httpx.get(f"{url}/api/v1/jobs/{job_id}", headers=headers, timeout=30).json()
        c = body["counts"]
        line = (
            f"  {body['status']}: {c['complete'] + c['pruned'] + c['failed']}/{body['n_trials']}"
            f" done ({c['running']} running, {c['failed']} failed)"
        )
        if line != last:
            typer.echo(line)
            last = line
        if body["status"] in _FINISHED:
            break
        time.sleep(0.5)
    pareto = httpx.get(f"{url}/api/v1/jobs/{job_id}/pareto", headers=headers, timeout=30).json()
    typer.echo(f"demo job {job_id} {body['status']}; front of {len(pareto['points'])} designs")
    typer.echo(f"  dashboard:  {url}/#/jobs/{job_id}")
    typer.echo(f"  terminal:   FFNAS_URL={url} FFNAS_TOKEN={token} ffnas pareto {job_id}")
    return str(body["status"])


def up(
    port: Annotated[int, typer.Option(min=1, max=65535, help="API port.")] = 8000,
    host: Annotated[str, typer.Option(help="Address the API binds to.")] = "127.0.0.1",
    data_dir: Annotated[
        Path | None, typer.Option(help="Directory for every file (default .ffnas).")
    ] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Submit examples/jobs/demo.yaml.")] = False,
    exit_after_demo: Annotated[
        bool, typer.Option("--exit-after-demo", help="With --demo: stop once the demo ends.")
    ] = False,
    target: Annotated[str, typer.Option(help="The local evaluation worker's target.")] = "cpu",
    concurrency: Annotated[
        int, typer.Option(min=1, help="Trials the local worker runs at once.")
    ] = 1,
) -> None:
    """Run the API, a controller and a local evaluation worker on the embedded default."""
    if exit_after_demo and not demo:
        _fail("`--exit-after-demo` needs `--demo`")
    _use_data_dir(data_dir)
    from service.auth import create_token
    from service.core.config import get_settings
    from service.core.db import init_db
    from service.core.db import session_scope

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per health poll otherwise
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["FFNAS_DATA_DIR"] = str(settings.data_dir)
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    init_db()
    with session_scope() as session:
        _, token = create_token(session, "ffnas up")
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown_host}:{port}"
    me = [sys.executable, "-m", "service.cli.main"]
    children = _Children(log_dir)
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    status = "completed"
    try:
        children.start(
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "service.main:app",
                "--host",
                host,
                "--port",
                str(port),
                "--workers",
                str(settings.api_workers),
                "--log-level",
                "warning",
            ],
        )
        children.start("controller", [*me, "worker", "--controller"])
        children.start(
            "worker",
            [*me, "worker", "--target", target, "--concurrency", str(concurrency)],
        )
        _wait_healthy(url, children)
        typer.echo(f"ffnas is up at {url}  (API docs {url}/docs, logs in {log_dir})")
        typer.echo(f"token: {token}")
        typer.echo(f"  export FFNAS_URL={url} FFNAS_TOKEN={token}")
        typer.echo(f"  optuna-dashboard {settings.database_url}")
        if demo:
            status = _run_demo(url, token, children)
            if exit_after_demo:
                return
        typer.echo("serving; Ctrl-C stops every process")
        while True:
            dead = children.dead()
            if dead:
                raise RuntimeError(f"{dead} exited; see {log_dir}")
            time.sleep(0.5)
    except _Stop as stop:
        typer.echo(f"{stop}: stopping", err=True)
    except RuntimeError as exc:
        typer.echo(f"error: {exc}", err=True)
        status = "failed"
    finally:
        children.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if status != "completed":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("up")(up)
    app.command("worker")(worker)
    app.add_typer(token_app, name="token")

"""A real ffnas service for the browser tests, and a headless Chromium driving it.

The service runs as it does for a user: the API (`uvicorn service.main:create_app`), the
controller worker (queue ``controller``) and an evaluation worker (queue ``eval.cpu``), each
its own process, on the embedded default (SQLite file + SQLAlchemy broker) in a temporary
data directory. Jobs use the ``analytic`` evaluator: a finished one, and a running one kept
in flight by the evaluator's ``delay_s`` setting.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

# 6 layers, five FFN kinds, 2:4 sparsity, two norm placements and two fusion spans: every
# column of the layer view has something to show. Tied per layer.
SPACE: dict[str, Any] = {
    "name": "dashboard",
    "dims": {
        "d_model": 256,
        "n_layers": 6,
        "n_heads": 4,
        "n_kv_heads": 2,
        "vocab": 256,
        "seq_len": 256,
    },
    "tie": "per_layer",
    "layer": {
        "kind": {"choices": ["dense", "moe", "lowrank", "blockdiag", "noop"]},
        "width": {"low": 256, "high": 1024, "step": 256},
        "moe": {"experts": [4, 8], "top_k": [1, 2], "width": [128, 256]},
        "lowrank": {"rank": [32, 64]},
        "blockdiag": {"blocks": [2, 4]},
        "sparsity": ["none", "2:4"],
        "norm": ["pre", "sandwich"],
    },
    "fusion": {"spans": [[1, 2], [3, 4]]},
}


def job_spec(
    name: str,
    *,
    n_trials: int,
    delay_s: float = 0.0,
    seed: int = 3,
    max_in_flight: int = 2,
    strategy: str = "tpe",
) -> dict[str, Any]:
    return {
        "name": name,
        "space": SPACE,
        "target": "cpu",
        "workload": {"phase": "prefill", "batch": 1, "seq": 256},
        "evaluator": {"name": "analytic", "settings": {"delay_s": delay_s} if delay_s else {}},
        # FLOPs per token stand in for capacity: maximised against parameters, the front
        # is a real trade-off with several points.
        "objectives": [{"name": "params"}, {"name": "flops", "direction": "maximize"}],
        "constraints": [{"name": "params", "max": 2_500_000}],
        "strategy": {"name": strategy, "seed": seed},
        "n_trials": n_trials,
        "max_in_flight": max_in_flight,
        "trial_time_limit_s": 60,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """A running service: its base URL, a token, and the processes behind it."""

    tmp: Path
    base_url: str = ""
    token: str = ""
    env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.base_url}/api/v1", headers=self.headers, timeout=30)

    def spawn(self, name: str, args: list[str]) -> None:
        log = (self.tmp / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            args, cwd=REPO, env=self.env, stdout=log, stderr=log, start_new_session=True
        )

    def logs(self) -> str:
        out = []
        for name in self.procs:
            path = self.tmp / f"{name}.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            out.append(f"--- {name} ---\n{text[-3000:]}")
        return "\n".join(out)

    def stop(self) -> None:
        # The data directory is thrown away: no need for Celery's warm shutdown, which waits
        # for the running trials (seconds with `delay_s`).
        for name, proc in self.procs.items():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM if name == "api" else signal.SIGKILL)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def wait_job(self, job_id: str, statuses: set[str], *, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.api() as client:
            while time.monotonic() < deadline:
                job = client.get(f"/jobs/{job_id}").json()
                if job["status"] in statuses:
                    return dict(job)
                time.sleep(0.2)
        pytest.fail(f"job {job_id} did not reach {statuses} in {timeout} s\n{self.logs()}")


def _start_service(tmp: Path) -> Service:
    service = Service(tmp=tmp)
    service.env = {
        **os.environ,
        "FFNAS_DATA_DIR": str(tmp),
        "FFNAS_DATABASE_URL": f"sqlite:///{tmp / 'ffnas.db'}",
        "FFNAS_BROKER_URL": f"sqla+sqlite:///{tmp / 'broker.db'}",
        "FFNAS_EVENT_POLL_INTERVAL_S": "0.2",
        "PYTHONUNBUFFERED": "1",
    }
    # Schema and token first, in a process of their own (this test process keeps its settings).
    made = subprocess.run(
        [
            sys.executable,
            "-c",
            "from service.core.db import init_db; init_db()\n"
            "from service.auth import create_token\n"
            "from service.core.db import session_scope\n"
            "with session_scope() as s: print(create_token(s, 'dashboard-tests')[1])",
        ],
        cwd=REPO,
        env=service.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if made.returncode != 0:
        pytest.fail(f"could not create the schema and a token:\n{made.stderr[-3000:]}")
    service.token = made.stdout.strip().splitlines()[-1]
    port = _free_port()
    service.base_url = f"http://127.0.0.1:{port}"
    celery = [sys.executable, "-m", "celery"]
    quiet = ["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"]
    service.spawn(
        "api",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "service.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
    )
    service.spawn(
        "controller",
        [
            *celery,
            "-A",
            "service.tasks",
            "worker",
            "-Q",
            "controller",
            "-P",
            "solo",
            "-n",
            "controller@%h",
            "-B",
            "-s",
            str(tmp / "beat-schedule"),
            *quiet,
        ],
    )
    service.spawn(
        "worker",
        [
            *celery,
            "-A",
            "workers.tasks",
            "worker",
            "-Q",
            "eval.cpu",
            "-P",
            "prefork",
            "-c",
            "2",
            "-n",
            "worker@%h",
            *quiet,
        ],
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{service.base_url}/healthz", timeout=2).status_code == 200:
                return service
        time.sleep(0.2)
    service.stop()
    pytest.fail(f"the API did not answer on {service.base_url}\n{service.logs()}")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    started = _start_service(tmp_path_factory.mktemp("ffnas-dashboard"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def finished_job(service: Service) -> dict[str, Any]:
    """A completed job of 24 trials (about 10 s on 2 cores)."""
    with service.api() as client:
        made = client.post("/jobs", json=job_spec("finished search", n_trials=24))
        assert made.status_code == 201, made.text
    return service.wait_job(made.json()["id"], {"completed"}, timeout=90)


@pytest.fixture(scope="module")
def running_job(service: Service, finished_job: dict[str, Any]) -> str:
    """A job kept running by the evaluator's `delay_s` (a trial per ~0.5 s per slot).

    Created by the first test that asks for it (the tests using it come last in the module,
    so the others run on an idle service); the module's teardown kills the workers.
    """
    del finished_job  # submitted after it, so the finished job's trials are not slowed down
    with service.api() as client:
        made = client.post(
            "/jobs",
            json=job_spec("running search", n_trials=300, delay_s=0.5, seed=5, strategy="random"),
        )
        assert made.status_code == 201, made.text
    job_id = str(made.json()["id"])
    service.wait_job(job_id, {"running"}, timeout=30)
    return job_id


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/services.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def requests_seen() -> list[str]:
    """Every URL any page of this module requested (checked by the offline test)."""
    return []


@pytest.fixture(scope="module")
def context(browser: Any, service: Service) -> Iterator[Any]:
    """One browser context for the module, so plotly.min.js (4.8 MB) is fetched once."""
    made = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def page(context: Any, requests_seen: list[str]) -> Iterator[Any]:
    """A new tab at 1280x800; fails the test on any uncaught error in the page."""
    opened = context.new_page()
    errors: list[str] = []
    opened.on("request", lambda request: requests_seen.append(request.url))
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.set_default_timeout(15_000)
    try:
        yield opened
    finally:
        opened.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS

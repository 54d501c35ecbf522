"""The HTTP client and the client commands against a real server (uvicorn on a free port)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml
from typer.testing import CliRunner

from service.cli.main import app as cli
from service.client import Client
from service.core.config import get_settings
from tests.service.conftest import ServiceEnv
from tests.service.conftest import new_owner
from tests.service.rows import add_job
from tests.service.rows import add_trial
from tests.service.rows import set_job_status
from tests.service.test_pareto import brute_front


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(service_env: ServiceEnv) -> Iterator[str]:
    from service.main import create_app

    port = _free_port()
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def owner_env(server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """FFNAS_URL/FFNAS_TOKEN of a new owner, as a user's shell would set them."""
    owner, headers = new_owner("cli")
    monkeypatch.setenv("FFNAS_URL", server)
    monkeypatch.setenv("FFNAS_TOKEN", headers["Authorization"].split(" ", 1)[1])
    get_settings.cache_clear()
    return owner


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def _finished_job(owner: str) -> str:
    job_id = add_job(owner, status="completed", name="done")
    for n, (params, flops) in enumerate([(3, 1), (1, 3), (2, 2), (3, 3), (1, 4)]):
        add_trial(job_id, n, values={"params": float(params), "flops": float(flops)})
    add_trial(job_id, 5, state="failed")
    return job_id


def test_status_and_pareto(owner_env: str) -> None:
    job_id = _finished_job(owner_env)
    text = run("status", job_id)
    assert text.exit_code == 0, text.output
    assert (
        "completed" in text.stdout and "6/10 done: 5 complete, 0 pruned, 1 failed" in text.stdout
    )
    as_json = json.loads(run("status", job_id, "--json").stdout)
    assert as_json["id"] == job_id and as_json["counts"]["failed"] == 1

    front = json.loads(run("pareto", job_id, "--json").stdout)
    assert [p["number"] for p in front["points"]] == [0, 1, 2]
    table = run("pareto", job_id)
    assert (
        table.exit_code == 0 and "Pareto front" in table.stdout and "hypervolume" in table.stdout
    )


def test_watch_follows_the_stream_until_the_job_ends(owner_env: str) -> None:
    job_id = add_job(owner_env, status="running")
    points = [(3.0, 1.0), (1.0, 3.0), (2.0, 2.0), (3.0, 3.0), (0.5, 0.5)]

    def producer() -> None:
        for n, (params, flops) in enumerate(points):
            time.sleep(0.1)
            add_trial(job_id, n, values={"params": params, "flops": flops})
        add_trial(job_id, len(points), state="pruned")
        time.sleep(0.1)
        set_job_status(job_id, "completed")

    thread = threading.Thread(target=producer)
    thread.start()
    result = run("watch", job_id)
    thread.join()
    assert result.exit_code == 0, result.output
    expected_front = len(brute_front(points))  # (0.5, 0.5) dominates every other point
    assert f"front size {expected_front}" in result.stdout
    assert "6/10 done: 5 complete, 1 pruned, 0 failed" in result.stdout


def test_submit_prints_id_and_wait_blocks_until_done(
    owner_env: str, tmp_path: Path, job_spec: dict[str, Any]
) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job_spec))
    submitted = run("submit", str(path))
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.stdout.strip()
    with Client() as client:
        assert client.get_job(job_id)["status"] == "queued"

    # --wait returns once the job is finished (here finished by hand: no controller runs).
    done: list[str] = []

    def finisher() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with Client() as client:
                jobs = client.list_jobs(status="queued")["data"]
            waiting = [j["id"] for j in jobs if j["id"] != job_id]
            if waiting:
                time.sleep(0.3)  # let `submit --wait` open its stream first
                set_job_status(waiting[0], "completed")
                done.append(waiting[0])
                return
            time.sleep(0.05)

    thread = threading.Thread(target=finisher)
    thread.start()
    waited = run("submit", str(path), "--wait", "--json")
    thread.join()
    assert waited.exit_code == 0, waited.output
    final = json.loads(waited.stdout)
    assert final["status"] == "completed" and final["id"] == done[0]


def test_bad_input_exits_2_with_the_servers_message(
    owner_env: str, tmp_path: Path, job_spec: dict[str, Any]
) -> None:
    path = tmp_path / "job.json"
    path.write_text(json.dumps({**job_spec, "n_trials": 10**9}))
    result = run("submit", str(path))
    assert result.exit_code == 2
    assert "n_trials: Value error, `n_trials <= 100000` must hold" in result.stderr

    missing = run("status", "0" * 32)
    assert missing.exit_code == 2 and "not found" in missing.stderr
    assert run("submit", str(tmp_path / "absent.yaml")).exit_code == 2
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    not_a_spec = run("submit", str(tmp_path / "list.yaml"))
    assert not_a_spec.exit_code == 2 and "must hold a mapping" in not_a_spec.stderr


def test_missing_token_and_unreachable_server(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FFNAS_URL", server)
    monkeypatch.delenv("FFNAS_TOKEN", raising=False)
    get_settings.cache_clear()
    no_token = run("status", "abc")
    assert no_token.exit_code == 2 and "missing bearer token" in no_token.stderr

    monkeypatch.setenv("FFNAS_URL", f"http://127.0.0.1:{_free_port()}")
    get_settings.cache_clear()
    down = run("status", "abc")
    assert down.exit_code == 1 and "cannot reach the ffnas API" in down.stderr


def test_export_writes_the_file_and_reports_lossy_knobs(owner_env: str, tmp_path: Path) -> None:
    job_id = _finished_job(owner_env)
    result = run("export", job_id, "--trial", "1", "--format", "decilm", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    written = tmp_path / "config.json"
    assert f"wrote {written}" in result.stderr
    assert "block_configs" in json.loads(written.read_text())
    assert "lossy: layer 0: width=128" in result.stderr
    native = run("export", job_id, "--trial", "1")
    assert json.loads(native.stdout)["layers"][0]["width"] == 128
    bad = run("export", job_id, "--trial", "1", "--format", "onnx")
    assert bad.exit_code == 2 and "format" in bad.stderr

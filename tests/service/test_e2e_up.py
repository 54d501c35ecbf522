"""`ffnas up` as a user runs it: real child processes on the embedded default."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FFNAS_")}
    env["FFNAS_BROKER_POLLING_INTERVAL_S"] = "0.005"
    return env


@pytest.mark.slow
def test_up_demo_runs_to_completion_and_prints_where_the_front_is(tmp_path: Path) -> None:
    port = _free_port()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli.main",
            "up",
            "--demo",
            "--exit-after-demo",
            "--data-dir",
            str(tmp_path),
            "--port",
            str(port),
        ],
        cwd=REPO,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        # The demo proxy-trains 16 designs on the CPU: ~2.5 min on 2 cores (issue 7).
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert f"ffnas is up at http://127.0.0.1:{port}" in out
    assert "completed: 16/16 done" in out
    assert f"http://127.0.0.1:{port}/#/jobs/" in out and "ffnas pareto " in out
    assert (tmp_path / "ffnas.db").exists() and (tmp_path / "broker.db").exists()
    assert {p.name for p in (tmp_path / "logs").iterdir()} == {
        "api.log",
        "controller.log",
        "worker.log",
    }


def test_up_stops_every_child_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.cli.main",
            "up",
            "--data-dir",
            str(tmp_path),
            "--port",
            str(port),
        ],
        cwd=REPO,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "serving; Ctrl-C" in line:
            break
    assert any(line.startswith("token: ffnas_") for line in lines), lines
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
    pids = [int(p) for p in children.stdout.split()]
    assert len(pids) == 3
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0  # a requested stop is a clean exit
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_token_create_prints_a_token(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli.main",
            "token",
            "create",
            "alice",
            "--data-dir",
            str(tmp_path),
        ],
        cwd=REPO,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("ffnas_") and len(done.stdout.strip()) > 30


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited, its reaper (init here) just lags.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def test_children_exit_when_up_is_killed_outright(tmp_path: Path) -> None:
    # SIGKILL gives `ffnas up` no chance to stop its children; the kernel's parent-death
    # signal must (a test timeout once left a whole stack serving with no parent).
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli.main", "up", "--data-dir", str(tmp_path)]
        + ["--port", str(port)],
        cwd=REPO,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "serving; Ctrl-C" in proc.stdout.readline():
            break
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
    pids = [int(p) for p in children.stdout.split()]
    assert len(pids) == 3
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.2)
    survivors = [pid for pid in pids if _alive(pid)]
    for pid in survivors:  # leave nothing behind, even when failing
        os.killpg(pid, signal.SIGKILL)
    assert not survivors, f"children outlived a SIGKILLed `ffnas up`: {survivors}"

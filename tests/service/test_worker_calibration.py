"""`ffnas worker` calibrates at start and refuses to serve a target it is too slow for.

Issue 7, item 1: below 90% of the target's rolling median the worker must refuse, say so in
its log, and the targets API must show why. The history is seeded with a median far above
what any CPU here reaches, so the real calibration GEMM must come out below it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa


def _run_worker(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FFNAS_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "service.cli.main", "worker", "--target", "cpu", "--pool", "solo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def _init(data_dir: Path) -> sa.Engine:
    env = {**os.environ, "FFNAS_DATA_DIR": str(data_dir)}
    subprocess.run(
        [sys.executable, "-c", "from service.core.db import init_db; init_db()"],
        env=env,
        check=True,
        timeout=120,
    )
    return sa.create_engine(f"sqlite:///{data_dir / 'ffnas.db'}")


def test_worker_refuses_a_target_it_is_too_slow_for(tmp_path: Path) -> None:
    engine = _init(tmp_path)
    impossible = {"history": [1e9, 1e9, 1e9]}  # 1 PFLOP/s of fp32 on a CPU: never reached
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ffnas_targets (name, fingerprint, calibration, healthy, last_seen)"
                " VALUES ('cpu', '{}', :cal, 1, CURRENT_TIMESTAMP)"
            ),
            {"cal": json.dumps(impossible)},
        )
    result = _run_worker(tmp_path)
    assert result.returncode == 3, result.stderr[-2000:]
    assert "refusing to serve target 'cpu'" in result.stderr
    assert "rolling median" in result.stderr
    with engine.connect() as conn:
        healthy, message, calibration = conn.execute(
            sa.text("SELECT healthy, status_message, calibration FROM ffnas_targets")
        ).one()
    assert not healthy
    assert "rolling median" in message
    stored = json.loads(calibration)
    # The refused run stays out of the history, so one slow start cannot drag the median down.
    assert stored["history"] == impossible["history"]
    assert 0 < stored["gflops"] < 1e9

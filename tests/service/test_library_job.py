"""A library job (strategy "exact"): the controller records the exact front as the
complete trials of a finished job. Checked against brute force over every design."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service import controller
from service.core.db import session_scope
from service.crud import create_job
from service.models import Job
from service.models import Trial
from service.spec import JobSpec
from tests.service.stack import Stack
from tests.service.stack import sqlite_stack

DIMS = {"d_model": 64, "n_layers": 3, "n_heads": 4, "n_kv_heads": 2, "vocab": 256, "seq_len": 256}


@pytest.fixture()
def stack(tmp_path: Path) -> Iterator[Stack]:
    with sqlite_stack(tmp_path) as s:
        yield s


def _library(seed: int, *, native: bool) -> dict[str, Any]:
    rng = random.Random(seed)
    layers = []
    for _ in range(3):
        variants = {}
        for width in (64, 128, 192, 256):
            variants[f"ffn {width}"] = {
                "stats": {"runtime_ms": round(width * rng.uniform(0.8, 1.2), 3)},
                "metrics": {"kl_div": round(rng.uniform(0, 1) / width * 100, 4)},
                **({"design": {"kind": "dense", "width": width}} if native else {}),
            }
        layers.append(variants)
    if native:
        return {
            "format": "ffnas-library/v1",
            "dims": DIMS,
            "layers": [{"variants": v} for v in layers],
        }
    return {f"layer_{i}": v for i, v in enumerate(layers)}


def _brute(library: dict[str, Any]) -> set[tuple[float, float]]:
    layers = (
        [layer["variants"] for layer in library["layers"]]
        if "layers" in library
        else list(library.values())
    )
    points = set()
    for combo in itertools.product(*[list(v.values()) for v in layers]):
        points.add(
            (
                round(sum(v["stats"]["runtime_ms"] for v in combo), 9),
                round(sum(v["metrics"]["kl_div"] for v in combo), 9),
            )
        )
    return {p for p in points if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points)}


def _run(library: dict[str, Any], n_trials: int = 1000) -> tuple[Job, list[Trial]]:
    spec = JobSpec.model_validate(
        {
            "name": "lib",
            "library": library,
            "strategy": {"name": "exact"},
            "objectives": [{"name": "kl_div"}, {"name": "latency_ms"}],
            "constraints": [{"name": "latency_ms", "max": 500}],
            "n_trials": n_trials,
        }
    )
    with session_scope() as session:
        job_id = create_job(session=session, spec=spec, owner_id="o" * 32).id
    controller.start_job(job_id)
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        trials = list(session.query(Trial).filter(Trial.job_id == job_id).all())
        session.expunge_all()
    return job, trials


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_library_job_records_the_exact_front(stack: Stack, seed: int) -> None:
    library = _library(seed, native=False)
    job, trials = _run(library)
    assert job.status == "completed", job.error
    got = {(round(t.values["latency_ms"], 9), round(t.values["kl_div"], 9)) for t in trials}
    assert got == _brute(library)
    assert all(t.state == "complete" and t.attempt == 1 for t in trials)
    for t in trials:
        assert t.feasible == (t.values["latency_ms"] <= 500)
        assert len(t.design["choices"]) == 3  # Puzzle layout: no designs, choices kept


def test_native_library_points_carry_designs(stack: Stack) -> None:
    library = _library(5, native=True)
    job, trials = _run(library)
    assert job.status == "completed"
    for t in trials:
        # The design's layers name the chosen variants; their summed runtime is the value.
        chosen = [
            library["layers"][i]["variants"][f"ffn {layer['width']}"]
            for i, layer in enumerate(t.design["layers"])
        ]
        assert sum(v["stats"]["runtime_ms"] for v in chosen) == pytest.approx(
            t.values["latency_ms"]
        )
        assert t.design["dims"] == {**DIMS, "dtype": "bf16", "tie_embeddings": False}


def test_front_larger_than_n_trials_is_thinned_evenly(stack: Stack) -> None:
    library = _library(0, native=False)
    full = sorted(_brute(library))
    job, trials = _run(library, n_trials=3)
    got = sorted((round(t.values["latency_ms"], 9), round(t.values["kl_div"], 9)) for t in trials)
    assert len(got) == 3 and got[0] == full[0] and got[-1] == full[-1]

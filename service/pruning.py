"""Early stopping for two-objective (quality vs latency) jobs: the ``dominated`` pruner.

Optuna refuses intermediate values and pruning in multi-objective studies (ecosystem.md §2),
yet quality-vs-latency searches are always two-objective. A trial's latency is known before
it trains, which makes a simple, safe rule possible:

    stop trial T at checkpoint s when some *completed* trial C with
    ``latency(C) <= latency(T)`` had, at the same step s, a quality better than T's by more
    than the seed noise: ``value_T(s) > value_C(s) + noise``  (lower is better).

C is at least as fast and was ahead at the same point of training, so T is (up to seed noise)
dominated: it will not reach the front unless its learning curve crosses C's later, which the
noise margin and ``min_step`` (no decision before that step) guard against. ``noise`` is in
the quality's units (bits per byte); `benchmarks/proxy_fidelity.py` measures the seed std
and `benchmarks/early_stopping.py` the tokens saved and the front kept at several margins.

Job settings: ``strategy.options.pruner_settings = {"noise": 0.05, "min_step": 1}``.

The running trial's latency is read from the shared latency table (`LatencyRecord`): the
worker measured every op of the design before training, and `workers.latency_ops` gives
the same op signatures without torch. If any op is missing (e.g. the job uses an in-memory
latency cache) there is nothing to compare with and the trial is never pruned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic import ConfigDict
from sqlalchemy.orm import object_session
from sqlmodel import Session
from sqlmodel import col
from sqlmodel import select

from search_space.design import FFNDesign
from service.models import Job
from service.models import LatencyRecord
from service.models import Trial
from service.spec import JobSpec
from service.stored_spec import load_spec
from workers.latency_ops import default_backend_dtype
from workers.latency_ops import design_ops

__all__ = [
    "DEFAULT_MIN_STEP",
    "DEFAULT_NOISE",
    "Curve",
    "decide",
    "should_prune",
    "should_stop",
    "trial_latency_ms",
    "value_at",
]

# A quarter of the seed std of the final validation bpb (0.20 bpb, benchmarks/
# proxy_fidelity.py: 3 seeds x 4 designs, 192 steps of 16 x 64 bytes). On the CPU proxy job
# of benchmarks/early_stopping.py (24 trials) this margin spent 2.0x fewer tokens with a front
# hypervolume 0.2% below the unpruned one; a full std (0.2) saved only 1.33x, no margin 2.4x.
# Jobs with other budgets or models should measure their own noise.
DEFAULT_NOISE = 0.05
DEFAULT_MIN_STEP = 1


class Curve(BaseModel):
    """A trial's latency and its intermediate values ``(step, value)``, lower is better."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latency_ms: float
    points: tuple[tuple[int, float], ...]


def value_at(points: Sequence[tuple[int, float]], step: int) -> float | None:
    """The value at ``step``: exact, else linear between the checkpoints around it; None
    outside the curve's range (never extrapolated)."""
    ordered = sorted(points)
    for i, (s, v) in enumerate(ordered):
        if s == step:
            return v
        if s > step:
            if i == 0:
                return None
            s0, v0 = ordered[i - 1]
            return v0 + (v - v0) * (step - s0) / (s - s0)
    return None


def should_stop(
    current: Curve,
    completed: Sequence[Curve],
    *,
    noise: float = DEFAULT_NOISE,
    min_step: int = DEFAULT_MIN_STEP,
) -> bool:
    """True when ``current`` is behind, beyond ``noise``, a completed trial at least as fast,
    at its latest step (see the module docstring)."""
    if noise < 0:
        raise ValueError(f"`noise >= 0` must hold, but got noise={noise}")
    if not current.points:
        return False
    step, value = max(current.points)
    if step < min_step or not math.isfinite(value):
        return False  # a NaN loss fails the trial on the worker; the pruner does not guess
    for other in completed:
        if other.latency_ms > current.latency_ms:
            continue
        reference = value_at(other.points, step)
        if reference is not None and value > reference + noise:
            return True
    return False


def _quality_sign(spec: JobSpec) -> float:
    for objective in spec.objectives:
        if objective.name != "latency_ms":
            return 1.0 if objective.direction == "minimize" else -1.0
    return 1.0


def _points(raw: Sequence[Sequence[float]], sign: float) -> tuple[tuple[int, float], ...]:
    return tuple((int(s), sign * float(v)) for s, v in raw)


def trial_latency_ms(session: Session, trial: Trial, spec: JobSpec) -> float | None:
    """The trial's latency: from its row when finished, else summed from the latency table."""
    if trial.values and "latency_ms" in trial.values:
        return float(trial.values["latency_ms"])
    if trial.latency_p50_ms is not None:
        return float(trial.latency_p50_ms)
    design = FFNDesign.model_validate(trial.design)
    settings: dict[str, Any] = spec.evaluator.settings
    backend, dtype = default_backend_dtype(spec.target, design.dims.dtype)
    ops = design_ops(
        design,
        spec.workload,
        dtype=settings.get("dtype") or dtype,
        backend=settings.get("backend") or backend,
    )
    wanted = ops.signatures()
    rows = session.exec(
        select(LatencyRecord).where(
            col(LatencyRecord.target) == spec.target, col(LatencyRecord.signature).in_(wanted)
        )
    ).all()
    p50 = {row.signature: row.p50_ms for row in rows}
    if any(sig not in p50 for sig in wanted):
        return None
    return (
        sum(p50[u.signature] for u in ops.units)
        + ops.attention_count * p50[ops.attention]
        + p50[ops.embed_head]
    )


def should_prune(
    *,
    trial: Trial,
    steps: Sequence[tuple[int, float]],
    finished: Sequence[Trial],
    spec: JobSpec,
    session: Session | None = None,
) -> bool:
    """The controller's entry point: ``trial`` (running) against the job's completed trials."""
    session = session or object_session(trial)  # type: ignore[assignment]
    if session is None:
        raise ValueError("should_prune needs a session: pass one, or a trial attached to one")
    options = dict(spec.strategy.options.get("pruner_settings", {}))
    noise = float(options.get("noise", DEFAULT_NOISE))
    min_step = int(options.get("min_step", DEFAULT_MIN_STEP))
    sign = _quality_sign(spec)
    latency = trial_latency_ms(session, trial, spec)
    if latency is None:
        return False
    current = Curve(latency_ms=latency, points=_points(steps, sign))
    completed = []
    for other in finished:
        if other.id == trial.id or other.state != "complete" or not other.intermediate:
            continue
        other_latency = (other.values or {}).get("latency_ms")
        if other_latency is None:
            continue
        completed.append(
            Curve(latency_ms=float(other_latency), points=_points(other.intermediate, sign))
        )
    return should_stop(current, completed, noise=noise, min_step=min_step)


def decide(session: Session, trial_id: str) -> bool:
    """Should running trial ``trial_id`` stop? Reads its job's completed trials."""
    trial = session.get(Trial, trial_id)
    if trial is None or trial.state != "running":
        return False
    job = session.get(Job, trial.job_id)
    if job is None:
        return False
    spec = load_spec(job.spec)
    finished = session.exec(
        select(Trial).where(col(Trial.job_id) == job.id, col(Trial.state) == "complete")
    ).all()
    steps = [(int(s), float(v)) for s, v in trial.intermediate]
    return should_prune(trial=trial, steps=steps, finished=finished, spec=spec, session=session)

"""The two-objective `dominated` pruner: the pure rule, and decisions read from the DB."""

from __future__ import annotations

import pytest

from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims
from search_space.workload import Workload
from service.core.db import session_scope
from service.models import Job
from service.models import LatencyRecord
from service.models import Trial
from service.pruning import Curve
from service.pruning import decide
from service.pruning import should_stop
from service.pruning import trial_latency_ms
from service.pruning import value_at
from service.spec import JobSpec
from tests.service.conftest import SPACE
from tests.service.conftest import ServiceEnv
from workers.latency_ops import design_ops


def curve(latency: float, *points: tuple[int, float]) -> Curve:
    return Curve(latency_ms=latency, points=tuple(points))


def test_value_at_exact_interpolated_and_out_of_range() -> None:
    points = [(10, 4.0), (30, 3.0)]
    assert value_at(points, 10) == 4.0
    assert value_at(points, 20) == pytest.approx(3.5)
    assert value_at(points, 5) is None
    assert value_at(points, 40) is None


def test_stops_behind_a_faster_completed_trial_beyond_noise() -> None:
    done = [curve(1.0, (10, 3.0), (20, 2.5))]
    assert should_stop(curve(2.0, (10, 3.2)), done, noise=0.1)
    # Within the noise margin: keep going.
    assert not should_stop(curve(2.0, (10, 3.05)), done, noise=0.1)


def test_never_stops_for_a_slower_completed_trial() -> None:
    done = [curve(3.0, (10, 2.0))]
    assert not should_stop(curve(2.0, (10, 3.5)), done, noise=0.1)


def test_equal_latency_counts_as_at_least_as_fast() -> None:
    assert should_stop(curve(2.0, (10, 3.5)), [curve(2.0, (10, 3.0))], noise=0.1)


def test_compares_at_the_latest_step_only() -> None:
    # Behind at step 10, caught up by step 20: the latest step decides.
    done = [curve(1.0, (10, 3.0), (20, 2.5))]
    assert not should_stop(curve(2.0, (10, 3.5), (20, 2.5)), done, noise=0.1)


def test_respects_min_step_and_needs_overlapping_steps() -> None:
    done = [curve(1.0, (10, 3.0), (20, 2.5))]
    assert not should_stop(curve(2.0, (10, 3.5)), done, noise=0.1, min_step=20)
    assert not should_stop(curve(2.0, (40, 3.5)), done, noise=0.1)  # beyond its curve
    assert not should_stop(curve(2.0), done, noise=0.1)
    assert not should_stop(curve(2.0, (10, float("nan"))), done, noise=0.1)


def test_rejects_negative_noise() -> None:
    with pytest.raises(ValueError, match="noise >= 0"):
        should_stop(curve(1.0, (1, 1.0)), [], noise=-0.1)


# --- decisions from the database -------------------------------------------------------------
DIMS = ModelDims(**SPACE["dims"])  # type: ignore[arg-type]
WORKLOAD = Workload(phase="decode", batch=1, seq=256)


def _design(width: int) -> FFNDesign:
    return FFNDesign(dims=DIMS, layers=tuple(LayerFFN(width=width) for _ in range(4)))


def _spec(noise: float) -> JobSpec:
    return JobSpec(
        name="dominated",
        space=SPACE,
        workload=WORKLOAD,
        evaluator={"name": "proxy", "settings": {"tokens": 4096, "cache": "db"}},
        objectives=[{"name": "bpb"}, {"name": "latency_ms"}],
        strategy={
            "name": "random",
            "pruner": "dominated",
            "options": {"pruner_settings": {"noise": noise}},
        },
        n_trials=10,
    )


def _store_latency(session: object, design: FFNDesign, per_op_ms: float) -> float:
    ops = design_ops(design, WORKLOAD, dtype="fp32", backend="torch")
    for sig in ops.signatures():
        session.add(  # type: ignore[attr-defined]
            LatencyRecord(
                target="cpu",
                signature=sig,
                p20_ms=per_op_ms,
                p50_ms=per_op_ms,
                p80_ms=per_op_ms,
                samples=10,
                method="test",
            )
        )
    session.commit()  # type: ignore[attr-defined]
    distinct = {u.signature for u in ops.units}
    assert len(distinct) == 1  # every layer alike: total = units + attention + head
    return per_op_ms * (len(ops.units) + ops.attention_count + 1)


def test_decide_reads_latency_table_and_completed_trials(service_env: ServiceEnv) -> None:
    spec = _spec(noise=0.1)
    fast, slow = _design(64), _design(256)
    with session_scope() as session:
        job = Job(
            owner_id="o",
            name="j",
            spec=spec.model_dump(mode="json"),
            target="cpu",
            evaluator="proxy",
            strategy="random",
            n_trials=10,
            status="running",
        )
        session.add(job)
        session.commit()
        done = Trial(
            job_id=job.id,
            number=0,
            design=fast.model_dump(mode="json"),
            state="complete",
            values={"bpb": 2.4, "latency_ms": 1.0},
            intermediate=[[8, 3.0], [16, 2.4]],
        )
        running = Trial(
            job_id=job.id,
            number=1,
            design=slow.model_dump(mode="json"),
            state="running",
            attempt=1,
            intermediate=[[8, 3.3]],
        )
        session.add_all([done, running])
        session.commit()
        running_id = running.id
        # No latency rows yet: the running trial's latency is unknown, so never pruned.
        assert trial_latency_ms(session, running, spec) is None
        assert decide(session, running_id) is False
        # Rows for its ops: 0.5 ms each -> (4 units + 4 attention + head) * 0.5 = 4.5 ms.
        total = _store_latency(session, slow, 0.5)
        assert trial_latency_ms(session, running, spec) == pytest.approx(total)
        assert decide(session, running_id) is True  # 3.3 > 3.0 + 0.1 at step 8, 1.0 <= 4.5
        # Within the noise: not pruned.
        running.intermediate = [[8, 3.05]]
        session.add(running)
        session.commit()
        assert decide(session, running_id) is False


def test_decide_ignores_completed_trials_that_are_slower(service_env: ServiceEnv) -> None:
    spec = _spec(noise=0.0)
    with session_scope() as session:
        job = Job(
            owner_id="o",
            name="j",
            spec=spec.model_dump(mode="json"),
            target="cpu",
            evaluator="proxy",
            strategy="random",
            n_trials=10,
            status="running",
        )
        session.add(job)
        session.commit()
        slow_done = Trial(
            job_id=job.id,
            number=0,
            design=_design(256).model_dump(mode="json"),
            state="complete",
            values={"bpb": 2.0, "latency_ms": 100.0},
            intermediate=[[8, 2.0]],
        )
        running = Trial(
            job_id=job.id,
            number=1,
            design=_design(64).model_dump(mode="json"),
            state="running",
            attempt=1,
            intermediate=[[8, 3.0]],
        )
        session.add_all([slow_done, running])
        session.commit()
        _store_latency(session, _design(64), 0.1)
        assert decide(session, running.id) is False

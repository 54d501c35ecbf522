"""The spawned evaluation child: failures end as reasons, the worker (this process) lives on.

One sandbox serves the whole module, as one worker serves trial after trial: a design that
cannot fit (memory cap), then one that can; a child killed by a signal (retried once in a
fresh child); a trial past its time limit (child killed and replaced, next trial runs).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims
from search_space.workload import Workload
from tests.workers import sandbox_helpers as helpers
from workers.evaluators.base import EvalFailure
from workers.evaluators.base import TrialContext
from workers.execute import execute
from workers.sandbox import Sandbox
from workers.sandbox import classify_exception
from workers.sandbox import configure_default_sandbox
from workers.sandbox import default_sandbox
from workers.targets import probe

# torch + the evaluators take ~0.7 GB of address space; 3 GiB leaves room for small designs
# and refuses any single 4 GiB weight.
MEMORY_CAP = 3 << 30

SMALL = FFNDesign(
    dims=ModelDims(
        d_model=32, n_layers=2, n_heads=2, n_kv_heads=1, vocab=256, seq_len=64, dtype="fp32"
    ),
    layers=(LayerFFN(width=64), LayerFFN(width=64)),
)
# One layer whose up projection alone is 262144 x 4096 fp32 = 4 GiB.
HUGE = FFNDesign(
    dims=ModelDims(
        d_model=4096, n_layers=1, n_heads=32, n_kv_heads=8, vocab=256, seq_len=64, dtype="fp32"
    ),
    layers=(LayerFFN(width=262_144),),
)


def ctx(design: FFNDesign, settings: dict[str, object], **kw: object) -> TrialContext:
    return TrialContext(
        trial_id="t",
        job_id="j",
        attempt=1,
        design=design,
        workload=Workload(phase="decode", batch=1, seq=32),
        target="cpu",
        objectives=("bpb", "latency_ms"),
        settings=settings,
        time_limit_s=120,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(memory_limit_bytes=MEMORY_CAP) as box:
        yield box


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_design_that_cannot_fit_then_one_that_can(sandbox: Sandbox) -> None:
    settings = {"cache": "memory"}
    with pytest.raises(EvalFailure) as info:
        sandbox.run(ctx(HUGE, settings), evaluator="latency")
    assert info.value.reason == "oom" and not info.value.retry
    assert "allocate" in info.value.message
    child = sandbox.pid
    assert child is not None and child != os.getpid()
    outcome = sandbox.run(ctx(SMALL, settings), evaluator="latency")
    assert outcome.values["latency_ms"] > 0
    assert sandbox.pid == child  # an OOM does not cost the child


def test_known_failures_keep_the_child(sandbox: Sandbox) -> None:
    child = sandbox.call(helpers.pid, timeout_s=30)
    with pytest.raises(EvalFailure) as info:
        sandbox.call(helpers.fail_with, "nan", timeout_s=30)
    assert info.value.reason == "nan" and "step 3" in info.value.message
    with pytest.raises(EvalFailure) as info:
        sandbox.call(helpers.fail_with, "value", timeout_s=30)
    assert info.value.reason == "error" and "width > 0" in info.value.message
    assert sandbox.call(helpers.pid, timeout_s=30) == child


def test_child_killed_by_a_signal_is_retried_once_in_a_fresh_child(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    before = sandbox.call(helpers.pid, timeout_s=30)
    started = sandbox.children_started
    result = sandbox.call(helpers.crash_once, str(tmp_path / "marker"), timeout_s=60)
    assert result.startswith("ok in ")
    assert sandbox.children_started == started + 1
    assert not _alive(before) and sandbox.pid != before


def test_a_child_that_keeps_crashing_fails_with_reason_crash(sandbox: Sandbox) -> None:
    started = sandbox.children_started
    with pytest.raises(EvalFailure) as info:
        sandbox.call(helpers.segfault, timeout_s=60)
    assert info.value.reason == "crash" and "SIGSEGV" in info.value.message
    assert sandbox.children_started == started + 1  # the one retry in a fresh child
    assert sandbox.call(helpers.sleep, 0.0, timeout_s=60) == "woke"  # the worker goes on
    assert sandbox.children_started == started + 2


def test_a_trial_past_its_time_limit_is_killed_and_the_next_runs(sandbox: Sandbox) -> None:
    victim = sandbox.call(helpers.pid, timeout_s=30)
    with pytest.raises(EvalFailure) as info:
        sandbox.call(helpers.sleep, 60.0, timeout_s=1.0)
    assert info.value.reason == "timeout" and str(victim) in info.value.message
    assert not _alive(victim)
    assert sandbox.call(helpers.sleep, 0.0, timeout_s=60) == "woke"
    assert sandbox.pid != victim


def test_an_exception_while_waiting_kills_the_busy_child(sandbox: Sandbox) -> None:
    # Celery's soft time limit raises SoftTimeLimitExceeded into the task while it waits on
    # the child; the busy child must not answer the next trial with this trial's result.
    class SoftLimit(Exception):
        pass

    def raise_soft_limit(signum: int, frame: object) -> None:
        raise SoftLimit

    victim = sandbox.call(helpers.pid, timeout_s=30)
    previous = signal.signal(signal.SIGALRM, raise_soft_limit)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(SoftLimit):
            sandbox.call(helpers.sleep, 30.0, timeout_s=60)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert not _alive(victim)
    assert sandbox.call(helpers.sleep, 0.0, timeout_s=60) == "woke"


def test_the_reporter_runs_in_the_child_and_prunes(sandbox: Sandbox, tmp_path: Path) -> None:
    log = tmp_path / "report.log"
    settings = {
        "cache": "memory",
        "tokens": 6 * 2 * 32,
        "batch_size": 2,
        "seq_len": 32,
        "checkpoints": 3,
        "eval_tokens": 256,
        "max_corpus_bytes": 1 << 17,
        "threads": 1,
    }
    reporter = helpers.FileReporter(str(log), stop_at=2)
    outcome = sandbox.run(ctx(SMALL, settings, reporter=reporter), evaluator="proxy")
    lines = [line.split() for line in log.read_text().splitlines()]
    assert [int(step) for _, step, _ in lines] == [2]  # stopped at the first checkpoint
    assert int(lines[0][0]) == sandbox.pid != os.getpid()
    assert outcome.pruned and outcome.values["bpb"] == pytest.approx(float(lines[0][2]))
    assert outcome.info["proxy_steps"] == 2


def test_worker_probe_runs_in_the_child(sandbox: Sandbox) -> None:
    result = sandbox.call(probe, "cpu", timeout_s=120)
    assert result.name == "cpu" and result.fingerprint["kind"] == "cpu"
    assert result.calibration.gflops > 0


def test_execute_runs_torch_evaluators_in_the_default_sandbox() -> None:
    configure_default_sandbox()
    try:
        outcome = execute(ctx(SMALL, {"cache": "memory"}), evaluator="latency")
        assert outcome.values["latency_ms"] > 0
        child = default_sandbox().pid
        assert child is not None and child != os.getpid()
        # Pure-Python evaluators stay in-process: no new child for them.
        started = default_sandbox().children_started
        assert execute(ctx(SMALL, {}), evaluator="analytic").values["params"] > 0
        assert default_sandbox().children_started == started
    finally:
        configure_default_sandbox()


def test_a_daemonic_worker_process_can_start_the_child() -> None:
    # Celery's prefork pool installs its (daemonic) worker as multiprocessing's current
    # process; multiprocessing would refuse to start children from it.
    # Its authkey is billiard's AuthenticationString, which refuses to pickle for spawn.
    import multiprocessing

    from billiard.process import AuthenticationString as BilliardKey

    config = multiprocessing.current_process()._config  # type: ignore[attr-defined]
    authkey = config["authkey"]
    config["daemon"] = True
    config["authkey"] = BilliardKey(bytes(authkey))
    try:
        with Sandbox(preload=()) as box:
            assert box.call(helpers.pid, timeout_s=60) != os.getpid()
        assert config["daemon"] is True and type(config["authkey"]) is BilliardKey
    finally:
        config.pop("daemon")
        config["authkey"] = authkey


@pytest.mark.parametrize(
    ("exc", "reason", "replace"),
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "oom", False),
        (MemoryError(), "oom", False),
        (
            RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 9 bytes"),
            "oom",
            False,
        ),
        (RuntimeError("CUDA error: an illegal memory access was encountered"), "crash", True),
        (EvalFailure("nan", "x"), "nan", False),
        (EvalFailure("crash", "x"), "crash", True),
        (KeyError("w"), "error", False),
    ],
)
def test_classify_exception(exc: BaseException, reason: str, replace: bool) -> None:
    got_reason, message, got_replace = classify_exception(exc)
    assert (got_reason, got_replace) == (reason, replace)
    assert message


def test_triton_compile_errors_are_reason_compile() -> None:
    from triton.runtime.errors import OutOfResources

    reason, message, replace = classify_exception(OutOfResources(300000, 232448, "shared memory"))
    assert (reason, replace) == ("compile", False) and "shared memory" in message

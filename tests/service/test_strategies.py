"""Strategies on their own (no Celery): every sampler/tuner asks valid designs of the space,
constraints reach Optuna the v5 way (`best_trials` is constraint-aware), pruners prune, NNI
state survives a restart, and optuna-dashboard reads a finished study.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from search_space.costs import design_costs
from search_space.space import SearchSpace
from search_space.workload import Workload
from service.strategies import NNI_TUNERS
from service.strategies import OPTUNA_SAMPLERS
from service.strategies import Outcome
from service.strategies import make_strategy
from service.strategies import rdb_storage
from tests.service.e2e_helpers import SPACE

LIMIT = 120_000.0


@pytest.fixture()
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


def _outcome(design: object) -> Outcome:
    costs = design_costs(design, Workload())  # type: ignore[arg-type]
    return Outcome(
        state="complete",
        values=(float(costs.params), float(costs.flops_per_token)),
        constraints={"params": costs.params - LIMIT},
    )


def _run(name: str, url: str, n: int, *, study: str = "s", seed: int = 3) -> list[int]:
    space = SearchSpace.model_validate(SPACE)
    strategy = make_strategy(
        name,
        space=space,
        storage_url=url,
        study_name=study,
        directions=["minimize", "maximize"],
        metric_names=["params", "flops"],
        seed=seed,
    )
    numbers = []
    while len(numbers) < n:
        for p in strategy.ask(min(3, n - len(numbers))):
            assert p.design.dims == space.dims
            strategy.tell(p.number, _outcome(p.design))
            numbers.append(p.number)
    return numbers


@pytest.mark.parametrize("name", [*OPTUNA_SAMPLERS, *NNI_TUNERS])
def test_every_strategy_asks_designs_and_learns(name: str, url: str) -> None:
    numbers = _run(name, url, 9 if name != "gp" else 5)
    assert numbers == sorted(set(numbers))
    study = optuna.load_study(study_name="s", storage=rdb_storage(url))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == len(numbers)
    # Constraint-aware front: best_trials = feasible non-dominated, checked by brute force.
    feasible = [t for t in done if t.constraints["params"] <= 0]
    expected = {
        t.number
        for t in feasible
        if not any(
            o.values[0] <= t.values[0] and o.values[1] >= t.values[1] and o.values != t.values
            for o in feasible
        )
    }
    assert {t.number for t in study.best_trials} == expected


def test_seeded_strategy_is_reproducible(tmp_path: Path) -> None:
    a = _run("tpe", f"sqlite:///{tmp_path / 'a.db'}", 6)
    b = _run("tpe", f"sqlite:///{tmp_path / 'b.db'}", 6)
    pa = [
        t.params
        for t in optuna.load_study(
            study_name="s", storage=rdb_storage(f"sqlite:///{tmp_path / 'a.db'}")
        ).trials
    ]
    pb = [
        t.params
        for t in optuna.load_study(
            study_name="s", storage=rdb_storage(f"sqlite:///{tmp_path / 'b.db'}")
        ).trials
    ]
    assert a == b and pa == pb


def test_tell_twice_is_a_no_op(url: str) -> None:
    space = SearchSpace.model_validate(SPACE)
    strategy = make_strategy(
        "random",
        space=space,
        storage_url=url,
        study_name="s",
        directions=["minimize"],
        metric_names=["params"],
        seed=1,
    )
    (p,) = strategy.ask(1)
    strategy.tell(p.number, Outcome(state="complete", values=(1.0,)))
    strategy.tell(p.number, Outcome(state="failed"))
    frozen = optuna.load_study(study_name="s", storage=rdb_storage(url)).trials[0]
    assert frozen.state == optuna.trial.TrialState.COMPLETE and frozen.values == [1.0]


@pytest.mark.parametrize("pruner", ["median", "successive_halving", "hyperband"])
def test_pruners_stop_a_trial_that_is_worse_than_the_rest(url: str, pruner: str) -> None:
    space = SearchSpace.model_validate(SPACE)
    strategy = make_strategy(
        "random",
        space=space,
        storage_url=url,
        study_name="s",
        directions=["minimize"],
        metric_names=["bpb"],
        seed=1,
        settings={"pruner": pruner, "pruner_settings": {"n_startup_trials": 2, "min_resource": 1}},
    )
    curve = [(step, 1.0 / (step + 1)) for step in range(1, 9)]
    for _ in range(6):
        (p,) = strategy.ask(1)
        assert not strategy.should_prune(p.number, curve)
        strategy.tell(p.number, Outcome(state="complete", values=(curve[-1][1],)))
    (bad,) = strategy.ask(1)
    awful = [(step, 10.0 + step) for step in range(1, 9)]
    assert any(strategy.should_prune(bad.number, awful[:k]) for k in range(1, 9))


def test_pruner_refuses_multi_objective(url: str) -> None:
    with pytest.raises(ValueError, match="single objective"):
        make_strategy(
            "tpe",
            space=SearchSpace.model_validate(SPACE),
            storage_url=url,
            study_name="s",
            directions=["minimize", "minimize"],
            metric_names=["a", "b"],
            seed=0,
            settings={"pruner": "median"},
        )


@pytest.mark.parametrize("name", ["nni-tpe", "nni-evolution"])
def test_nni_tuner_survives_a_restart(name: str, url: str) -> None:
    space = SearchSpace.model_validate(SPACE)
    kwargs = dict(
        space=space,
        storage_url=url,
        study_name="s",
        directions=["minimize"],
        metric_names=["params"],
        seed=5,
    )
    first = make_strategy(name, **kwargs)  # type: ignore[arg-type]
    asked = first.ask(4)
    for p in asked[:2]:
        first.tell(p.number, Outcome(state="complete", values=(float(p.number),)))
    # A new controller process: the tuner comes back from the study, pending trials included.
    second = make_strategy(name, **kwargs)  # type: ignore[arg-type]
    tuner = second._tuner  # type: ignore[attr-defined]
    assert second._told == {asked[0].number, asked[1].number}  # type: ignore[attr-defined]
    for p in asked[2:]:
        second.tell(p.number, Outcome(state="complete", values=(float(p.number),)))
    if name == "nni-tpe":
        assert sum(len(v) for v in tuner._history.values()) > 0
        assert not tuner._running_params
    more = second.ask(2)
    assert [p.number for p in more] == [4, 5]


def test_nni_replays_results_it_missed(url: str) -> None:
    space = SearchSpace.model_validate(SPACE)
    kwargs = dict(
        space=space,
        storage_url=url,
        study_name="s",
        directions=["minimize"],
        metric_names=["params"],
        seed=5,
    )
    first = make_strategy("nni-tpe", **kwargs)  # type: ignore[arg-type]
    (p,) = first.ask(1)
    # The study learns the result but the controller dies before the tuner is saved.
    optuna.load_study(study_name="s", storage=rdb_storage(url)).tell(p.number, 3.0)
    second = make_strategy("nni-tpe", **kwargs)  # type: ignore[arg-type]
    assert p.number in second._told  # type: ignore[attr-defined]
    assert not second._tuner._running_params  # type: ignore[attr-defined]


def _wsgi_get(app: object, path: str) -> dict[str, object]:
    from wsgiref.util import setup_testing_defaults

    environ: dict[str, object] = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h, *a: status.append(s)))  # type: ignore[operator]
    assert status[0].startswith("200"), (status, body[:300])
    return dict(json.loads(body))


def test_optuna_dashboard_reads_a_finished_study(url: str) -> None:
    from optuna_dashboard import wsgi

    _run("tpe", url, 6, study="job-abc")
    app = wsgi(rdb_storage(url))
    studies = _wsgi_get(app, "/api/studies")["study_summaries"]
    (summary,) = [s for s in studies if s["study_name"] == "job-abc"]  # type: ignore[attr-defined]
    detail = _wsgi_get(app, f"/api/studies/{summary['study_id']}")
    trials = detail["trials"]
    assert len(trials) == 6  # type: ignore[arg-type]
    assert all(t["state"] == "Complete" for t in trials)  # type: ignore[attr-defined]
    assert detail["directions"] == ["minimize", "maximize"]
    assert detail["best_trials"]

"""`MirroredStorage` answers reads from memory: after any mix of asks, suggestions,
constraints, attributes, reports and tells, every trial it holds equals the trial a fresh
storage reads from the database."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from service.strategies import rdb_storage
from service.strategies._mirror import MirroredStorage


def _same(mine: FrozenTrial, stored: FrozenTrial) -> None:
    assert mine.number == stored.number and mine._trial_id == stored._trial_id
    assert mine.state == stored.state
    assert mine.values == stored.values
    assert mine.params == stored.params and mine.distributions == stored.distributions
    assert mine.user_attrs == stored.user_attrs
    assert mine.system_attrs == stored.system_attrs
    assert mine.intermediate_values == stored.intermediate_values
    assert mine.datetime_start == stored.datetime_start
    if stored.datetime_complete is None:
        assert mine.datetime_complete is None
    else:  # taken from this process's clock right after the write: within one write
        assert mine.datetime_complete is not None
        assert abs((mine.datetime_complete - stored.datetime_complete).total_seconds()) < 5


def test_mirror_equals_the_database_after_a_mixed_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mirror.db'}"
    optuna.create_study(
        storage=rdb_storage(url), study_name="m", directions=["minimize", "maximize"]
    )
    storage = MirroredStorage(rdb_storage(url))
    sampler = optuna.samplers.TPESampler(
        seed=0, multivariate=True, constant_liar=True, n_startup_trials=3
    )
    study = optuna.load_study(study_name="m", storage=storage, sampler=sampler)
    for i in range(14):
        trial = study.ask()
        x = trial.suggest_float("x", 0.0, 1.0)
        if trial.suggest_categorical("kind", ["a", "b"]) == "a":
            trial.suggest_int("width", 1, 8)  # conditional: sampled independently
        trial.set_constraint("budget", x - 0.8)
        trial.set_user_attr("i", i)
        if i % 5 != 3:  # TPE cannot score a pruned multi-objective trial with steps
            storage.set_trial_intermediate_value(trial._trial_id, 0, x)
        if i % 5 == 4:
            study.tell(trial, state=TrialState.FAIL)
        elif i % 5 == 3:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, [x, float(i)])
    running = study.ask()
    running.suggest_float("x", 0.0, 1.0)

    fresh = optuna.load_study(study_name="m", storage=url)  # a new storage: the database
    stored = fresh.get_trials(deepcopy=False)
    mine = study.get_trials(deepcopy=False)
    assert [t.number for t in mine] == [t.number for t in stored] == list(range(15))
    for a, b in zip(mine, stored, strict=True):
        _same(a, b)
    assert sorted(t.number for t in study.best_trials) == sorted(
        t.number for t in fresh.best_trials
    )
    assert storage.get_trial(running._trial_id).state == TrialState.RUNNING


def test_a_refused_write_leaves_the_mirror_as_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mirror.db'}"
    optuna.create_study(storage=rdb_storage(url), study_name="m")
    storage = MirroredStorage(rdb_storage(url))
    study = optuna.load_study(study_name="m", storage=storage)
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    study.tell(trial, 0.5)
    with pytest.raises(UpdateFinishedTrialError):
        storage.set_trial_state_values(trial._trial_id, TrialState.COMPLETE, [0.1])
    with pytest.raises(UpdateFinishedTrialError):
        storage.set_trial_param(
            trial._trial_id, "y", 0.3, optuna.distributions.FloatDistribution(0.0, 1.0)
        )
    study.tell(trial.number, 0.2, skip_if_finished=True)  # what the controller does twice
    fresh = optuna.load_study(study_name="m", storage=url)
    _same(storage.get_trial(trial._trial_id), fresh.trials[0])
    assert fresh.trials[0].value == 0.5 and fresh.trials[0].params == {"x": trial.params["x"]}

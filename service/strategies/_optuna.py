"""Optuna samplers (and pruners) behind `Strategy`, with the study in the job's database.

The study lives in RDB storage on the same database as the service's tables, so
`optuna-dashboard <database-url>` shows every job as a study named ``job-<id>``.
Constraints go through `trial.set_constraint` (Optuna 5; `constraints_func` is deprecated),
which both the samplers and `study.best_trials` read.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import warnings
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from sqlalchemy import event

from search_space.space import SearchSpace
from service.strategies._base import Outcome
from service.strategies._base import Proposal
from service.strategies._base import Strategy
from service.strategies._mirror import MirroredStorage

__all__ = ["OPTUNA_SAMPLERS", "PRUNERS", "OptunaStrategy", "open_study", "rdb_storage"]

logger = logging.getLogger(__name__)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _quiet(cls: Callable[..., Any]) -> Callable[..., Any]:
    # NSGAIIISampler is marked experimental; the warning says nothing a user can act on.
    def build(**kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(**kwargs)

    return build


# name -> factory(seed, settings). TPE is the default: it handles the conditional knobs of
# our spaces (rank only for lowrank, ...), which NSGA-II's docstring says it does not.
OPTUNA_SAMPLERS: dict[str, Callable[[int, dict[str, Any]], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed, s: optuna.samplers.TPESampler(
        seed=seed,
        multivariate=True,
        constant_liar=True,
        n_startup_trials=int(s.get("n_startup_trials", 10)),
    ),
    "nsga2": lambda seed, s: optuna.samplers.NSGAIISampler(
        seed=seed, population_size=int(s.get("population_size", 50))
    ),
    "nsga3": lambda seed, s: _quiet(optuna.samplers.NSGAIIISampler)(
        seed=seed, population_size=int(s.get("population_size", 50))
    ),
    "gp": lambda seed, s: optuna.samplers.GPSampler(
        seed=seed,
        n_startup_trials=int(s.get("n_startup_trials", 10)),
        # Conditional knobs (width only for dense, ...) fall back to independent sampling
        # by design; one warning per parameter per trial would flood the controller log.
        warn_independent_sampling=False,
    ),
    "random": lambda seed, s: optuna.samplers.RandomSampler(seed=seed),
}

PRUNERS: dict[str, Callable[[dict[str, Any]], optuna.pruners.BasePruner]] = {
    "median": lambda s: optuna.pruners.MedianPruner(
        n_startup_trials=int(s.get("n_startup_trials", 5)),
        n_warmup_steps=int(s.get("n_warmup_steps", 0)),
    ),
    "successive_halving": lambda s: optuna.pruners.SuccessiveHalvingPruner(
        min_resource=s.get("min_resource", "auto"),
        reduction_factor=int(s.get("reduction_factor", 4)),
    ),
    "hyperband": lambda s: optuna.pruners.HyperbandPruner(
        min_resource=int(s.get("min_resource", 1)),
        max_resource=s.get("max_resource", "auto"),
        reduction_factor=int(s.get("reduction_factor", 3)),
    ),
}


@functools.cache
def rdb_storage(url: str) -> RDBStorage:
    """One RDB storage per process and URL (creating one checks Optuna's schema: ~50 ms)."""
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        # Several processes share the file; wait for the lock instead of failing at once.
        # No pre-ping: a file connection does not go stale, and every storage call checks a
        # connection out (~25 per ask + tell).
        engine_kwargs = {"connect_args": {"timeout": 30}}
    storage = RDBStorage(url, engine_kwargs=engine_kwargs)
    if url.startswith("sqlite"):
        # The same pragmas as the service's engine (service.core.db): WAL so readers never
        # block the writer, synchronous=NORMAL so a commit is not an fsync. Measured on the
        # (loaded) 2-core dev box, random sampler, medians of 30: ask 135 -> 7 ms, tell
        # 50 -> 6 ms.
        event.listen(storage.engine, "connect", _sqlite_pragmas)
        storage.engine.dispose()
    return storage


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    del connection_record
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _mixed_seed(seed: int, n_existing: int) -> int:
    # A restarted controller must not replay the random stream it already used: mix the
    # number of trials the study holds into the seed (deterministic for a given history).
    digest = hashlib.sha256(f"{seed}:{n_existing}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def open_study(
    *,
    storage_url: str,
    study_name: str,
    directions: Sequence[str],
    metric_names: Sequence[str],
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """Create the job's study, or load it when it exists (idempotent)."""
    storage = rdb_storage(storage_url)
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        directions=[str(d) for d in directions],  # type: ignore[misc]
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    if study.metric_names is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(metric_names))
    return study


class OptunaStrategy(Strategy):
    """An Optuna sampler; a pruner too for single-objective jobs that report steps."""

    def __init__(
        self,
        *,
        space: SearchSpace,
        storage_url: str,
        study_name: str,
        directions: Sequence[str],
        metric_names: Sequence[str],
        sampler: str,
        seed: int,
        settings: dict[str, Any],
    ) -> None:
        if sampler not in OPTUNA_SAMPLERS:
            raise ValueError(
                f"unknown Optuna sampler {sampler!r}; known: {sorted(OPTUNA_SAMPLERS)}"
            )
        pruner_name = settings.get("pruner")
        pruner: optuna.pruners.BasePruner = optuna.pruners.NopPruner()
        if pruner_name is not None:
            if pruner_name not in PRUNERS:
                raise ValueError(f"unknown pruner {pruner_name!r}; known: {sorted(PRUNERS)}")
            if len(directions) != 1:
                raise ValueError(
                    "Optuna pruners need a single objective, but the job has "
                    f"{len(directions)} objectives ({list(metric_names)})"
                )
            pruner = PRUNERS[pruner_name](dict(settings.get("pruner_settings", {})))
        self._space = space
        open_study(
            storage_url=storage_url,
            study_name=study_name,
            directions=directions,
            metric_names=metric_names,
        )
        # This strategy lives in the controller, the study's only writer: reads come from
        # memory, writes go to the database (see `MirroredStorage`).
        storage = MirroredStorage(rdb_storage(storage_url))
        study_id = storage.get_study_id_from_name(study_name)
        n_existing = len(storage.get_all_trials(study_id, deepcopy=False))
        self.study = optuna.load_study(
            study_name=study_name,
            storage=storage,
            sampler=OPTUNA_SAMPLERS[sampler](_mixed_seed(seed, n_existing), settings),
            pruner=pruner,
        )

    def ask(self, n: int) -> list[Proposal]:
        proposals = []
        for _ in range(n):
            trial = self.study.ask()
            try:
                design = self._space.suggest(trial)
            except ValueError as exc:
                # The space's own constraints rejected the sample: record it as failed so
                # the sampler learns, and ask again.
                logger.info("trial %d: space rejected the sample: %s", trial.number, exc)
                self.study.tell(trial, state=TrialState.FAIL)
                continue
            proposals.append(Proposal(number=trial.number, design=design, params=trial.params))
        return proposals

    def _trial(self, number: int) -> optuna.Trial:
        storage = self.study._storage
        trial_id = storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
        return optuna.Trial(self.study, trial_id)

    def tell(self, number: int, outcome: Outcome) -> None:
        trial = self._trial(number)
        if trial._cached_frozen_trial.state.is_finished():
            return
        for key, value in outcome.constraints.items():
            trial.set_constraint(key, value)
        if outcome.state == "complete":
            assert outcome.values is not None  # checked by Outcome
            self.study.tell(trial, list(outcome.values), skip_if_finished=True)
        elif outcome.state == "pruned":
            self.study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        else:
            self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)

    def should_prune(self, number: int, intermediate: Sequence[tuple[int, float]]) -> bool:
        if len(self.study.directions) != 1 or isinstance(
            self.study.pruner, optuna.pruners.NopPruner
        ):
            return False
        trial = self._trial(number)
        frozen = trial._cached_frozen_trial
        if frozen.state.is_finished():
            return False
        for step, value in intermediate:
            if step not in frozen.intermediate_values:
                trial.report(float(value), int(step))
        return trial.should_prune()

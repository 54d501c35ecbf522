"""NNI tuners (TPE, Evolution, Anneal, Random) behind `Strategy`.

NNI tuners optimise one number and keep their state in memory. Here:

* every trial is still an Optuna trial of the job's study (numbers, values, constraints and
  the NNI parameters as the user attribute ``nni_params``), so the front, the dashboard and
  `optuna-dashboard` read NNI jobs like any other;
* the tuner is driven through `generate_parameters` / `receive_trial_result` / `trial_end`
  with the trial number as NNI's parameter id;
* after every ask and tell the tuner is pickled into the study's system attributes, with
  the numbers it has been told. A restarted controller unpickles it and replays the results
  it missed (`receive_trial_result` for trials it generated, `import_data` for the rest), so
  the search goes on where it stopped. NNI's Evolution tuner ignores `import_data`; its
  pickled population is what carries it across restarts.

The scalar NNI sees is the job's first objective. An infeasible trial (a constraint > 0) is
told the worst feasible value seen so far when that is worse than its own, so the tuner
learns to avoid the region without the controller inventing a penalty scale.
"""

from __future__ import annotations

import base64
import logging
import math
import pickle
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

from search_space.space import SearchSpace
from service.strategies._base import Outcome
from service.strategies._base import Proposal
from service.strategies._base import Strategy
from service.strategies._optuna import open_study

__all__ = ["NNI_TUNERS", "NNIStrategy"]

logger = logging.getLogger(__name__)

NNI_TUNERS = ("nni-tpe", "nni-evolution", "nni-anneal", "nni-random")

_STATE_KEY = "ffnas:nni_state"


def _make_tuner(name: str, *, mode: str, seed: int, settings: dict[str, Any]) -> Any:
    # Imported here: NNI is an optional extra, and importing it costs ~0.5 s.
    if name == "nni-tpe":
        from nni.algorithms.hpo.tpe_tuner import TpeTuner

        return TpeTuner(optimize_mode=mode, seed=seed)
    if name == "nni-evolution":
        from nni.algorithms.hpo.evolution_tuner import EvolutionTuner

        return EvolutionTuner(
            optimize_mode=mode, population_size=int(settings.get("population_size", 32))
        )
    if name == "nni-anneal":
        from nni.algorithms.hpo.hyperopt_tuner import HyperoptTuner

        return HyperoptTuner("anneal", optimize_mode=mode)
    if name == "nni-random":
        from nni.algorithms.hpo.random_tuner import RandomTuner

        return RandomTuner(seed=seed)
    raise ValueError(f"unknown NNI tuner {name!r}; known: {list(NNI_TUNERS)}")


class NNIStrategy(Strategy):
    """One NNI tuner for a job, persisted in the job's Optuna study."""

    def __init__(
        self,
        *,
        space: SearchSpace,
        storage_url: str,
        study_name: str,
        directions: Sequence[str],
        metric_names: Sequence[str],
        tuner: str,
        seed: int,
        settings: dict[str, Any],
    ) -> None:
        if tuner not in NNI_TUNERS:
            raise ValueError(f"unknown NNI tuner {tuner!r}; known: {list(NNI_TUNERS)}")
        self._space = space
        self._maximize = directions[0] == "maximize"
        self.study = open_study(
            storage_url=storage_url,
            study_name=study_name,
            directions=directions,
            metric_names=metric_names,
        )
        state = self.study._storage.get_study_system_attrs(self.study._study_id).get(_STATE_KEY)
        self._told: set[int]
        self._generated: set[int]
        self._worst: float | None
        if state is not None:
            self._tuner, self._told, self._generated, self._worst = pickle.loads(
                base64.b64decode(state)
            )
        else:
            mode = "maximize" if self._maximize else "minimize"
            self._tuner = _make_tuner(tuner, mode=mode, seed=seed, settings=settings)
            self._tuner.update_search_space(space.to_nni())
            self._told = set()
            self._generated = set()
            self._worst = None
        self._replay_missed()

    def _save(self) -> None:
        blob = pickle.dumps((self._tuner, self._told, self._generated, self._worst))
        self.study._storage.set_study_system_attr(
            self.study._study_id, _STATE_KEY, base64.b64encode(blob).decode("ascii")
        )

    def _replay_missed(self) -> None:
        # Results the study holds but the (unpickled) tuner has not seen: a controller died
        # between the study's tell and the tuner's save.
        missed = False
        for frozen in self.study.get_trials(deepcopy=False):
            if not frozen.state.is_finished() or frozen.number in self._told:
                continue
            params = frozen.user_attrs.get("nni_params")
            if params is None:
                continue
            outcome = Outcome(
                state=_STATES[frozen.state],
                values=tuple(frozen.values) if frozen.values is not None else None,
                constraints=dict(frozen.constraints),
            )
            self._tell_tuner(frozen.number, params, outcome)
            missed = True
        if missed:
            self._save()

    def _scalar(self, outcome: Outcome) -> float:
        assert outcome.values is not None
        value = float(outcome.values[0])
        worse = max if not self._maximize else min
        if outcome.feasible:
            self._worst = value if self._worst is None else worse(self._worst, value)
            return value
        return value if self._worst is None else worse(self._worst, value)

    def _tell_tuner(self, number: int, params: dict[str, Any], outcome: Outcome) -> None:
        self._told.add(number)
        known = number in self._generated
        if outcome.state != "complete":
            if known:
                self._tuner.trial_end(number, False)
            return
        value = self._scalar(outcome)
        if not math.isfinite(value):
            if known:
                self._tuner.trial_end(number, False)
            return
        if known:
            self._tuner.receive_trial_result(number, params, value)
            self._tuner.trial_end(number, True)
        else:
            self._tuner.import_data([{"parameter": params, "value": value}])

    def ask(self, n: int) -> list[Proposal]:
        from nni import NoMoreTrialError

        proposals = []
        for _ in range(n):
            trial = self.study.ask()
            try:
                params = self._tuner.generate_parameters(trial.number)
            except NoMoreTrialError:
                # Evolution waits for results when its whole population is running.
                self.study.tell(trial, state=TrialState.FAIL)
                break
            self._generated.add(trial.number)
            trial.set_user_attr("nni_params", params)
            try:
                design = self._space.from_nni(params)
            except ValueError as exc:
                logger.info("trial %d: space rejected NNI's sample: %s", trial.number, exc)
                self.study.tell(trial, state=TrialState.FAIL)
                self._tuner.trial_end(trial.number, False)
                self._told.add(trial.number)
                continue
            proposals.append(Proposal(number=trial.number, design=design, params=params))
        self._save()
        return proposals

    def tell(self, number: int, outcome: Outcome) -> None:
        storage = self.study._storage
        trial_id = storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
        trial = optuna.Trial(self.study, trial_id)
        frozen = trial._cached_frozen_trial
        if not frozen.state.is_finished():
            for key, value in outcome.constraints.items():
                trial.set_constraint(key, value)
            if outcome.state == "complete":
                assert outcome.values is not None
                self.study.tell(trial, list(outcome.values), skip_if_finished=True)
            else:
                state = TrialState.PRUNED if outcome.state == "pruned" else TrialState.FAIL
                self.study.tell(trial, state=state, skip_if_finished=True)
        if number not in self._told:
            self._tell_tuner(number, dict(frozen.user_attrs.get("nni_params", {})), outcome)
            self._save()


_STATES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
}

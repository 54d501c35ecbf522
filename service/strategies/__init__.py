"""Searchers: which designs to try next. See `Strategy`.

`make_strategy` builds one by name: Optuna samplers (``tpe`` — the default, multivariate with
constant liar —, ``nsga2``, ``nsga3``, ``gp``, ``random``) or NNI tuners (``nni-tpe``,
``nni-evolution``, ``nni-anneal``, ``nni-random``). ``exact`` (library jobs) is not a
`Strategy`: the controller computes the whole front at once with `search_space` solvers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from search_space.space import SearchSpace
from service.strategies._base import Outcome
from service.strategies._base import OutcomeState
from service.strategies._base import Proposal
from service.strategies._base import Strategy
from service.strategies._nni import NNI_TUNERS
from service.strategies._nni import NNIStrategy
from service.strategies._optuna import OPTUNA_SAMPLERS
from service.strategies._optuna import PRUNERS
from service.strategies._optuna import OptunaStrategy
from service.strategies._optuna import open_study
from service.strategies._optuna import rdb_storage

__all__ = [
    "EXACT",
    "NNI_TUNERS",
    "OPTUNA_SAMPLERS",
    "PRUNERS",
    "STRATEGY_NAMES",
    "NNIStrategy",
    "OptunaStrategy",
    "Outcome",
    "OutcomeState",
    "Proposal",
    "Strategy",
    "make_strategy",
    "open_study",
    "rdb_storage",
]

EXACT = "exact"
STRATEGY_NAMES: tuple[str, ...] = (*OPTUNA_SAMPLERS, *NNI_TUNERS, EXACT)


def make_strategy(
    name: str,
    *,
    space: SearchSpace,
    storage_url: str,
    study_name: str,
    directions: Sequence[str],
    metric_names: Sequence[str],
    seed: int,
    settings: dict[str, Any] | None = None,
) -> Strategy:
    """The strategy `name` for one job; its study is created or loaded in `storage_url`."""
    common: dict[str, Any] = {
        "space": space,
        "storage_url": storage_url,
        "study_name": study_name,
        "directions": directions,
        "metric_names": metric_names,
        "seed": seed,
        "settings": dict(settings or {}),
    }
    if name in OPTUNA_SAMPLERS:
        return OptunaStrategy(sampler=name, **common)
    if name in NNI_TUNERS:
        return NNIStrategy(tuner=name, **common)
    raise ValueError(f"unknown strategy {name!r}; known: {list(STRATEGY_NAMES)}")

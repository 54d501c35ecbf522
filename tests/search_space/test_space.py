"""Search spaces: exact size vs brute-force enumeration, replay, Optuna and NNI."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from search_space.design import FFNDesign
from search_space.errors import SpaceError
from search_space.space import SearchSpace

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "spaces"
DIMS = {"d_model": 64, "n_layers": 4, "n_heads": 4, "n_kv_heads": 2, "vocab": 256, "seq_len": 64}


class ReplayTrial:
    """Takes the recorded choice index at each decision, index 0 past the prefix."""

    def __init__(self, prefix: list[int]) -> None:
        self.prefix = prefix
        self.taken: list[int] = []
        self.sizes: list[int] = []

    def _pick(self, options: list[Any]) -> Any:
        depth = len(self.taken)
        index = self.prefix[depth] if depth < len(self.prefix) else 0
        self.taken.append(index)
        self.sizes.append(len(options))
        return options[index]

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return self._pick(list(choices))

    def suggest_int(self, name: str, low: int, high: int, step: int = 1) -> int:
        return int(self._pick(list(range(low, high + 1, step))))


def enumerate_designs(space: SearchSpace) -> list[FFNDesign]:
    """Every walk of the space, by depth-first replay of all choice sequences."""
    found = []
    stack: list[list[int]] = [[]]
    while stack:
        prefix = stack.pop()
        trial = ReplayTrial(prefix)
        found.append(space.suggest(trial))
        for depth in range(len(prefix), len(trial.taken)):
            for alternative in range(1, trial.sizes[depth]):
                stack.append(trial.taken[:depth] + [alternative])
    return found


def space(**fields: Any) -> SearchSpace:
    data: dict[str, Any] = {"dims": DIMS, "layer": {"kind": ["dense"], "width": [64]}}
    data.update(fields)
    return SearchSpace.from_dict(data)


ALL_KINDS = {
    "kind": ["dense", "moe", "lowrank", "blockdiag", "linear", "noop"],
    "width": [6, 32, 64],  # 6: no 2:4, no block-16, no blockdiag-4, rank 8 only
    "activation": ["swiglu", "gelu"],
    "sparsity": ["none", "2:4", {"pattern": "block", "block_size": 16, "density": 0.5}],
    "moe": {"experts": [2, 4], "top_k": [1, 2, 3], "shared_experts": [0, 1], "width": [8]},
    "lowrank": {"rank": [4, 16]},
    "blockdiag": {"blocks": [2, 4]},
    "norm": ["pre", "none"],
    "norm_type": ["rmsnorm", "layernorm"],
}

TINY_SPACES: dict[str, dict[str, Any]] = {
    "all-kinds-one-layer": {"dims": {**DIMS, "n_layers": 1}, "layer": ALL_KINDS},
    "per-layer-fusion-fixed": {
        "layer": {
            "kind": ["dense", "noop"],
            "width": [32, 64],
            "activation": ["swiglu", "gelu"],
            "norm": ["pre", "post"],
            "parallel_attn": [False, True],
        },
        "fixed": {2: {"kind": "dense", "width": 128, "activation": "gelu"}},
        "fusion": {"spans": [[0, 1], [2, 3]]},
    },
    "global-tie-two-spans": {
        "tie": "global",
        "layer": {
            "kind": ["dense", "moe"],
            "width": [32, 64],
            "activation": ["swiglu", "relu2"],
            "norm_type": ["rmsnorm", "layernorm"],
            "moe": {"experts": [2], "top_k": [1, 2]},
        },
        "fusion": {"spans": [[0, 1], [2, 3]]},
    },
    "groups-span-crosses-groups": {
        "dims": {**DIMS, "n_layers": 5},
        "tie": {"groups": 2},
        "layer": {
            "kind": ["dense", "linear", "noop"],
            "width": [32, 64],
            "activation": ["swiglu", "geglu"],
            "sparsity": ["none", "2:4"],
        },
        "fixed": {4: {"kind": "dense", "width": 64, "activation": "geglu"}},
        "fusion": {"spans": [[0, 1], [2, 4]]},
    },
    "groups-fixed-member-in-span": {
        "dims": {**DIMS, "n_layers": 6},
        "tie": {"groups": 3},
        "layer": {"kind": ["dense", "noop"], "width": [64], "activation": ["swiglu", "gelu"]},
        "fixed": {3: {"kind": "dense", "width": 32}},
        "fusion": {"spans": [[1, 3], [4, 5]]},
    },
    "range-widths": {
        "dims": {**DIMS, "n_layers": 2},
        "layer": {
            "kind": ["dense", "lowrank"],
            "width": {"low": 16, "high": 80, "step": 16},
            "lowrank": {"rank": [8, 32]},
        },
    },
}


@pytest.mark.parametrize("name", list(TINY_SPACES))
def test_size_equals_brute_force(name: str) -> None:
    data = {"dims": DIMS, **TINY_SPACES[name]}
    tiny = SearchSpace.from_dict(data)
    found = enumerate_designs(tiny)
    distinct = {d.to_json(indent=None) for d in found}
    assert len(distinct) == len(found), "two parameter paths gave the same design"
    assert tiny.size() == len(found)
    assert len(found) > 1


def test_fusion_flags_appear_only_when_fusable() -> None:
    tiny = SearchSpace.from_dict({"dims": DIMS, **TINY_SPACES["per-layer-fusion-fixed"]})
    designs = enumerate_designs(tiny)
    fused = [d for d in designs if any(layer.fusion_group is not None for layer in d.layers)]
    assert fused, "fusion never chosen"
    for design in fused:
        for members in design.fusion_groups().values():
            assert len(members) >= 2
            assert {design.layers[i].activation for i in members} == {
                design.layers[members[0]].activation
            }


@pytest.mark.parametrize("name", list(TINY_SPACES))
def test_fixed_trial_replays_every_design(name: str) -> None:
    tiny = SearchSpace.from_dict({"dims": DIMS, **TINY_SPACES[name]})
    rng = random.Random(0)
    for _ in range(40):
        design = tiny.sample(rng)
        params = tiny.params_for(design)
        assert tiny.suggest(optuna.trial.FixedTrial(params)) == design


def test_params_for_rejects_designs_outside_the_space() -> None:
    tiny = space(layer={"kind": ["dense"], "width": [32, 64]})
    design = tiny.sample(random.Random(1))
    other = design.with_layers([design.layers[0].model_copy(update={"width": 48})] * 4)
    with pytest.raises(SpaceError, match=r"width=48 is not a choice"):
        tiny.params_for(other)


def test_optuna_study_runs_with_stable_distributions() -> None:
    # The default storage refuses a parameter name whose categorical choices change between
    # trials ("dynamic value space"): filtered knobs must get their own names.
    tiny = SearchSpace.from_dict({"dims": {**DIMS, "n_layers": 1}, "layer": ALL_KINDS})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        design = tiny.suggest(trial)
        seen.add(design.layers[0].kind)
        study.tell(trial, float(len(design.to_json())))
    assert len(seen) >= 4


def test_filtered_knobs_get_suffixed_names() -> None:
    tiny = SearchSpace.from_dict({"dims": {**DIMS, "n_layers": 1}, "layer": ALL_KINDS})
    names = set()

    class Recorder(ReplayTrial):
        def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
            names.add((name, tuple(choices)))
            return super().suggest_categorical(name, choices)

    stack: list[list[int]] = [[]]
    while stack:
        prefix = stack.pop()
        trial = Recorder(prefix)
        tiny.suggest(trial)
        for depth in range(len(prefix), len(trial.taken)):
            for alternative in range(1, trial.sizes[depth]):
                stack.append(trial.taken[:depth] + [alternative])
    by_name: dict[str, set[tuple[Any, ...]]] = {}
    for name, choices in names:
        by_name.setdefault(name, set()).add(choices)
    assert all(len(v) == 1 for v in by_name.values()), by_name
    assert by_name["l0.moe.top_k.e2"] == {(1, 2)}
    assert by_name["l0.moe.top_k"] == {(1, 2, 3)}
    # width 6 leaves only "none": a single choice is not a parameter at all
    assert "l0.dense.sparsity.w6" not in by_name
    assert by_name["l0.dense.sparsity"] == {("none", "2:4", "block16@0.5")}
    assert "l0.lowrank.rank.w6" not in by_name  # only rank 4 < 6
    assert by_name["l0.lowrank.rank"] == {(4, 16)}
    assert by_name["l0.blockdiag.blocks"] == {(2, 4)}


def test_nni_space_validates_and_round_trips() -> None:
    from nni.algorithms.hpo.random_tuner import RandomTuner
    from nni.common.hpo_utils import validate_search_space

    tiny = SearchSpace.from_dict({"dims": DIMS, **TINY_SPACES["per-layer-fusion-fixed"]})
    for data in (
        tiny,
        SearchSpace.from_dict({"dims": {**DIMS, "n_layers": 1}, "layer": ALL_KINDS}),
    ):
        nni_space = data.to_nni()
        validate_search_space(nni_space)
        json.dumps(nni_space)
        tuner = RandomTuner(seed=0)
        tuner.update_search_space(nni_space)
        for i in range(50):
            params = tuner.generate_parameters(i)
            design = data.from_nni(params)
            # every NNI draw is a design of the space
            assert data.suggest(optuna.trial.FixedTrial(data.params_for(design))) == design


def test_sizes_of_examples() -> None:
    tiny = SearchSpace.load(EXAMPLES / "tiny-cpu.yaml")
    assert tiny.size() > 1000
    llama = SearchSpace.load(EXAMPLES / "llama3-8b.yaml")
    assert llama.size() == llama3_size_by_hand()


def llama3_size_by_hand() -> int:
    """The llama3-8b example's size from its YAML, by a closed form valid for per-layer tying.

    Per layer: N = dense + moe + lowrank + blockdiag + linear + noop configurations, where
    every FFN kind is multiplied by (norm choices, with norm_type only under a real norm) x
    parallel_attn choices. A fusion span doubles the configurations in which all its layers
    are fusable (dense, no sparsity, pre-norm, no parallel attention) with one key.
    """
    data = yaml.safe_load((EXAMPLES / "llama3-8b.yaml").read_text())

    def ch(knob: Any) -> list[Any]:
        if isinstance(knob, dict):
            return list(knob["choices"])
        return list(knob) if isinstance(knob, list) else [knob]

    dims, layer = data["dims"], data["layer"]
    assert data["tie"] == "per_layer" and not data.get("fixed")
    d = dims["d_model"]
    w = layer["width"]
    widths = [
        max(w["multiple"], round(f * w["base"] / w["multiple"]) * w["multiple"])
        for f in w["fractions"]
    ]
    acts = len(ch(layer["activation"]))
    norm_types = len(ch(layer["norm_type"]))
    norms = sum(norm_types if n != "none" else 1 for n in ch(layer["norm"]))
    tail = norms * len(ch(layer["parallel_attn"]))
    sparsities = ch(layer["sparsity"])
    dense = sum(sum(1 for s in sparsities if s == "none" or w % 4 == 0) for w in widths) * acts
    moe = layer["moe"]
    moe_widths = ch(moe["width"]) if "width" in moe else widths
    moe_count = (
        len(moe_widths)
        * sum(sum(1 for k in ch(moe["top_k"]) if k <= e) for e in ch(moe["experts"]))
        * len(ch(moe["shared_experts"]))
        * acts
    )
    lowrank = (
        sum(sum(1 for r in ch(layer["lowrank"]["rank"]) if r < w and r < d) for w in widths) * acts
    )
    blockdiag = (
        sum(
            sum(1 for b in ch(layer["blockdiag"]["blocks"]) if w % b == 0 and d % b == 0)
            for w in widths
        )
        * acts
    )
    per_layer = (dense + moe_count + lowrank + blockdiag + 1) * tail + 1  # + linear, noop
    # fusable per (activation, norm_type): dense widths, sparsity none, norm pre, no parallel
    fusable = len(widths)
    keys = acts * norm_types
    total = 1
    covered = 0
    for first, last in data["fusion"]["spans"]:
        k = last - first + 1
        covered += k
        total *= per_layer**k + keys * fusable**k
    return total * per_layer ** (dims["n_layers"] - covered)


def test_examples_sample_valid_designs() -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        example = SearchSpace.load(path)
        rng = random.Random(3)
        for _ in range(5):
            design = example.sample(rng)
            assert FFNDesign.from_json(design.to_json()) == design


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"layer": {"kind": ["moe"], "width": [64], "moe": {"experts": [1, 2], "top_k": [1]}}},
            "experts >= 2",
        ),
        (
            {"layer": {"kind": ["lowrank"], "width": [64], "lowrank": {"rank": [64]}}},
            "rank < d_model",
        ),
        (
            {"layer": {"kind": ["blockdiag"], "width": [64], "blockdiag": {"blocks": [3]}}},
            "d_model % blocks",
        ),
        ({"layer": {"kind": ["moe"], "width": [64]}}, "`moe:` section is needed"),
        ({"layer": {"kind": ["dense"]}}, "`width` is needed"),
        ({"layer": {"kind": ["dense"], "width": [64, 64]}}, "must be distinct"),
        ({"layer": {"kind": ["dense"], "width": {"low": 8, "high": 4}}}, "low <= high"),
        ({"layer": {"kind": ["dense"], "width": [64], "colour": "red"}}, "colour"),
        ({"fixed": {7: {"kind": "noop"}}}, "0 <= index < n_layers"),
        ({"fusion": {"spans": [[0, 2], [2, 3]]}}, "overlaps"),
        ({"fusion": {"spans": [[2, 2]]}}, "first < last"),
        ({"tie": {"groups": 9}}, "groups <= n_layers"),
        ({"constraints": [{"metric": "latency_ms", "max": 1.0}]}, "needs `workload`"),
        (
            {"constraints": [{"metric": "latency_ms", "max": 1.0, "workload": "x"}]},
            "names workload",
        ),
        (
            {"layer": {"kind": ["lowrank"], "width": [8], "lowrank": {"rank": [16]}}},
            "has no valid choice",
        ),
    ],
)
def test_invalid_spaces_are_rejected(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        space(**change)


def test_static_constraints() -> None:
    tiny = space(
        layer={"kind": ["dense"], "width": [64]},
        workloads={"decode": {"phase": "decode", "batch": 1, "seq": 64}},
        constraints=[
            {"metric": "params", "max": 1e5},
            {"metric": "latency_ms", "max": 2.0, "workload": "decode"},
            {"metric": "weight_bytes", "max": 1e9, "workload": "decode"},
        ],
    )
    design = tiny.sample(random.Random(0))
    values = tiny.static_constraint_values(design)
    assert set(values) == {"params", "weight_bytes@decode"}
    # 4 layers * (12352 attention + 3*64*64 FFN + 64 norm) + 2*256*64 + 64 = 131648
    assert values["params"] == pytest.approx(131648 - 1e5)
    assert values["weight_bytes@decode"] < 0

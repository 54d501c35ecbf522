"""A declarative search space over per-layer FFN designs (YAML or JSON).

Example (see ``docs/search-space.md`` for every field)::

    name: tiny
    dims: {d_model: 64, n_layers: 4, n_heads: 4, n_kv_heads: 2, vocab: 256, seq_len: 256}
    tie: per_layer                 # or: global, or {groups: 2}
    layer:
      kind: {choices: [dense, moe, noop]}
      width: {low: 64, high: 256, step: 64}
      moe: {experts: [2, 4], top_k: [1, 2], width: [32, 64]}
      norm: [pre, sandwich]
    fixed: {0: {kind: dense, width: 256}}
    fusion: {spans: [[1, 2]]}
    workloads: {decode: {phase: decode, batch: 1, seq: 256}}
    constraints:
      - {metric: params, max: 2.0e6}
      - {metric: latency_ms, max: 1.5, workload: decode}

`SearchSpace.suggest(trial)` draws a design through Optuna's ``suggest_categorical`` /
``suggest_int`` (a `FixedTrial` replays one: ``space.params_for(design)`` gives its
parameters); `to_nni` / `from_nni` do the same for NNI's nested search-space JSON; `size`
counts the distinct designs exactly. Invalid combinations are never produced: the
conditional structure (`search_space.space_tree`) only offers valid choices.

Optuna is not imported here: trials are used through their ``suggest_*`` methods.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

import yaml
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import PrivateAttr
from pydantic import ValidationError
from pydantic import model_validator

from search_space.costs import design_costs
from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims
from search_space.design import Sparsity
from search_space.errors import SpaceError
from search_space.knobs import Constraint
from search_space.knobs import FusionKnobs
from search_space.knobs import LayerKnobs
from search_space.knobs import TieGroups
from search_space.space_tree import Chooser
from search_space.space_tree import DictChooser
from search_space.space_tree import FusionKey
from search_space.space_tree import MatchChooser
from search_space.space_tree import NniChooser
from search_space.space_tree import Node
from search_space.space_tree import Option
from search_space.space_tree import RandomChooser
from search_space.space_tree import TrialChooser
from search_space.space_tree import build_unit_tree
from search_space.space_tree import count
from search_space.space_tree import fusion_key
from search_space.space_tree import nni_space
from search_space.space_tree import walk
from search_space.workload import Workload

if TYPE_CHECKING:
    import optuna

__all__ = ["SearchSpace", "load_space"]


@dataclass(frozen=True)
class _Unit:
    """Layers that share one FFN choice, and the tree of that choice."""

    prefix: str
    layers: tuple[int, ...]
    tree: tuple[Node, ...]


@dataclass(frozen=True)
class _Span:
    index: int
    first: int
    last: int

    @property
    def layers(self) -> range:
        return range(self.first, self.last + 1)

    @property
    def name(self) -> str:
        return f"fuse.{self.first}-{self.last}"

    def node(self) -> Node:
        return Node(
            name=self.name,
            field="fusion_group",
            options=(Option(False, None), Option(True, self.index)),
        )


@dataclass(frozen=True)
class _Compiled:
    units: tuple[_Unit, ...]
    spans: tuple[_Span, ...]


class SearchSpace(BaseModel):
    """Choices per knob, tying, fixed layers, fusion candidates, workloads and constraints."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = None
    description: str | None = None
    dims: ModelDims
    tie: Literal["per_layer", "global"] | TieGroups = "per_layer"
    layer: LayerKnobs = Field(description="Choices for every searched layer.")
    fixed: dict[int, LayerFFN] = Field(
        default_factory=dict, description="Layers that are not searched (index -> FFN)."
    )
    fusion: FusionKnobs | None = None
    workloads: dict[str, Workload] = Field(default_factory=dict)
    constraints: tuple[Constraint, ...] = ()

    _compiled: _Compiled = PrivateAttr()

    @model_validator(mode="after")
    def _compile(self) -> SearchSpace:
        n = self.dims.n_layers
        for index, layer in self.fixed.items():
            if not 0 <= index < n:
                raise SpaceError(f"fixed layer {index}: `0 <= index < n_layers={n}` must hold")
            if layer.fusion_group is not None:
                raise SpaceError(
                    f"fixed layer {index}: set fusion through `fusion: spans`, not "
                    f"fusion_group={layer.fusion_group}"
                )
            # Check it against the model dims (block/rank divisibility, ...).
            FFNDesign(dims=self.dims.model_copy(update={"n_layers": 1}), layers=(layer,))
        for constraint in self.constraints:
            if constraint.workload is not None and constraint.workload not in self.workloads:
                raise SpaceError(
                    f"constraint {constraint.name!r} names workload {constraint.workload!r}, "
                    f"but `workloads` has {sorted(self.workloads)}"
                )
        units = []
        for prefix, layers in self._tie_units():
            searched = tuple(i for i in layers if i not in self.fixed)
            if searched:
                units.append(
                    _Unit(prefix, searched, build_unit_tree(prefix, self.layer, self.dims))
                )
        spans = []
        covered: set[int] = set()
        for index, (first, last) in enumerate(self.fusion.spans if self.fusion else ()):
            if not 0 <= first < last < n:
                raise SpaceError(
                    f"fusion span [{first}, {last}]: `0 <= first < last < n_layers={n}` must hold"
                )
            if covered & set(range(first, last + 1)):
                raise SpaceError(f"fusion span [{first}, {last}] overlaps an earlier span")
            covered |= set(range(first, last + 1))
            spans.append(_Span(index, first, last))
        spans.sort(key=lambda s: s.first)
        self._compiled = _Compiled(tuple(units), tuple(spans))
        return self

    def _tie_units(self) -> list[tuple[str, range]]:
        n = self.dims.n_layers
        if self.tie == "per_layer":
            return [(f"l{i}.", range(i, i + 1)) for i in range(n)]
        if self.tie == "global":
            return [("all.", range(n))]
        assert isinstance(self.tie, TieGroups)
        k = self.tie.groups
        if k > n:
            raise SpaceError(f"tie: `groups <= n_layers` must hold, but got groups={k}, n={n}")
        size, extra = divmod(n, k)
        units, start = [], 0
        for j in range(k):
            stop = start + size + (1 if j < extra else 0)
            units.append((f"g{j}.", range(start, stop)))
            start = stop
        return units

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any) -> SearchSpace:
        """Validate a parsed space; SpaceError with one line per problem otherwise."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            lines = [
                f"{'.'.join(str(p) for p in err['loc']) or '<space>'}: {err['msg']}"
                for err in exc.errors()
            ]
            raise SpaceError("invalid search space:\n  " + "\n  ".join(lines)) from None

    @classmethod
    def from_text(cls, text: str) -> SearchSpace:
        """Parse YAML (JSON is YAML too)."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpaceError(f"search space is not valid YAML/JSON: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> SearchSpace:
        return cls.from_text(Path(path).read_text())

    # -- drawing designs ----------------------------------------------------------------

    def _build(self, chooser: Chooser, scope: Any = None) -> FFNDesign:
        fields: dict[int, dict[str, Any]] = {}
        for unit in self._compiled.units:
            chosen: dict[str, Any] = {}
            walk(unit.tree, chooser, scope, chosen)
            for i in unit.layers:
                fields[i] = chosen
        layers = [
            self.fixed[i] if i in self.fixed else LayerFFN.model_validate(fields[i])
            for i in range(self.dims.n_layers)
        ]
        for span in self._compiled.spans:
            if _span_key(layers, span) is None:
                continue
            group: dict[str, Any] = {}
            walk((span.node(),), chooser, scope, group)
            if group["fusion_group"] is not None:
                for i in span.layers:
                    data = layers[i].model_dump()
                    data["fusion_group"] = span.index
                    layers[i] = LayerFFN.model_validate(data)
        return FFNDesign(name=self.name, dims=self.dims, layers=tuple(layers))

    def suggest(self, trial: optuna.trial.BaseTrial) -> FFNDesign:
        """Draw a design with ``trial.suggest_categorical`` / ``suggest_int``.

        Works with `optuna.trial.FixedTrial(space.params_for(design))` to replay a design.
        """
        return self._build(TrialChooser(trial))

    def from_params(self, params: dict[str, Any]) -> FFNDesign:
        """The design given by flat parameters (the form `suggest` records in a trial)."""
        chooser = DictChooser(params)
        design = self._build(chooser)
        unused = set(params) - chooser.used
        if unused:
            raise SpaceError(f"parameters {sorted(unused)} are not used by this design")
        return design

    def params_for(self, design: FFNDesign) -> dict[str, Any]:
        """Flat parameters that make `suggest` (on a FixedTrial) return `design`.

        SpaceError when `design` is not in this space, naming the layer and knob.
        """
        if design.dims != self.dims:
            raise SpaceError(f"design dims {design.dims} differ from the space's {self.dims}")
        for index, layer in self.fixed.items():
            got = design.layers[index].model_copy(update={"fusion_group": None})
            if got != layer:
                raise SpaceError(f"layer {index} is fixed to {layer.summary()}, got {got}")
        params: dict[str, Any] = {}
        for unit in self._compiled.units:
            first = design.layers[unit.layers[0]]
            matcher = MatchChooser(first, f"layer {unit.layers[0]}")
            walk(unit.tree, matcher, None, {})
            params.update(matcher.params)
        for span in self._compiled.spans:
            if _span_key(list(design.layers), span) is not None:
                params[span.name] = design.layers[span.first].fusion_group is not None
        rebuilt = self.from_params(params)
        for i, (want, got) in enumerate(zip(design.layers, rebuilt.layers, strict=True)):
            if want != got:
                raise SpaceError(
                    f"layer {i} ({want.summary()}) is not in this space: tying, fixed layers "
                    f"or fusion spans give {got.summary()} with fusion_group="
                    f"{got.fusion_group} instead of fusion_group={want.fusion_group}"
                )
        return params

    def sample(self, rng: random.Random) -> FFNDesign:
        """A random design: each knob uniform among its valid choices."""
        return self._build(RandomChooser(rng))

    # -- NNI ----------------------------------------------------------------------------

    def to_nni(self) -> dict[str, Any]:
        """NNI search-space JSON: one ``choice`` per parameter, nested for conditional knobs.

        Fusion flags are plain on/off choices: NNI cannot condition a flag on other layers'
        values, so `from_nni` ignores a flag whose span is not fusable.
        """
        space: dict[str, Any] = {}
        for unit in self._compiled.units:
            space.update(nni_space(unit.tree))
        for span in self._compiled.spans:
            space[span.name] = {"_type": "choice", "_value": [False, True]}
        return space

    def from_nni(self, params: dict[str, Any]) -> FFNDesign:
        """The design given by an NNI parameter dict (nested choices as ``{"_name": ...}``)."""
        if not isinstance(params, dict):
            raise SpaceError(f"NNI parameters must be a dict, but got {type(params).__name__}")
        flags = {s.name: bool(params.get(s.name, False)) for s in self._compiled.spans}
        base = {k: v for k, v in params.items() if k not in flags}
        return self._build(_NniWithFlags(flags), (base, 0))

    # -- counting -----------------------------------------------------------------------

    def size(self) -> int:
        """The exact number of distinct designs in the space.

        Each unit's tree is counted in total and, per fusion key (activation, norm_type), in
        its fusable configurations. A span whose layers are all fusable with one key has two
        outcomes (fused or not), otherwise one; units shared by several spans (tying) are
        handled by a left-to-right sum over the fusion key each open unit is held to.
        """
        units = self._compiled.units
        spans = self._compiled.spans
        totals = [count(u.tree) for u in units]
        keys = self._fusion_keys()
        compat = [
            {
                key: count(
                    u.tree,
                    {
                        "kind": "dense",
                        "sparsity": _NO_SPARSITY,
                        "norm": "pre",
                        "parallel_attn": False,
                        "activation": key[0],
                        "norm_type": key[1],
                    },
                )
                for key in keys
            }
            for u in units
        ]
        unit_of = {i: j for j, u in enumerate(units) for i in u.layers}
        fixed_key = {i: fusion_key(layer) for i, layer in self.fixed.items()}

        def value(unit: int | None, key: FusionKey | None) -> int:
            if unit is None:
                return 1
            return totals[unit] if key is None else compat[unit][key]

        # state: (open unit, key it is held to or None) -> number of partial designs
        state: dict[tuple[int | None, FusionKey | None], int] = {(None, None): 1}
        touched: set[int] = set()
        for span in spans:
            members = [unit_of[i] for i in span.layers if i in unit_of]
            order = list(dict.fromkeys(members))
            touched.update(order)
            fixed_members = [fixed_key[i] for i in span.layers if i in fixed_key]
            choices: list[FusionKey | None] = [None] + [
                k for k in keys if all(f == k for f in fixed_members)
            ]
            new: dict[tuple[int | None, FusionKey | None], int] = defaultdict(int)
            for (open_unit, held), weight in state.items():
                for choice in choices:
                    w, cur, cur_key = weight, open_unit, held
                    for unit in order:
                        if unit == cur:
                            if choice is not None:
                                if cur_key is not None and cur_key != choice:
                                    w = 0
                                cur_key = choice
                        else:
                            w *= value(cur, cur_key)
                            cur, cur_key = unit, choice
                    if w:
                        new[(cur, cur_key)] += w
            state = dict(new)
        total = sum(w * value(u, k) for (u, k), w in state.items())
        for j, unit_total in enumerate(totals):
            if j not in touched:
                total *= unit_total
        return total

    def _fusion_keys(self) -> list[FusionKey]:
        keys: set[FusionKey] = {
            (a, t) for a in self.layer.activation for t in self.layer.norm_type
        }
        keys |= {k for k in (fusion_key(layer) for layer in self.fixed.values()) if k}
        return sorted(keys)

    # -- constraints --------------------------------------------------------------------

    def workload(self, name: str) -> Workload:
        if name not in self.workloads:
            raise SpaceError(f"unknown workload {name!r}; this space has {sorted(self.workloads)}")
        return self.workloads[name]

    def static_constraint_values(self, design: FFNDesign) -> dict[str, float]:
        """``value - max`` (<= 0 is feasible) of every constraint computable from costs.

        ``latency_ms`` needs a measurement on the target and is left to the evaluator.
        """
        out: dict[str, float] = {}
        for constraint in self.constraints:
            if constraint.metric == "latency_ms":
                continue
            workload = self.workload(constraint.workload) if constraint.workload else None
            costs = design_costs(design, workload)
            value = {
                "params": float(costs.params),
                "active_params": float(costs.params_active),
                "flops": costs.flops_per_token,
                "weight_bytes": costs.weight_bytes,
            }[constraint.metric]
            out[constraint.name] = value - constraint.max
        return out

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", exclude_defaults=True), indent=2)


def _span_key(layers: list[LayerFFN], span: _Span) -> FusionKey | None:
    """The shared fusion key of the span's layers, or None when they cannot be fused."""
    keys = {fusion_key(layers[i]) for i in span.layers}
    if len(keys) != 1:
        return None
    return keys.pop()


class _NniWithFlags(NniChooser):
    """NNI chooser that reads the (flat, top-level) fusion flags from a separate dict."""

    def __init__(self, flags: dict[str, bool]) -> None:
        self.flags = flags

    def choose(self, node: Node, scope: Any) -> tuple[Option, Any]:
        if node.name in self.flags:
            return node.option(self.flags[node.name]), scope
        return super().choose(node, scope)


_NO_SPARSITY = Sparsity()


def load_space(path: str | Path) -> SearchSpace:
    """Load a search space from a YAML or JSON file."""
    return SearchSpace.load(path)

"""A search space compiled into a tree of conditional choices, and the walks over it.

One tied unit of layers (a layer, a group of layers, or all of them) becomes a sequence of
`Node`s; choosing an `Option` of a node opens the option's child nodes (conditional knobs:
``rank`` exists only under ``kind = lowrank``). Options that would give an invalid layer are
removed when the tree is built (``top_k <= experts``, ``rank < width``, blocks that divide the
width and ``d_model``, sparsity tiles that divide the width), so every walk yields a valid
design: nothing invalid is ever suggested.

Parameter names are stable: ``<unit>.<knob>`` (``l3.kind``, ``l3.dense.width``,
``all.moe.top_k``), with a suffix naming the parent value only when filtering changed the
choice list (``l3.moe.top_k.e2`` when experts=2 cuts top_k to {1, 2};
``l3.lowrank.rank.w512``). A name therefore always has the same distribution, which Optuna
requires of its samplers and storage.

The walks (`walk`) take a `Chooser`: Optuna trials (flat names), flat dicts (replay), NNI's
nested parameter dicts, a random generator, or a matcher that reads a design back.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any
from typing import Protocol

from search_space.design import LayerFFN
from search_space.design import ModelDims
from search_space.design import Sparsity
from search_space.errors import SpaceError
from search_space.knobs import IntKnob
from search_space.knobs import LayerKnobs
from search_space.knobs import sparsity_label

__all__ = [
    "Chooser",
    "DictChooser",
    "FusionKey",
    "MatchChooser",
    "NniChooser",
    "Node",
    "Option",
    "RandomChooser",
    "TrialChooser",
    "build_unit_tree",
    "count",
    "fusion_key",
    "nni_space",
    "walk",
]

Label = int | str | bool
# (activation, norm_type) of a fusable layer: fused layers must agree on both.
FusionKey = tuple[str, str]


@dataclass(frozen=True)
class Option:
    label: Label
    value: Any
    children: tuple[Node, ...] = ()


@dataclass(frozen=True)
class Node:
    name: str
    field: str
    options: tuple[Option, ...]
    int_range: tuple[int, int, int] | None = None
    by_label: dict[Any, Option] = dataclass_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_label", {_key(o.label): o for o in self.options})

    @property
    def labels(self) -> list[Label]:
        return [o.label for o in self.options]

    def option(self, label: Any) -> Option:
        """The option with `label`; SpaceError naming the parameter and its choices."""
        option = self.by_label.get(_key(label)) if isinstance(label, Label) else None
        if option is None:
            raise SpaceError(
                f"parameter {self.name!r} must be one of {self.labels}, but got {label!r}"
            )
        return option


def _key(label: Label) -> Label | tuple[str, Label]:
    # True == 1 in Python; keep bool and int labels apart.
    return ("bool", label) if isinstance(label, bool) else label


class Chooser(Protocol):
    def choose(self, node: Node, scope: Any) -> tuple[Option, Any]:
        """Pick an option of `node` (which has >= 2); return it and the scope of its children."""
        ...


def walk(nodes: Iterable[Node], chooser: Chooser, scope: Any, fields: dict[str, Any]) -> None:
    """Walk `nodes` in order, writing each chosen option's value into `fields`.

    Single-option nodes are taken without asking the chooser (they are not parameters).
    """
    for node in nodes:
        if len(node.options) == 1:
            option, child_scope = node.options[0], scope
        else:
            option, child_scope = chooser.choose(node, scope)
        fields[node.field] = option.value
        walk(option.children, chooser, child_scope, fields)


def count(nodes: Iterable[Node], restrict: dict[str, Any] | None = None) -> int:
    """Number of distinct walks of `nodes`, keeping only options whose value matches
    `restrict` (field -> value) for the restricted fields."""
    restrict = restrict or {}
    total = 1
    for node in nodes:
        wanted = restrict.get(node.field, _ANY)
        total *= sum(
            count(option.children, restrict)
            for option in node.options
            if wanted is _ANY or option.value == wanted
        )
        if total == 0:
            return 0
    return total


_ANY = object()


class TrialChooser:
    """Asks an Optuna `Trial` or `FixedTrial` (duck-typed: no optuna import needed)."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def choose(self, node: Node, scope: Any) -> tuple[Option, Any]:
        if node.int_range is not None:
            low, high, step = node.int_range
            value = self.trial.suggest_int(node.name, low, high, step=step)
        else:
            value = self.trial.suggest_categorical(node.name, node.labels)
        return node.option(value), scope


class DictChooser:
    """Reads flat ``{name: label}`` parameters (the Optuna / FixedTrial form)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.used: set[str] = set()

    def choose(self, node: Node, scope: Any) -> tuple[Option, Any]:
        if node.name not in self.params:
            raise SpaceError(f"parameter {node.name!r} is missing (choices {node.labels})")
        self.used.add(node.name)
        return node.option(self.params[node.name]), scope


class NniChooser:
    """Reads NNI's nested parameters (the layout `nni_space` writes).

    A top-level nested choice's value is ``{"_name": label, ...}`` holding its children's
    parameters; a conditional knob one level down is a single choice over combinations
    (``"8/2"`` for experts=8, top_k=2), because NNI's tuners resolve only one level of
    nesting (``ParameterSpec.is_activated_in`` looks up the parent's parent only).
    """

    def choose(self, node: Node, scope: Any) -> tuple[Option, Any]:
        if isinstance(scope, _Pending):
            return node.option(scope.labels.pop(0)), scope
        params, depth = scope
        if not isinstance(params, dict) or node.name not in params:
            raise SpaceError(f"NNI parameter {node.name!r} is missing (choices {node.labels})")
        raw = params[node.name]
        if not _nested(node):
            return node.option(raw), scope
        if depth == 0:
            if not isinstance(raw, dict) or "_name" not in raw:
                raise SpaceError(
                    f"NNI parameter {node.name!r} is a nested choice and needs "
                    f'{{"_name": ...}}, but got {raw!r}'
                )
            return node.option(raw["_name"]), (raw, 1)
        combos = _combos(node)
        if raw not in combos:
            raise SpaceError(
                f"NNI parameter {node.name!r} must be one of {list(combos)}, but got {raw!r}"
            )
        labels = list(combos[raw])
        return node.option(labels.pop(0)), _Pending(labels)


@dataclass
class _Pending:
    """Labels of a combination still to hand out to the nodes below a flattened choice."""

    labels: list[Label]


def _walk_labels(nodes: tuple[Node, ...]) -> list[list[Label]]:
    """Label sequences of every walk of `nodes` (multi-option nodes only, in walk order)."""
    walks: list[list[Label]] = [[]]
    for node in nodes:
        walks = [head + tail for head in walks for tail in _node_labels(node)]
    return walks


def _node_labels(node: Node) -> list[list[Label]]:
    out = []
    for option in node.options:
        head = [option.label] if len(node.options) > 1 else []
        out += [head + tail for tail in _walk_labels(option.children)]
    return out


def _combos(node: Node) -> dict[str, tuple[Label, ...]]:
    """``"8/2"``-style label of each combination under `node` -> its label sequence."""
    combos = {"/".join(str(x) for x in labels): tuple(labels) for labels in _node_labels(node)}
    assert len(combos) == len(_node_labels(node))  # labels never contain "/"
    return combos


class RandomChooser:
    """Picks uniformly among the options of each node."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def choose(self, node: Node, scope: Any) -> tuple[Option, Any]:
        return self.rng.choice(node.options), scope


class MatchChooser:
    """Follows the options whose values equal a given layer's fields; records the labels."""

    def __init__(self, layer: LayerFFN, where: str) -> None:
        self.layer = layer
        self.where = where
        self.params: dict[str, Label] = {}

    def choose(self, node: Node, scope: Any) -> tuple[Option, Any]:
        value = getattr(self.layer, node.field)
        for option in node.options:
            if option.value == value:
                self.params[node.name] = option.label
                return option, scope
        raise SpaceError(
            f"{self.where}: {node.field}={value!r} is not a choice of this space "
            f"(parameter {node.name!r} has {node.labels})"
        )


def _has_params(nodes: Iterable[Node]) -> bool:
    return any(len(n.options) > 1 or _has_params(n.options[0].children) for n in nodes)


def _nested(node: Node) -> bool:
    """Whether NNI sees this node as a nested choice (some option opens parameters)."""
    return any(_has_params(option.children) for option in node.options)


def nni_space(nodes: Iterable[Node], depth: int = 0) -> dict[str, Any]:
    """NNI search-space JSON of `nodes`: a ``choice`` per parameter, nested one level deep
    for conditional knobs, deeper conditionals as choices over combinations."""
    space: dict[str, Any] = {}
    for node in nodes:
        if len(node.options) == 1:
            space.update(nni_space(node.options[0].children, depth))
        elif not _nested(node):
            space[node.name] = {"_type": "choice", "_value": node.labels}
        elif depth == 0:
            space[node.name] = {
                "_type": "choice",
                "_value": [
                    {"_name": o.label, **nni_space(o.children, depth + 1)} for o in node.options
                ],
            }
        else:
            space[node.name] = {"_type": "choice", "_value": list(_combos(node))}
    return space


def fusion_key(layer: LayerFFN) -> FusionKey | None:
    """(activation, norm_type) when `layer` may join a fusion group, else None."""
    fusable = (
        layer.kind == "dense"
        and layer.sparsity.pattern == "none"
        and layer.norm == "pre"
        and not layer.parallel_attn
    )
    return (layer.activation, layer.norm_type) if fusable else None


# ---------------------------------------------------------------------------------------
# Building the tree of one unit


def _node(name: str, field_name: str, options: list[Option], knob: IntKnob | None = None) -> Node:
    int_range = None
    if knob is not None and knob.int_range() is not None:
        if [o.label for o in options] == list(knob.values()):
            int_range = knob.int_range()
    return Node(name=name, field=field_name, options=tuple(options), int_range=int_range)


def _dependent(
    parent: tuple[str, str, tuple[int, ...], IntKnob | None],
    child: tuple[str, str, list[Option], str],
    keep: Callable[[int, Option], bool],
) -> list[Node] | None:
    """A parent integer knob and a child knob whose choices depend on the parent's value.

    Parent values left with no child choice are dropped. When every parent value allows the
    same child choices the child is hoisted beside the parent; otherwise it is nested under
    each parent option, named with a ``.<tag><value>`` suffix where its list was cut.
    Returns None when no parent value is left.
    """
    parent_name, parent_field, parent_values, parent_knob = parent
    child_name, child_field, child_options, tag = child
    allowed = {v: [o for o in child_options if keep(v, o)] for v in parent_values}
    kept = [v for v in parent_values if allowed[v]]
    if not kept:
        return None
    first = allowed[kept[0]]
    if all(allowed[v] == first for v in kept):
        parent_node = _node(parent_name, parent_field, [Option(v, v) for v in kept], parent_knob)
        return [parent_node, _node(child_name, child_field, first)]
    options = []
    for v in kept:
        name = child_name if allowed[v] == child_options else f"{child_name}.{tag}{v}"
        options.append(Option(v, v, (_node(name, child_field, allowed[v]),)))
    return [_node(parent_name, parent_field, options, parent_knob)]


def _common(prefix: str, knobs: LayerKnobs) -> list[Node]:
    """Norm placement (with norm type unless ``none``) and parallel attention."""
    norm_type = _node(f"{prefix}norm_type", "norm_type", [Option(t, t) for t in knobs.norm_type])
    norm = _node(
        f"{prefix}norm",
        "norm",
        [Option(p, p, () if p == "none" else (norm_type,)) for p in knobs.norm],
    )
    parallel = _node(
        f"{prefix}parallel_attn", "parallel_attn", [Option(b, b) for b in knobs.parallel_attn]
    )
    return [norm, parallel]


def _activation(prefix: str, knobs: LayerKnobs) -> Node:
    return _node(f"{prefix}activation", "activation", [Option(a, a) for a in knobs.activation])


def _sparsity_fits(width: int, sparsity: Sparsity) -> bool:
    if sparsity.pattern == "2:4":
        return width % 4 == 0
    if sparsity.pattern == "block":
        assert sparsity.block_size is not None
        return width % sparsity.block_size == 0
    return True


def _kind_nodes(prefix: str, kind: str, knobs: LayerKnobs, d: int) -> list[Node] | None:
    """The nodes under ``kind = <kind>``; None when no valid layer of that kind exists."""
    if kind == "noop":
        return []
    if kind == "linear":
        return _common(prefix, knobs)
    widths = knobs.widths(kind)
    width = (f"{prefix}{kind}.width", "width", widths, knobs.width_knob(kind))
    nodes: list[Node] | None
    if kind == "dense":
        options = [Option(sparsity_label(s), s) for s in knobs.sparsity]
        nodes = _dependent(
            width,
            (f"{prefix}dense.sparsity", "sparsity", options, "w"),
            lambda w, o: _sparsity_fits(w, o.value),
        )
    elif kind == "moe":
        moe = knobs.moe
        assert moe is not None  # checked by LayerKnobs
        top_k = [Option(k, k) for k in moe.top_k.values()]
        experts = _dependent(
            (f"{prefix}moe.experts", "experts", moe.experts.values(), moe.experts),
            (f"{prefix}moe.top_k", "top_k", top_k, "e"),
            lambda e, o: o.value <= e,
        )
        assert experts is not None  # MoEKnobs checks that some top_k <= experts
        shared = _node(
            f"{prefix}moe.shared_experts",
            "shared_experts",
            [Option(s, s) for s in moe.shared_experts.values()],
            moe.shared_experts,
        )
        nodes = [_node(*width[:2], [Option(w, w) for w in widths], width[3])]
        nodes += [*experts, shared]
    elif kind == "lowrank":
        assert knobs.lowrank is not None
        ranks = [Option(r, r) for r in knobs.lowrank.rank.values()]
        nodes = _dependent(
            width,
            (f"{prefix}lowrank.rank", "rank", ranks, "w"),
            lambda w, o: o.value < w and o.value < d,
        )
    else:
        assert kind == "blockdiag" and knobs.blockdiag is not None
        blocks = [Option(b, b) for b in knobs.blockdiag.blocks.values()]
        nodes = _dependent(
            width,
            (f"{prefix}blockdiag.blocks", "blocks", blocks, "w"),
            lambda w, o: o.value >= 2 and w % o.value == 0 and d % o.value == 0,
        )
    if nodes is None:
        return None
    return [*nodes, _activation(prefix, knobs), *_common(prefix, knobs)]


def build_unit_tree(prefix: str, knobs: LayerKnobs, dims: ModelDims) -> tuple[Node, ...]:
    """The conditional knobs of one tied unit whose parameter names start with `prefix`."""
    _check_static(knobs, dims)
    options = []
    for kind in knobs.kind:
        nodes = _kind_nodes(prefix, kind, knobs, dims.d_model)
        if nodes is None:
            raise SpaceError(
                f"kind {kind!r} has no valid choice: every width rules out every "
                f"{_SUB[kind]} (needs {_RULE[kind]})"
            )
        options.append(Option(kind, kind, tuple(nodes)))
    return (_node(f"{prefix}kind", "kind", options),)


_SUB = {"dense": "sparsity", "lowrank": "rank", "blockdiag": "blocks count"}
_RULE = {
    "dense": "`width % 4 == 0` for 2:4, `width % block_size == 0` for block",
    "lowrank": "`rank < width` and `rank < d_model`",
    "blockdiag": "`width % blocks == 0`",
}


def _check_static(knobs: LayerKnobs, dims: ModelDims) -> None:
    """Reject choices that no width can make valid (they depend only on d_model)."""
    d = dims.d_model
    for sparsity in knobs.sparsity:
        if "dense" not in knobs.kind and sparsity.pattern != "none":
            raise SpaceError(
                f"sparsity {sparsity_label(sparsity)!r} only applies to kind 'dense', which is "
                f"not among kind choices {list(knobs.kind)}"
            )
        if sparsity.pattern == "2:4" and d % 4 != 0:
            raise SpaceError(f"`d_model % 4 == 0` must hold for 2:4, but got d_model={d}")
        if sparsity.pattern == "block" and d % (sparsity.block_size or 1) != 0:
            raise SpaceError(
                f"`d_model % block_size == 0` must hold, but got d_model={d}, "
                f"block_size={sparsity.block_size}"
            )
    if knobs.lowrank is not None and "lowrank" in knobs.kind:
        for rank in knobs.lowrank.rank.values():
            if not 0 < rank < d:
                raise SpaceError(
                    f"lowrank: `0 < rank < d_model` must hold, but got rank={rank}, d_model={d}"
                )
    if knobs.blockdiag is not None and "blockdiag" in knobs.kind:
        for blocks in knobs.blockdiag.blocks.values():
            if blocks < 2 or d % blocks != 0:
                raise SpaceError(
                    f"blockdiag: `blocks >= 2` and `d_model % blocks == 0` must hold, but got "
                    f"blocks={blocks}, d_model={d}"
                )
    for kind in knobs.kind:
        if kind in ("dense", "moe", "lowrank", "blockdiag"):
            for width in knobs.widths(kind):
                if width <= 0:
                    raise SpaceError(f"{kind}: `width > 0` must hold, but got width={width}")

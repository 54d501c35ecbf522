"""The pieces of a search-space file: knob choices, per-kind knobs, tying, fusion, constraints.

A knob is written in YAML/JSON as a single value (fixed), a list or ``{choices: [...]}``, an
integer range ``{low, high, step}``, or, for widths, fractions of a base width rounded to a
multiple: ``{base: 14336, fractions: [0.1, 0.5, 1.0], multiple: 256}``.
`search_space.space.SearchSpace` puts them together.
"""

from __future__ import annotations

from typing import Annotated
from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import BeforeValidator
from pydantic import ConfigDict
from pydantic import Field
from pydantic import model_validator

from search_space.design import Activation
from search_space.design import Kind
from search_space.design import NormPlacement
from search_space.design import NormType
from search_space.design import Sparsity
from search_space.errors import SpaceError

__all__ = [
    "BlockDiagKnobs",
    "Constraint",
    "FusionKnobs",
    "IntKnob",
    "LayerKnobs",
    "LowRankKnobs",
    "MoEKnobs",
    "TieGroups",
    "sparsity_label",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _as_choices(value: Any) -> Any:
    """Accept ``x``, ``[x, y]`` or ``{choices: [x, y]}`` for a list of choices."""
    if isinstance(value, dict) and set(value) == {"choices"}:
        value = value["choices"]
    if isinstance(value, list | tuple):
        if not value:
            raise SpaceError("a knob needs at least one choice, but got an empty list")
        return tuple(value)
    return (value,)


def _no_duplicates(values: tuple[Any, ...]) -> tuple[Any, ...]:
    seen: list[Any] = []
    for value in values:
        if value in seen:
            raise SpaceError(f"choices must be distinct, but {value!r} appears twice in {values}")
        seen.append(value)
    return values


KindChoices = Annotated[tuple[Kind, ...], BeforeValidator(_as_choices)]
ActivationChoices = Annotated[tuple[Activation, ...], BeforeValidator(_as_choices)]
NormChoices = Annotated[tuple[NormPlacement, ...], BeforeValidator(_as_choices)]
NormTypeChoices = Annotated[tuple[NormType, ...], BeforeValidator(_as_choices)]
BoolChoices = Annotated[tuple[bool, ...], BeforeValidator(_as_choices)]
SparsityChoices = Annotated[tuple[Sparsity, ...], BeforeValidator(_as_choices)]


def sparsity_label(sparsity: Sparsity) -> str:
    """The categorical label of a sparsity choice: ``none``, ``2:4`` or ``block16@0.5``."""
    if sparsity.pattern == "block":
        return f"block{sparsity.block_size}@{sparsity.density:g}"
    return sparsity.pattern


class IntKnob(_Frozen):
    """Integer choices: explicit, a range, or fractions of a base rounded to a multiple."""

    choices: tuple[int, ...] | None = None
    low: int | None = None
    high: int | None = None
    step: int = Field(default=1, gt=0)
    base: int | None = Field(default=None, gt=0)
    fractions: tuple[float, ...] | None = None
    multiple: int = Field(default=1, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, bool):
            raise SpaceError(f"an integer knob needs integers, but got {data!r}")
        if isinstance(data, int):
            return {"choices": [data]}
        if isinstance(data, list | tuple):
            return {"choices": list(data)}
        return data

    @model_validator(mode="after")
    def _check(self) -> IntKnob:
        forms = [
            self.choices is not None,
            self.low is not None or self.high is not None,
            self.base is not None or self.fractions is not None,
        ]
        if sum(forms) != 1:
            raise SpaceError(
                "an integer knob needs exactly one of `choices`, `low`/`high`, or "
                f"`base`/`fractions`, but got {self.model_dump(exclude_defaults=True)}"
            )
        if self.low is not None or self.high is not None:
            if self.low is None or self.high is None:
                raise SpaceError(
                    f"a range needs both `low` and `high`, but got low={self.low}, "
                    f"high={self.high}"
                )
            if self.low > self.high:
                raise SpaceError(
                    f"`low <= high` must hold, but got low={self.low}, high={self.high}"
                )
        if (self.base is None) != (self.fractions is None):
            raise SpaceError(
                "fractions of a base need both `base` and `fractions`, but got "
                f"base={self.base}, fractions={self.fractions}"
            )
        if self.choices is not None and not self.choices:
            raise SpaceError("a knob needs at least one choice, but got an empty list")
        if self.fractions is not None and any(not 0 < f <= 1 for f in self.fractions):
            raise SpaceError(f"`0 < fraction <= 1` must hold, but got {self.fractions}")
        _no_duplicates(self.values())
        return self

    def values(self) -> tuple[int, ...]:
        """The choices in the order written (ranges ascending)."""
        if self.choices is not None:
            return self.choices
        if self.low is not None and self.high is not None:
            return tuple(range(self.low, self.high + 1, self.step))
        assert self.base is not None and self.fractions is not None  # validated
        # Round to the nearest multiple, never below one multiple: 10% of 14336 = 1433.6
        # -> 1536 with multiple 256.
        return tuple(
            max(self.multiple, round(f * self.base / self.multiple) * self.multiple)
            for f in self.fractions
        )

    def int_range(self) -> tuple[int, int, int] | None:
        """``(low, high, step)`` when written as a range whose ends are both choices."""
        if self.low is None or self.high is None:
            return None
        values = self.values()
        return (values[0], values[-1], self.step)


class MoEKnobs(_Frozen):
    """Knobs of kind ``moe``; ``width`` (expert width) defaults to the layer's widths."""

    experts: IntKnob
    top_k: IntKnob
    shared_experts: IntKnob = Field(default_factory=lambda: IntKnob(choices=(0,)))
    width: IntKnob | None = None

    @model_validator(mode="after")
    def _check(self) -> MoEKnobs:
        if min(self.experts.values()) < 2:
            raise SpaceError(
                "moe: `experts >= 2` must hold (kind dense is the one-expert case), but got "
                f"experts={list(self.experts.values())}"
            )
        if min(self.top_k.values()) < 1:
            raise SpaceError(f"moe: `top_k >= 1` must hold, but got {list(self.top_k.values())}")
        if min(self.shared_experts.values()) < 0:
            raise SpaceError(
                "moe: `shared_experts >= 0` must hold, but got "
                f"{list(self.shared_experts.values())}"
            )
        if min(self.top_k.values()) > max(self.experts.values()):
            raise SpaceError(
                "moe: some `top_k <= experts` must be possible, but got "
                f"top_k={list(self.top_k.values())}, experts={list(self.experts.values())}"
            )
        return self


class LowRankKnobs(_Frozen):
    """Knobs of kind ``lowrank``: the rank of each factorised matrix."""

    rank: IntKnob
    width: IntKnob | None = None


class BlockDiagKnobs(_Frozen):
    """Knobs of kind ``blockdiag``: diagonal blocks per matrix."""

    blocks: IntKnob
    width: IntKnob | None = None


class LayerKnobs(_Frozen):
    """The choices for one layer's FFN (or one tied group of layers)."""

    kind: KindChoices = ("dense",)
    width: IntKnob | None = Field(
        default=None, description="Intermediate widths (dense; default for the other kinds)."
    )
    activation: ActivationChoices = ("swiglu",)
    sparsity: SparsityChoices = Field(
        default_factory=lambda: (Sparsity(),), description="For kind dense only."
    )
    moe: MoEKnobs | None = None
    lowrank: LowRankKnobs | None = None
    blockdiag: BlockDiagKnobs | None = None
    norm: NormChoices = ("pre",)
    norm_type: NormTypeChoices = ("rmsnorm",)
    parallel_attn: BoolChoices = (False,)

    @model_validator(mode="after")
    def _check(self) -> LayerKnobs:
        for name in ("kind", "activation", "norm", "norm_type", "parallel_attn"):
            _no_duplicates(getattr(self, name))
        _no_duplicates(tuple(sparsity_label(s) for s in self.sparsity))
        for kind, section in (
            ("moe", self.moe),
            ("lowrank", self.lowrank),
            ("blockdiag", self.blockdiag),
        ):
            if kind in self.kind and section is None:
                raise SpaceError(f"kind {kind!r} is a choice, so the `{kind}:` section is needed")
        return self

    def widths(self, kind: str) -> tuple[int, ...]:
        """Width choices for `kind` (its own section's `width`, else the layer's)."""
        section = {"moe": self.moe, "lowrank": self.lowrank, "blockdiag": self.blockdiag}.get(kind)
        knob = getattr(section, "width", None) or self.width
        if knob is None:
            raise SpaceError(f"kind {kind!r} is a choice, so `width` is needed")
        return knob.values()

    def width_knob(self, kind: str) -> IntKnob | None:
        section = {"moe": self.moe, "lowrank": self.lowrank, "blockdiag": self.blockdiag}.get(kind)
        return getattr(section, "width", None) or self.width


class TieGroups(_Frozen):
    """``{groups: k}``: the layers are cut into k runs of consecutive layers (the first
    ``n_layers % k`` runs one layer longer); the layers of a run share one FFN choice."""

    groups: int = Field(gt=0)


class FusionKnobs(_Frozen):
    """Candidate FFN Fusion spans ``[first, last]`` (inclusive). Each span whose layers are
    all fusable (dense, no sparsity, pre-norm, no parallel attention, one activation and
    norm type) gets an on/off parameter; fused spans become fusion groups 0, 1, ..."""

    spans: tuple[tuple[int, int], ...] = Field(min_length=1)


Metric = Literal["params", "active_params", "flops", "weight_bytes", "latency_ms"]


class Constraint(_Frozen):
    """``metric <= max``; workload-dependent metrics name a workload of the space."""

    metric: Metric
    max: float = Field(gt=0)
    workload: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Constraint:
        if self.metric in ("latency_ms", "weight_bytes") and self.workload is None:
            raise SpaceError(
                f"constraint on {self.metric!r} needs `workload` (a name under `workloads:`)"
            )
        return self

    @property
    def name(self) -> str:
        return self.metric if self.workload is None else f"{self.metric}@{self.workload}"

"""Block libraries: per layer, named variants with measured costs and quality scores.

A block library is the table an exact solver searches: for every layer, a few variants
(a pruned FFN, a no-op, ...), each with cost ``stats`` (runtime at a workload, memory,
params, ...) and quality ``metrics`` (replace-one-block ``kl_div``, ``lm_loss``, ...). A
design picks one variant per layer; its cost and quality are the sums over layers (the
additive surrogate of Puzzle, arXiv 2411.19146 §4).

Two JSON layouts are read and written:

* Puzzle's ``block_library.json``, unchanged::

      {"layer_0": {"<variant>": {"stats": {...}, "metrics": {...}}}, "layer_1": ...}

  `BlockLibrary.to_dict` gives back the same JSON data that `BlockLibrary.from_dict` read
  (ints stay ints, floats stay floats).
* Our native form, which also carries each variant's `LayerFFN` design when known::

      {"format": "ffnas-library/v1", "dims": {...} | null, "workload": {...} | null,
       "hardware": "..." | null,
       "layers": [{"variants": {"<variant>": {"stats", "metrics", "design"}}}, ...]}

Values are addressed by dotted keys, ``stats.runtime_ms`` or ``metrics.kl_div``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from typing import Literal

import numpy as np
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import StrictFloat
from pydantic import StrictInt
from pydantic import ValidationError
from pydantic import field_validator
from pydantic import model_validator

from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims
from search_space.errors import LibraryError
from search_space.workload import Workload

__all__ = [
    "NATIVE_FORMAT",
    "SECTIONS",
    "BlockLibrary",
    "LibraryLayer",
    "LibraryVariant",
    "parse_key",
]

NATIVE_FORMAT = "ffnas-library/v1"
SECTIONS: tuple[str, ...] = ("stats", "metrics")
_PUZZLE_LAYER = re.compile(r"^layer_(0|[1-9][0-9]*)$")

# Strict so that JSON ints stay ints and floats stay floats: the Puzzle round trip must give
# back identical JSON data (`"memory_mib": 0` is not rewritten as `0.0`). Bools are refused.
Number = StrictInt | StrictFloat


def parse_key(key: str) -> tuple[Literal["stats", "metrics"], str]:
    """Split a dotted key such as ``stats.runtime_ms`` into (section, name)."""
    section, dot, name = key.partition(".")
    if not dot or not name or section not in SECTIONS:
        raise LibraryError(
            f"a library key must be `stats.<name>` or `metrics.<name>`, but got {key!r}"
        )
    return section, name  # type: ignore[return-value]  # checked against SECTIONS above


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LibraryVariant(_Frozen):
    """One candidate block for one layer: its costs, its quality scores, its design."""

    stats: dict[str, Number] = Field(default_factory=dict, description="Costs.")
    metrics: dict[str, Number] = Field(default_factory=dict, description="Quality scores.")
    design: LayerFFN | None = Field(default=None, description="The FFN, when known.")

    @field_validator("stats", "metrics")
    @classmethod
    def _finite(cls, values: dict[str, int | float]) -> dict[str, int | float]:
        # A NaN would make every dominance test false and silently break the solvers.
        for name, value in values.items():
            if not math.isfinite(value):
                raise LibraryError(f"`{name}` must be a finite number, but got {value!r}")
        return values

    def get(self, key: str) -> int | float:
        """The value of a dotted key; `KeyError` naming the key when absent."""
        section, name = parse_key(key)
        return getattr(self, section)[name]  # type: ignore[no-any-return]


class LibraryLayer(_Frozen):
    """The variants of one layer, in file order (the order is kept on round trips)."""

    variants: dict[str, LibraryVariant]

    @field_validator("variants")
    @classmethod
    def _not_empty(cls, variants: dict[str, LibraryVariant]) -> dict[str, LibraryVariant]:
        if not variants:
            raise LibraryError("a library layer needs at least one variant, but got none")
        return variants

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.variants)


class BlockLibrary(_Frozen):
    """Per layer, named variants with `stats` and `metrics`; see the module docstring."""

    layers: tuple[LibraryLayer, ...]
    dims: ModelDims | None = Field(default=None, description="The parent model, when known.")
    workload: Workload | None = Field(
        default=None, description="The workload the `stats` runtimes were measured at."
    )
    hardware: str | None = Field(
        default=None, max_length=500, description="Where they were measured (GPU, dtype)."
    )

    @model_validator(mode="after")
    def _check(self) -> BlockLibrary:
        if not self.layers:
            raise LibraryError("a block library needs at least one layer, but got none")
        if self.dims is not None and self.dims.n_layers != len(self.layers):
            raise LibraryError(
                f"`dims.n_layers == len(layers)` must hold, but got "
                f"n_layers={self.dims.n_layers}, len(layers)={len(self.layers)}"
            )
        return self

    # ----------------------------------------------------------------------------- reading

    @classmethod
    def load(cls, path: str | Path) -> BlockLibrary:
        """Read a library file in either layout (Puzzle's or native)."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise LibraryError(f"cannot read block library {str(path)!r}: {exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LibraryError(f"block library {str(path)!r} is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> BlockLibrary:
        """Build from parsed JSON: native when it has ``"format"``, else Puzzle's layout."""
        if not isinstance(data, Mapping):
            raise LibraryError(
                f"a block library must be a JSON object, but got {type(data).__name__}"
            )
        if "format" in data:
            return cls._from_native(data)
        return cls._from_puzzle(data)

    @classmethod
    def _from_puzzle(cls, data: Mapping[str, Any]) -> BlockLibrary:
        indexed: dict[int, Any] = {}
        for key, variants in data.items():
            match = _PUZZLE_LAYER.match(str(key))
            if match is None:
                raise LibraryError(
                    f"a Puzzle block library has keys `layer_<i>`, but got key {key!r}"
                )
            indexed[int(match.group(1))] = variants
        missing = sorted(set(range(len(indexed))) - set(indexed))
        if missing:
            raise LibraryError(
                f"layers must be numbered 0..{len(indexed) - 1} without gaps, but "
                f"layer_{missing[0]} is missing"
            )
        layers = [_parse_layer(indexed[i], where=f"layer_{i}") for i in range(len(indexed))]
        return _build(cls, {"layers": layers}, where="block library")

    @classmethod
    def _from_native(cls, data: Mapping[str, Any]) -> BlockLibrary:
        if data["format"] != NATIVE_FORMAT:
            raise LibraryError(
                f"`format == {NATIVE_FORMAT!r}` must hold, but got format={data['format']!r}"
            )
        unknown = sorted(set(data) - {"format", "dims", "workload", "hardware", "layers"})
        if unknown:
            raise LibraryError(f"unknown field(s) in a native block library: {unknown}")
        raw_layers = data.get("layers")
        if not isinstance(raw_layers, list):
            raise LibraryError(f"`layers` must be a list, but got {type(raw_layers).__name__}")
        layers = []
        for i, raw in enumerate(raw_layers):
            if not isinstance(raw, Mapping) or set(raw) != {"variants"}:
                raise LibraryError(
                    f"layers[{i}] must be an object with exactly the key `variants`, "
                    f"but got {raw!r:.200}"
                )
            layers.append(_parse_layer(raw["variants"], where=f"layers[{i}]"))
        fields = {k: data.get(k) for k in ("dims", "workload", "hardware")}
        return _build(cls, {"layers": layers, **fields}, where="block library")

    # ----------------------------------------------------------------------------- writing

    def to_dict(self) -> dict[str, Any]:
        """Puzzle's ``block_library.json`` layout (designs and measurement info are dropped)."""
        return {
            f"layer_{i}": {
                name: {"stats": dict(v.stats), "metrics": dict(v.metrics)}
                for name, v in layer.variants.items()
            }
            for i, layer in enumerate(self.layers)
        }

    def to_native(self) -> dict[str, Any]:
        """Our native layout, with designs, dims, workload and hardware."""
        return {
            "format": NATIVE_FORMAT,
            "dims": None if self.dims is None else self.dims.model_dump(mode="json"),
            "workload": None if self.workload is None else self.workload.model_dump(),
            "hardware": self.hardware,
            "layers": [
                {
                    "variants": {
                        name: {
                            "stats": dict(v.stats),
                            "metrics": dict(v.metrics),
                            "design": None
                            if v.design is None
                            else v.design.model_dump(mode="json"),
                        }
                        for name, v in layer.variants.items()
                    }
                }
                for layer in self.layers
            ],
        }

    def save(self, path: str | Path, *, native: bool = True) -> None:
        """Write the native layout (default) or Puzzle's layout as JSON."""
        data = self.to_native() if native else self.to_dict()
        Path(path).write_text(json.dumps(data, indent=1) + "\n")

    def with_measurement(self, *, workload: Workload | None, hardware: str | None) -> BlockLibrary:
        """A copy that records where the runtimes were measured."""
        return self.model_copy(update={"workload": workload, "hardware": hardware})

    # ------------------------------------------------------------------------------ access

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def variant_names(self, layer: int) -> tuple[str, ...]:
        return self._layer(layer).names

    def keys(self) -> tuple[str, ...]:
        """Dotted keys every variant of every layer has, in first-seen order."""
        common: dict[str, None] | None = None
        for layer in self.layers:
            for variant in layer.variants.values():
                here = {f"{s}.{n}": None for s in SECTIONS for n in getattr(variant, s)}
                common = here if common is None else {k: None for k in common if k in here}
        return tuple(common or ())

    def value(self, layer: int, variant: str, key: str) -> int | float:
        """The value of `key` (``stats.runtime_ms``) for one variant of one layer."""
        entry = self._layer(layer).variants.get(variant)
        if entry is None:
            raise LibraryError(
                f"layer {layer} has no variant {variant!r}; it has "
                f"{list(self._layer(layer).variants)}"
            )
        section, name = parse_key(key)
        values = getattr(entry, section)
        if name not in values:
            raise LibraryError(
                f"key {key!r} is missing for layer {layer}, variant {variant!r}; "
                f"its {section} are {sorted(values)}"
            )
        return values[name]  # type: ignore[no-any-return]

    def column(self, key: str) -> list[np.ndarray]:
        """Per layer, the float64 values of `key` for each variant, in variant order.

        Raises `LibraryError` naming the first layer and variant that lack the key.
        """
        section, name = parse_key(key)
        out: list[np.ndarray] = []
        for i, layer in enumerate(self.layers):
            row = np.empty(len(layer.variants), dtype=np.float64)
            for j, (vname, variant) in enumerate(layer.variants.items()):
                values = getattr(variant, section)
                if name not in values:
                    raise LibraryError(
                        f"key {key!r} is missing for layer {i}, variant {vname!r}; its "
                        f"{section} are {sorted(values)}"
                    )
                row[j] = values[name]
            out.append(row)
        return out

    def total(self, choices: tuple[str, ...] | list[str], key: str) -> float:
        """The summed `key` of a design, added left to right in layer order.

        This is the exact float64 sum the solvers use: a design's total is
        ``((v_0 + v_1) + v_2) + ...`` over layers 0, 1, 2, ...
        """
        self._check_choices(choices)
        total = 0.0
        for i, name in enumerate(choices):
            value = float(self.value(i, name, key))
            total = value if i == 0 else total + value
        return total

    def design(
        self, choices: tuple[str, ...] | list[str], *, name: str | None = None
    ) -> FFNDesign:
        """The `FFNDesign` of one variant per layer (needs `dims` and every chosen design)."""
        self._check_choices(choices)
        if self.dims is None:
            raise LibraryError("this library has no `dims`, so its choices cannot form a design")
        layers = []
        for i, choice in enumerate(choices):
            variant = self._layer(i).variants.get(choice)
            if variant is None:
                raise LibraryError(f"layer {i} has no variant {choice!r}")
            if variant.design is None:
                raise LibraryError(f"layer {i}, variant {choice!r} has no `design`")
            layers.append(variant.design)
        return FFNDesign(name=name, dims=self.dims, layers=tuple(layers))

    def _check_choices(self, choices: tuple[str, ...] | list[str]) -> None:
        if len(choices) != self.n_layers:
            raise LibraryError(
                f"`len(choices) == n_layers` must hold, but got len(choices)={len(choices)}, "
                f"n_layers={self.n_layers}"
            )

    def _layer(self, layer: int) -> LibraryLayer:
        if not 0 <= layer < len(self.layers):
            raise LibraryError(
                f"`0 <= layer < {len(self.layers)}` must hold, but got layer={layer}"
            )
        return self.layers[layer]


def _parse_layer(raw: Any, *, where: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise LibraryError(
            f"{where} must map variant names to {{stats, metrics}}, but got {type(raw).__name__}"
        )
    variants: dict[str, Any] = {}
    for name, entry in raw.items():
        if not isinstance(entry, Mapping):
            raise LibraryError(
                f"{where}, variant {name!r} must be an object, but got {type(entry).__name__}"
            )
        unknown = sorted(set(entry) - {"stats", "metrics", "design"})
        if unknown:
            raise LibraryError(f"{where}, variant {name!r} has unknown field(s) {unknown}")
        try:
            variants[name] = LibraryVariant.model_validate(dict(entry))
        except ValidationError as exc:
            raise LibraryError(f"{where}, variant {name!r}: {_first_error(exc)}") from exc
    return {"variants": variants}


def _build(cls: type[BlockLibrary], data: dict[str, Any], *, where: str) -> BlockLibrary:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise LibraryError(f"{where}: {_first_error(exc)}") from exc


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else str(err["msg"])

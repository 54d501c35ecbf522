"""Constraint strings such as ``stats.runtime_ms<=40000``."""

from __future__ import annotations

import math
import re

from search_space.errors import LibraryError
from search_space.library import BlockLibrary
from search_space.library import parse_key
from search_space.solver.types import Constraint

__all__ = ["parse_constraint"]

_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(<=|>=)\s*(\S+)\s*$")


def parse_constraint(text: str, library: BlockLibrary | None = None) -> Constraint:
    """Read ``KEY<=BOUND`` or ``KEY>=BOUND``; with `library`, check every variant has KEY."""
    match = _CONSTRAINT.match(text)
    if match is None:
        raise LibraryError(
            f"a constraint must look like 'stats.runtime_ms<=40000' (KEY<=BOUND or "
            f"KEY>=BOUND), but got {text!r}"
        )
    key, op, raw_bound = match.groups()
    parse_key(key)
    try:
        bound = float(raw_bound)
    except ValueError:
        raise LibraryError(
            f"the bound of constraint {text!r} must be a number, but got {raw_bound!r}"
        ) from None
    if not math.isfinite(bound):
        raise LibraryError(f"the bound of constraint {text!r} must be finite, but got {bound}")
    if library is not None:
        library.column(key)
    return Constraint(key=key, op=op, bound=bound)  # type: ignore[arg-type]  # regex: <= | >=

"""One root for every error the search-space layer raises.

`DesignError` subclasses `ValueError` so pydantic turns it into a field-level
`ValidationError` inside model validators, and plain callers can catch `ValueError`.
"""

from __future__ import annotations


class SearchSpaceError(ValueError):
    """Root of all errors raised by `search_space` (bad design, space, library, export)."""


class DesignError(SearchSpaceError):
    """An FFN design breaks an invariant; the message names the rule and the value."""


class SpaceError(SearchSpaceError):
    """A search-space definition is malformed or cannot produce a valid design."""


class LibraryError(SearchSpaceError):
    """A block library is malformed, or a key / budget asked of it does not exist."""


class ExportError(SearchSpaceError):
    """A design cannot be written to, or read back from, an export format."""

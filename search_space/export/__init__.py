"""Export designs to files other tools load, and read them back.

``export_design(design, fmt)`` returns an `ExportResult` (``content``, ``filename``,
``lossy``: every knob the format cannot carry, with the reason, plus engine warnings);
``import_design(text, fmt, dims=None)`` reads ``native``, ``decilm`` or ``puzzletron``
back into an `FFNDesign` (``dims``, when given, must agree with the file).
"""

from __future__ import annotations

from search_space.design import FFNDesign
from search_space.design import ModelDims
from search_space.errors import ExportError
from search_space.export.decilm import export_decilm
from search_space.export.decilm import import_decilm
from search_space.export.native import export_native
from search_space.export.native import import_native
from search_space.export.puzzletron import export_puzzletron
from search_space.export.puzzletron import import_puzzletron
from search_space.export.report import FORMATS
from search_space.export.report import ExportFormat
from search_space.export.report import ExportResult
from search_space.export.report import LossyItem

__all__ = [
    "FORMATS",
    "ExportFormat",
    "ExportResult",
    "LossyItem",
    "export_design",
    "import_design",
]


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {list(FORMATS)}, but got {fmt!r}")


def export_design(design: FFNDesign, fmt: str) -> ExportResult:
    """Write `design` in format `fmt` (native | decilm | puzzletron)."""
    _check_format(fmt)
    if fmt == "native":
        return export_native(design)
    if fmt == "decilm":
        return export_decilm(design)
    return export_puzzletron(design)


def import_design(text: str, fmt: str, dims: ModelDims | None = None) -> FFNDesign:
    """Read a file written in format `fmt` back into a design."""
    _check_format(fmt)
    if fmt == "native":
        return import_native(text, dims)
    if fmt == "decilm":
        return import_decilm(text, dims)
    return import_puzzletron(text, dims)

"""`native`: the FFNDesign JSON itself, described by a versioned JSON Schema.

The schema ships as ``search_space/schema/design-v1.json`` (a test checks it equals
`search_space.design.design_json_schema()`); regenerate it with
``ffnas schema design > search_space/schema/design-v1.json`` after changing the design type.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from pydantic import ValidationError

from search_space.design import FFNDesign
from search_space.design import ModelDims
from search_space.design import design_json_schema
from search_space.errors import ExportError
from search_space.export.common import check_dims
from search_space.export.report import ExportResult

__all__ = ["SCHEMA_FILE", "export_native", "import_native", "schema_text", "shipped_schema"]

SCHEMA_FILE = "design-v1.json"


def schema_text() -> str:
    """The generated schema, formatted as shipped."""
    return json.dumps(design_json_schema(), indent=2, sort_keys=True) + "\n"


def shipped_schema() -> dict[str, Any]:
    """The schema file shipped in the package."""
    text = resources.files("search_space").joinpath("schema", SCHEMA_FILE).read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def export_native(design: FFNDesign) -> ExportResult:
    return ExportResult(
        format="native",
        filename=f"{design.name or 'design'}.json".replace("/", "_"),
        content=design.to_json() + "\n",
    )


def import_native(text: str, dims: ModelDims | None = None) -> FFNDesign:
    try:
        design = FFNDesign.from_json(text)
    except ValidationError as exc:
        raise ExportError(f"not a valid native design: {exc}") from None
    check_dims(design.dims, dims)
    return design

"""What an export returns: the file, and every knob the format could not carry."""

from __future__ import annotations

from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field

__all__ = ["ExportFormat", "ExportResult", "FORMATS", "LossyItem"]

ExportFormat = Literal["native", "decilm", "puzzletron"]
FORMATS: tuple[str, ...] = ("native", "decilm", "puzzletron")


class LossyItem(BaseModel):
    """One knob of one layer (``layer=None``: the whole model) that the file does not carry
    as designed (``severity="lossy"``), or that engines reading the file are known to
    mishandle (``severity="warning"``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    layer: int | None
    knob: str
    value: Any
    reason: str
    severity: Literal["lossy", "warning"] = "lossy"

    def line(self) -> str:
        where = "model" if self.layer is None else f"layer {self.layer}"
        return f"{self.severity}: {where}: {self.knob}={self.value!r}: {self.reason}"


class ExportResult(BaseModel):
    """An exported file (`content` to be saved as `filename`) and its mapping report."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: ExportFormat
    filename: str
    content: str
    lossy: tuple[LossyItem, ...] = Field(default=())

    @property
    def lossy_only(self) -> tuple[LossyItem, ...]:
        return tuple(item for item in self.lossy if item.severity == "lossy")

    @property
    def warnings(self) -> tuple[LossyItem, ...]:
        return tuple(item for item in self.lossy if item.severity == "warning")

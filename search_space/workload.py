"""Where a design is measured: the workload (phase, batch, sequence) and the target."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field

__all__ = ["Phase", "Workload"]

Phase = Literal["prefill", "decode"]


class Workload(BaseModel):
    """One inference step to cost or time.

    ``prefill``: ``batch`` sequences of ``seq`` new tokens each (``batch * seq`` tokens go
    through every FFN). ``decode``: one new token for each of ``batch`` sequences whose
    context (KV cache) holds ``seq`` tokens.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    phase: Phase = "prefill"
    batch: int = Field(default=1, gt=0, le=65536)
    seq: int = Field(default=2048, gt=0, le=1 << 20)

    @property
    def tokens(self) -> int:
        """Tokens that pass through each FFN in this step."""
        return self.batch * self.seq if self.phase == "prefill" else self.batch

    @property
    def context(self) -> int:
        """Keys/values each query attends to (the KV length)."""
        return self.seq

    def label(self) -> str:
        return f"{self.phase} b{self.batch} s{self.seq}"

"""Top-level callables the sandbox tests send into the spawned child (they must pickle)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from workers.evaluators.base import EvalFailure


def pid() -> int:
    return os.getpid()


def allocate(nbytes: int) -> int:
    import torch

    return int(torch.ones(nbytes, dtype=torch.uint8).sum())


def crash_once(marker: str) -> str:
    """Die by SIGKILL the first time (no marker yet), succeed in the fresh child."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return f"ok in {os.getpid()}"


def segfault() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


def fail_with(kind: str) -> None:
    if kind == "nan":
        raise EvalFailure("nan", "loss became NaN at step 3")
    if kind == "cuda":
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    raise ValueError("`width > 0` must hold, but got width=-1")


class FileReporter:
    """A picklable reporter: appends ``pid step value`` lines; stops from ``stop_at`` on."""

    def __init__(self, path: str, stop_at: int | None = None) -> None:
        self.path = path
        self.stop_at = stop_at

    def __call__(self, step: int, value: float) -> bool:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()} {step} {value}\n")
        return self.stop_at is not None and step >= self.stop_at

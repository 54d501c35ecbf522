"""Which implementation of the kernel ops a module runs: torch references or Triton.

Both namespaces expose the same function names with the same signatures (the contract of
`kernels/`), so a module calls ``ops(self.backend).matmul(...)`` and never branches on the
backend for the math itself.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Callable
from typing import Any
from typing import Literal

import torch
from torch import Tensor

Backend = Literal["torch", "triton"]
BACKENDS: tuple[str, ...] = ("torch", "triton")

# Launcher name -> module in `kernels/` that defines it (one file per op).
_TRITON_LAUNCHERS: dict[str, str] = {
    "activate": "kernels.activation",
    "matmul": "kernels.matmul",
    "dense_ffn": "kernels.dense_ffn",
    "blockdiag_ffn": "kernels.blockdiag",
    "lowrank_ffn": "kernels.lowrank",
    "block_sparse_matmul": "kernels.block_sparse",
    "rms_norm": "kernels.rms_norm",
    "add_rms_norm": "kernels.rms_norm",
    "layer_norm": "kernels.layer_norm",
    "add_layer_norm": "kernels.layer_norm",
    "moe_route": "kernels.moe",
    "moe_permute": "kernels.moe",
    "grouped_matmul": "kernels.moe",
    "moe_unpermute": "kernels.moe",
    "moe_ffn": "kernels.moe",
    "fused_group_ffn": "kernels.fused_group",
}

_NAMESPACES: dict[str, types.SimpleNamespace] = {}


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, but got {backend!r}")


def ops(backend: str) -> Any:
    """The op namespace of ``backend`` (imported on first use)."""
    space = _NAMESPACES.get(backend)
    if space is not None:
        return space
    check_backend(backend)
    if backend == "torch":
        module = importlib.import_module("kernels.reference")
        space = types.SimpleNamespace(**{name: getattr(module, name) for name in module.__all__})
    else:
        space = types.SimpleNamespace(
            **{
                name: getattr(importlib.import_module(path), name)
                for name, path in _TRITON_LAUNCHERS.items()
            }
        )
    _NAMESPACES[backend] = space
    return space


class DerivedWeights:
    """Caches a tensor computed from parameters (folded gains, merged low-rank factors, tile
    lists) until any source parameter changes.

    The key is each source's storage pointer and in-place version counter, so an optimiser
    step, ``load_state_dict`` (``copy_``) or ``.to()`` all invalidate it.
    """

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._value: Any = None

    def get(self, sources: list[Tensor], compute: Callable[[], Any]) -> Any:
        key = tuple((t.data_ptr(), t._version, t.dtype, t.device, t.shape) for t in sources)
        if key != self._key:
            with torch.no_grad():
                self._value = compute()
            self._key = key
        return self._value

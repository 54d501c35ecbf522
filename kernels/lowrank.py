"""Low-rank FFN: each matrix ``W = U @ V`` runs as two GEMMs, ``(x @ V.T) @ U.T``.

Gated: ``t_g = x V_g^T`` and ``t_u = x V_u^T`` (rank-wide), then one gated GEMM reads
``t_g``/``t_u`` against ``U_g``/``U_u`` with the activation in its epilogue; the down pair
ends with the residual add in the epilogue.

Below `MERGE_BELOW_TOKENS` tokens the builder runs the pre-merged dense matrices instead
(`should_merge`). That constant is NOT a GPU measurement yet: the merged form reads
``d*f / (r*(d+f))`` times more weight bytes, so on a memory-bound GPU it can only win where
launch latency (5 launches vs 2, ~3 us each) outweighs the extra bytes, i.e. for small
matrices at a handful of tokens. 16 is a conservative guess that keeps decode of small
proxies on the merged path; `benchmarks/kernels.py --op lowrank` measures the real crossover
per shape and is where it should be set from.
"""

from __future__ import annotations

from torch import Tensor

from kernels.matmul import matmul
from kernels.utils import check_tensor

__all__ = ["MERGE_BELOW_TOKENS", "lowrank_ffn", "should_merge"]

MERGE_BELOW_TOKENS = 16


def should_merge(tokens: int, d: int, f: int, r: int) -> bool:
    """Run the pre-merged dense FFN for ``tokens`` (see the module docstring)."""
    del d, f, r  # the crossover is not yet measured per shape; see MERGE_BELOW_TOKENS
    return tokens < MERGE_BELOW_TOKENS


def _check_pair(name: str, pair: tuple[Tensor, Tensor], n_in: int) -> tuple[int, int]:
    if not isinstance(pair, tuple) or len(pair) != 2:
        raise ValueError(f"{name} must be a (U, V) pair of tensors, but got {type(pair).__name__}")
    u, v = pair
    check_tensor(f"{name}[0] (U)", u, ndim=2)
    check_tensor(f"{name}[1] (V)", v, ndim=2)
    if v.shape[1] != n_in or u.shape[1] != v.shape[0]:
        raise ValueError(
            f"{name} must be U[out, r], V[r, {n_in}], but got U{tuple(u.shape)}, V{tuple(v.shape)}"
        )
    return u.shape[0], v.shape[0]


def lowrank_ffn(
    x: Tensor,
    up: tuple[Tensor, Tensor],
    down: tuple[Tensor, Tensor],
    *,
    activation: str,
    gate: tuple[Tensor, Tensor] | None = None,
    residual: Tensor | None = None,
) -> Tensor:
    """Triton version of `kernels.reference.lowrank_ffn`."""
    check_tensor("x", x, ndim=2)
    d = x.shape[1]
    f, _ = _check_pair("up", up, d)
    if gate is not None:
        f_gate, _ = _check_pair("gate", gate, d)
        if f_gate != f or gate[1].shape != up[1].shape:
            raise ValueError(
                f"gate pair must match up pair shapes, but got U{tuple(gate[0].shape)} "
                f"V{tuple(gate[1].shape)} vs U{tuple(up[0].shape)} V{tuple(up[1].shape)}"
            )
    d_out, _ = _check_pair("down", down, f)
    if d_out != d:
        raise ValueError(f"down must map back to d={d}, but its U has {d_out} rows")
    t_up = matmul(x, up[1])
    t_gate = matmul(x, gate[1]) if gate is not None else None
    h = matmul(
        t_up,
        up[0],
        activation=activation,
        w_gate=None if gate is None else gate[0],
        x_gate=t_gate,
    )
    return matmul(matmul(h, down[1]), down[0], residual=residual)

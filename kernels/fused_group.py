"""FFN Fusion: the FFNs of a fusion group as one wide gated GEMM on the shared input.

``sum_l ffn_l(norm_l(x))`` with per-member norm gains ``g_l`` (and LayerNorm biases
``b_l``) equals ``down_cat(act(Wg_cat n + bg) * (Wu_cat n + bu))`` where ``n`` is the
gain-free normalisation of ``x`` (one pass serves every member), ``W*_cat`` stacks each
member's ``W_l * g_l`` (gain folded into the input columns) along the output dim,
``b* = W_l b_l`` (zero for RMSNorm), and ``down_cat`` concatenates the down matrices along
their input dim, so the member sum happens inside the down GEMM's K loop. Three launches
(norm, gate/up, down+residual) whatever the group size.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from kernels.layer_norm import layer_norm
from kernels.matmul import matmul
from kernels.rms_norm import rms_norm
from kernels.utils import check_tensor

__all__ = ["fold_group", "fused_group_ffn", "fused_group_ffn_folded"]


def fold_group(
    norm_weights: list[Tensor],
    norm_biases: list[Tensor] | None,
    w_ups: list[Tensor],
    w_downs: list[Tensor],
    *,
    w_gates: list[Tensor] | None = None,
) -> dict[str, Any]:
    """Concatenate the members' weights with their norm gains (and biases) folded in.

    Folding is done in fp32 and rounded once to the weight dtype.
    """
    n = len(w_ups)
    if n == 0 or len(w_downs) != n or len(norm_weights) != n:
        raise ValueError(
            f"a fused group needs the same number (>= 1) of norms, up and down weights, "
            f"but got {len(norm_weights)}, {n}, {len(w_downs)}"
        )
    if w_gates is not None and len(w_gates) != n:
        raise ValueError(f"w_gates must have {n} entries, but got {len(w_gates)}")
    if norm_biases is not None and len(norm_biases) != n:
        raise ValueError(f"norm_biases must have {n} entries, but got {len(norm_biases)}")
    d = w_ups[0].shape[1]
    for i in range(n):
        check_tensor(f"w_ups[{i}]", w_ups[i], ndim=2, like=w_ups[0])
        check_tensor(f"w_downs[{i}]", w_downs[i], ndim=2, like=w_ups[0])
        f = w_ups[i].shape[0]
        if w_ups[i].shape[1] != d or tuple(w_downs[i].shape) != (d, f):
            raise ValueError(
                f"member {i}: w_up must be [f, {d}] and w_down [{d}, f], but got "
                f"{tuple(w_ups[i].shape)} and {tuple(w_downs[i].shape)}"
            )
        if w_gates is not None and w_gates[i].shape != w_ups[i].shape:
            raise ValueError(
                f"member {i}: w_gate must match w_up {tuple(w_ups[i].shape)}, "
                f"but got {tuple(w_gates[i].shape)}"
            )
        if tuple(norm_weights[i].shape) != (d,):
            raise ValueError(
                f"member {i}: norm weight must be [{d}], but got {tuple(norm_weights[i].shape)}"
            )
    dtype = w_ups[0].dtype

    def fold(ws: list[Tensor]) -> tuple[Tensor, Tensor | None]:
        weights = torch.cat(
            [w.float() * g.float()[None, :] for w, g in zip(ws, norm_weights, strict=True)]
        )
        bias = None
        if norm_biases is not None:
            bias = torch.cat(
                [w.float() @ b.float() for w, b in zip(ws, norm_biases, strict=True)]
            ).to(dtype)
        return weights.to(dtype).contiguous(), bias

    w_up, b_up = fold(w_ups)
    w_gate, b_gate = fold(w_gates) if w_gates is not None else (None, None)
    return {
        "w_up": w_up,
        "b_up": b_up,
        "w_gate": w_gate,
        "b_gate": b_gate,
        "w_down": torch.cat(list(w_downs), dim=1).contiguous(),
        "layernorm": norm_biases is not None,
    }


def fused_group_ffn_folded(
    x: Tensor,
    folded: dict[str, Any],
    *,
    activation: str,
    eps: float = 1e-6,
    residual: Tensor | None = None,
) -> Tensor:
    """Run a group folded by `fold_group` (the builder caches the fold across calls)."""
    if folded["layernorm"]:
        n = layer_norm(x, None, None, eps)
    else:
        n = rms_norm(x, None, eps)
    h = matmul(
        n,
        folded["w_up"],
        activation=activation,
        w_gate=folded["w_gate"],
        bias=folded["b_up"],
        bias_gate=folded["b_gate"],
    )
    return matmul(h, folded["w_down"], residual=residual)


def fused_group_ffn(
    x: Tensor,
    norm_weights: list[Tensor],
    norm_biases: list[Tensor] | None,
    w_ups: list[Tensor],
    w_downs: list[Tensor],
    *,
    activation: str,
    w_gates: list[Tensor] | None = None,
    eps: float = 1e-6,
    residual: Tensor | None = None,
) -> Tensor:
    """Triton version of `kernels.reference.fused_group_ffn` (folds, then runs)."""
    check_tensor("x", x, ndim=2)
    folded = fold_group(norm_weights, norm_biases, w_ups, w_downs, w_gates=w_gates)
    return fused_group_ffn_folded(x, folded, activation=activation, eps=eps, residual=residual)

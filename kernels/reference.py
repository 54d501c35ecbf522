"""Plain-torch references of every kernel, with the launchers' signatures.

Each function here is the definition of what the Triton launcher of the same name computes;
the kernel tests compare against these, and ``build_model(design, backend="torch")`` runs on
them (so proxy training gets autograd for free). GEMMs run in the input dtype (cuBLAS
accumulates in fp32 and rounds once, like the kernels); activations and norms are computed in
fp32 and rounded once at the end, as the kernels do.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ACT_NONE",
    "add_layer_norm",
    "activate",
    "add_rms_norm",
    "apply_activation",
    "blockdiag_ffn",
    "block_sparse_matmul",
    "dense_ffn",
    "fused_group_ffn",
    "layer_norm",
    "lowrank_ffn",
    "matmul",
    "moe_ffn",
    "moe_permute",
    "moe_route",
    "moe_unpermute",
    "grouped_matmul",
    "rms_norm",
]

ACT_NONE = "none"
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def apply_activation(h: Tensor, activation: str) -> Tensor:
    """The elementwise activation of a non-gated FFN (or of the gate branch), in fp32."""
    if activation == ACT_NONE:
        return h
    if activation in ("swiglu",):
        return F.silu(h)
    if activation in ("gelu", "geglu"):
        # tanh-approximate GELU (as in Gemma's GeGLU); the Triton epilogue computes the same
        # formula, since the interpreter cannot run erf.
        return F.gelu(h, approximate="tanh")
    if activation == "relu2":
        return torch.square(F.relu(h))
    raise ValueError(
        f"activation must be one of none, swiglu, geglu, gelu, relu2, but got {activation!r}"
    )


def activate(x: Tensor, activation: str, up: Tensor | None = None) -> Tensor:
    """``act(x) * up`` (gated, ``up`` given) or ``act(x)``, in fp32, rounded once."""
    out = apply_activation(x.float(), activation)
    if up is not None:
        out = out * up.float()
    return out.to(x.dtype)


def matmul(
    x: Tensor,
    w: Tensor,
    *,
    activation: str = ACT_NONE,
    w_gate: Tensor | None = None,
    x_gate: Tensor | None = None,
    bias: Tensor | None = None,
    bias_gate: Tensor | None = None,
    residual: Tensor | None = None,
) -> Tensor:
    """``x @ w.T`` with an epilogue; ``w`` is ``[N, K]`` (nn.Linear layout) or, for a
    block-diagonal matrix, ``[G, N/G, K/G]`` (block ``g`` maps input columns
    ``g*K/G..`` to output columns ``g*N/G..``).

    Non-gated: ``act(x @ w.T + bias) + residual``.
    Gated (``w_gate`` given): ``act(x_gate @ w_gate.T + bias_gate) * (x @ w.T + bias)
    + residual``, where ``x_gate`` defaults to ``x``.
    """
    up = _linear(x, w, bias)
    if w_gate is not None:
        gate = _linear(x if x_gate is None else x_gate, w_gate, bias_gate)
        out = apply_activation(gate.float(), activation) * up.float()
    else:
        out = apply_activation(up.float(), activation)
    if residual is not None:
        out = out + residual.float()
    return out.to(x.dtype)


def _linear(x: Tensor, w: Tensor, bias: Tensor | None) -> Tensor:
    if w.dim() == 3:
        groups, n_per, k_per = w.shape
        xb = x.reshape(x.shape[0], groups, k_per).transpose(0, 1)  # [G, M, K/G]
        out = torch.bmm(xb, w.transpose(1, 2)).transpose(0, 1).reshape(x.shape[0], -1)
    else:
        out = F.linear(x, w)
    if bias is not None:
        out = out + bias
    return out


def dense_ffn(
    x: Tensor,
    w_up: Tensor,
    w_down: Tensor,
    *,
    activation: str,
    w_gate: Tensor | None = None,
    residual: Tensor | None = None,
) -> Tensor:
    """``down(act(gate(x)) * up(x)) + residual`` (gated) or ``down(act(up(x))) + residual``."""
    h = matmul(x, w_up, activation=activation, w_gate=w_gate)
    return matmul(h, w_down, residual=residual)


def blockdiag_ffn(
    x: Tensor,
    w_up: Tensor,
    w_down: Tensor,
    *,
    activation: str,
    w_gate: Tensor | None = None,
    residual: Tensor | None = None,
) -> Tensor:
    """A dense FFN whose matrices are block-diagonal: ``w_up``/``w_gate`` are
    ``[b, f/b, d/b]`` and ``w_down`` is ``[b, d/b, f/b]``."""
    return dense_ffn(x, w_up, w_down, activation=activation, w_gate=w_gate, residual=residual)


def lowrank_ffn(
    x: Tensor,
    up: tuple[Tensor, Tensor],
    down: tuple[Tensor, Tensor],
    *,
    activation: str,
    gate: tuple[Tensor, Tensor] | None = None,
    residual: Tensor | None = None,
) -> Tensor:
    """An FFN whose matrices are factorised ``W = U @ V``; each pair is ``(U[out, r],
    V[r, in])`` and ``x @ W.T = (x @ V.T) @ U.T``."""
    t_up = F.linear(x, up[1])
    t_gate = F.linear(x, gate[1]) if gate is not None else None
    h = matmul(
        t_up,
        up[0],
        activation=activation,
        w_gate=gate[0] if gate is not None else None,
        x_gate=t_gate,
    )
    return matmul(F.linear(h, down[1]), down[0], residual=residual)


def block_sparse_matmul(
    x: Tensor,
    w: Tensor,
    mask: Tensor,
    block_size: int,
    *,
    residual: Tensor | None = None,
    tiles: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """``x @ (w * tile_mask).T + residual`` where ``mask`` is the ``[N/b, K/b]`` bool tile
    mask of ``w`` (``[N, K]``). ``tiles`` is the launcher's precomputed tile list (see
    `kernels.block_sparse.tile_index`); the reference reads the mask and ignores it."""
    del tiles
    full = mask.repeat_interleave(block_size, 0).repeat_interleave(block_size, 1)
    return matmul(x, w * full.to(w.dtype), residual=residual)


def rms_norm(x: Tensor, weight: Tensor | None, eps: float = 1e-6) -> Tensor:
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last dim, in fp32."""
    x32 = x.float()
    out = x32 * torch.rsqrt(x32.square().mean(-1, keepdim=True) + eps)
    if weight is not None:
        out = out * weight.float()
    return out.to(x.dtype)


def add_rms_norm(
    x: Tensor, residual: Tensor, weight: Tensor | None, eps: float = 1e-6
) -> tuple[Tensor, Tensor]:
    """``s = x + residual``; returns ``(rms_norm(s), s)``, the norm taken of the fp32 sum."""
    s32 = x.float() + residual.float()
    out = s32 * torch.rsqrt(s32.square().mean(-1, keepdim=True) + eps)
    if weight is not None:
        out = out * weight.float()
    return out.to(x.dtype), s32.to(x.dtype)


def layer_norm(x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float = 1e-5) -> Tensor:
    """LayerNorm over the last dim in fp32 (biased variance, as torch)."""
    x32 = x.float()
    mean = x32.mean(-1, keepdim=True)
    var = (x32 - mean).square().mean(-1, keepdim=True)
    out = (x32 - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        out = out * weight.float()
    if bias is not None:
        out = out + bias.float()
    return out.to(x.dtype)


def add_layer_norm(
    x: Tensor,
    residual: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    eps: float = 1e-5,
) -> tuple[Tensor, Tensor]:
    """``s = x + residual``; returns ``(layer_norm(s), s)``."""
    s32 = x.float() + residual.float()
    return layer_norm(s32, weight, bias, eps).to(x.dtype), s32.to(x.dtype)


def moe_route(x: Tensor, w_router: Tensor, top_k: int) -> tuple[Tensor, Tensor]:
    """Router: softmax over ``x @ w_router.T`` (``[E, d]``), keep the top-k, renormalise.

    Returns ``(weights[N, k] fp32, experts[N, k] int32)``. Renormalised top-k of a softmax
    equals a softmax over the top-k logits, which is what the kernel computes.
    """
    logits = F.linear(x, w_router).float()
    top, idx = torch.topk(logits, top_k, dim=-1)
    return torch.softmax(top, dim=-1), idx.to(torch.int32)


def moe_permute(experts: Tensor, n_experts: int) -> tuple[Tensor, Tensor, Tensor]:
    """Sort the ``N*k`` (token, slot) pairs by expert.

    Returns ``(sorted_pairs[N*k] int32, offsets[E+1] int32, inverse[N*k] int32)``:
    ``sorted_pairs[j]`` is the flat (token*k + slot) index of the j-th row in expert order,
    expert ``e`` owns rows ``offsets[e]:offsets[e+1]``, and ``inverse`` maps a flat pair
    back to its row.
    """
    flat = experts.reshape(-1).long()
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=n_experts)
    offsets = torch.zeros(n_experts + 1, dtype=torch.int64, device=experts.device)
    offsets[1:] = torch.cumsum(counts, 0)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    return order.to(torch.int32), offsets.to(torch.int32), inverse.to(torch.int32)


def grouped_matmul(
    x: Tensor,
    rows: Tensor | None,
    offsets: Tensor,
    w: Tensor,
    *,
    activation: str = ACT_NONE,
    w_gate: Tensor | None = None,
    row_scale: Tensor | None = None,
) -> Tensor:
    """Per-expert GEMM over rows in expert order.

    Output row ``j`` (expert ``e`` with ``offsets[e] <= j < offsets[e+1]``) is
    ``epilogue(x[rows[j]] @ w[e].T)`` (``rows=None`` reads ``x[j]``), with the gated
    epilogue when ``w_gate`` is given, then times ``row_scale[j]`` when given.
    ``w``/``w_gate`` are ``[E, N, K]``.
    """
    xs = x if rows is None else x[rows.long()]
    counts = (offsets[1:] - offsets[:-1]).tolist()
    outs = []
    start = 0
    for e, count in enumerate(counts):
        part = xs[start : start + count]
        outs.append(
            matmul(
                part,
                w[e],
                activation=activation,
                w_gate=None if w_gate is None else w_gate[e],
            )
        )
        start += count
    out = torch.cat(outs, 0) if outs else xs.new_zeros((0, w.shape[1]))
    if row_scale is not None:
        out = (out.float() * row_scale.float()[:, None]).to(x.dtype)
    return out


def moe_unpermute(
    y: Tensor, inverse: Tensor, top_k: int, residual: Tensor | None = None
) -> Tensor:
    """``out[t] = sum_j y[inverse[t*k + j]] + residual[t]`` (rows already gate-weighted)."""
    gathered = y[inverse.long()].reshape(-1, top_k, y.shape[1]).float()
    out = gathered.sum(1)
    if residual is not None:
        out = out + residual.float()
    return out.to(y.dtype)


def moe_ffn(
    x: Tensor,
    w_router: Tensor,
    w_up: Tensor,
    w_down: Tensor,
    *,
    top_k: int,
    activation: str,
    w_gate: Tensor | None = None,
    shared: tuple[Tensor | None, Tensor, Tensor] | None = None,
    residual: Tensor | None = None,
) -> Tensor:
    """Mixture of experts: ``sum_{e in topk} p_e * expert_e(x) + shared(x) + residual``.

    ``w_up``/``w_gate`` ``[E, w, d]``, ``w_down`` ``[E, d, w]``; ``shared`` is
    ``(w_gate | None, w_up, w_down)`` of the always-on experts concatenated into one dense
    FFN of width ``S*w``.
    """
    weights, experts = moe_route(x, w_router, top_k)
    n_experts = w_up.shape[0]
    out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    for e in range(n_experts):
        token, slot = torch.nonzero(experts == e, as_tuple=True)
        if token.numel() == 0:
            continue
        h = matmul(
            x[token], w_up[e], activation=activation, w_gate=None if w_gate is None else w_gate[e]
        )
        y = matmul(h, w_down[e]).float() * weights[token, slot][:, None]
        out.index_add_(0, token, y)
    if shared is not None:
        sg, su, sd = shared
        out = out + dense_ffn(x, su, sd, activation=activation, w_gate=sg).float()
    if residual is not None:
        out = out + residual.float()
    return out.to(x.dtype)


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
    """FFN Fusion: ``sum_l ffn_l(norm_l(x)) + residual``, each member with its own pre-norm
    (RMSNorm when ``norm_biases`` is None, LayerNorm otherwise)."""
    out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    for i, (w_up, w_down) in enumerate(zip(w_ups, w_downs, strict=True)):
        if norm_biases is None:
            h = rms_norm(x, norm_weights[i], eps)
        else:
            h = layer_norm(x, norm_weights[i], norm_biases[i], eps)
        w_gate = None if w_gates is None else w_gates[i]
        out = out + dense_ffn(h, w_up, w_down, activation=activation, w_gate=w_gate).float()
    if residual is not None:
        out = out + residual.float()
    return out.to(x.dtype)

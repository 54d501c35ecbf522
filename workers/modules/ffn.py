"""One `nn.Module` per FFN kind; each calls the backend's ops (torch references or Triton).

Every module takes ``x[N, d]`` and an optional ``residual[N, d]`` and returns
``ffn(x) + residual`` (the residual add is fused into the last GEMM's epilogue on Triton).
Weights use the ``nn.Linear`` layout ``[out, in]``; parameter shapes follow the parameter
conventions of `docs/contracts.md` exactly, so ``numel`` equals `search_space.costs`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch import nn

from search_space.design import LayerFFN
from search_space.design import ModelDims
from workers.modules.backend import DerivedWeights
from workers.modules.backend import ops
from workers.modules.init import Init
from workers.modules.norms import Norm


class FFN(nn.Module):
    """Base of the FFN modules: ``forward(x[N, d], residual=None) -> [N, d]``."""

    kind: str = ""

    def __init__(self, backend: str) -> None:
        super().__init__()
        self.backend = backend
        # Which weight path ran on the last forward (recorded in timing records):
        # dense | block_sparse | semi_structured | masked_dense | lowrank | lowrank_merged ...
        self.sparse_path = "dense"

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        raise NotImplementedError


class NoFFN(FFN):
    """A ``noop`` layer: no FFN, no parameters; contributes zero to the residual stream."""

    kind = "noop"

    def __init__(self, backend: str) -> None:
        super().__init__(backend)
        self.sparse_path = "none"

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        return x.new_zeros(x.shape) if residual is None else residual


class LinearFFN(FFN):
    """Puzzle's ``replace_with_linear``: one ``d x d`` matrix."""

    kind = "linear"

    def __init__(self, d: int, init: Init, backend: str) -> None:
        super().__init__(backend)
        self.weight = init.normal(d, d, std=init.residual_std)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        return ops(self.backend).matmul(x, self.weight, residual=residual)


class DenseFFN(FFN):
    """Dense FFN, optionally with 2:4 or block weight sparsity (stored dense + fixed mask)."""

    kind = "dense"

    def __init__(self, layer: LayerFFN, d: int, init: Init, backend: str) -> None:
        super().__init__(backend)
        assert layer.width is not None  # validated by LayerFFN
        f = layer.width
        self.activation = layer.activation
        self.gated = layer.gated
        self.pattern = layer.sparsity.pattern
        self.block_size = layer.sparsity.block_size or 0
        self.w_gate = init.normal(f, d) if self.gated else None
        self.w_up = init.normal(f, d)
        self.w_down = init.normal(d, f, std=init.residual_std)
        self._derived: dict[str, DerivedWeights] = {}
        if self.pattern == "block":
            density = layer.sparsity.density
            assert density is not None
            for name in self._weight_names():
                mask = _block_mask(getattr(self, name), self.block_size, density, init)
                self.register_buffer(f"mask_{name[2:]}", mask)
        elif self.pattern == "2:4":
            for name in self._weight_names():
                self.register_buffer(f"mask_{name[2:]}", _two_four_mask(getattr(self, name)))
        if self.pattern != "none":
            with torch.no_grad():
                for name in self._weight_names():
                    getattr(self, name).mul_(self._full_mask(name).to(init.dtype))
        self.sparse_path = "dense" if self.pattern == "none" else "masked_dense"

    def _weight_names(self) -> list[str]:
        return (["w_gate"] if self.gated else []) + ["w_up", "w_down"]

    def _full_mask(self, name: str) -> Tensor:
        mask: Tensor = getattr(self, f"mask_{name[2:]}")
        if self.pattern == "block":
            b = self.block_size
            return mask.repeat_interleave(b, 0).repeat_interleave(b, 1)
        return mask

    def _masked(self, name: str) -> Tensor:
        w: Tensor = getattr(self, name)
        return w * self._full_mask(name).to(w.dtype)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        op = ops(self.backend)
        if self.pattern == "none":
            return op.dense_ffn(
                x,
                self.w_up,
                self.w_down,
                activation=self.activation,
                w_gate=self.w_gate,
                residual=residual,
            )
        if self.backend == "torch":
            w = {name: self._masked(name) for name in self._weight_names()}
            self.sparse_path = "masked_dense"
            return op.dense_ffn(
                x,
                w["w_up"],
                w["w_down"],
                activation=self.activation,
                w_gate=w.get("w_gate"),
                residual=residual,
            )
        if self.pattern == "block":
            return self._block_sparse_forward(x, residual)
        return self._two_four_forward(x, residual)

    def _cached(self, name: str, kind: str, compute: Any) -> Any:
        cache = self._derived.setdefault(f"{kind}:{name}", DerivedWeights())
        return cache.get([getattr(self, name)], compute)

    def _block_sparse_forward(self, x: Tensor, residual: Tensor | None) -> Tensor:
        from kernels.block_sparse import tile_index

        op = ops(self.backend)
        self.sparse_path = "block_sparse"
        b = self.block_size

        def run(name: str, inp: Tensor, res: Tensor | None = None) -> Tensor:
            mask: Tensor = getattr(self, f"mask_{name[2:]}")
            tiles = self._cached(name, "tiles", lambda: tile_index(mask))
            return op.block_sparse_matmul(
                inp, getattr(self, name), mask, b, residual=res, tiles=tiles
            )

        up = run("w_up", x)
        if self.gated:
            h = op.activate(run("w_gate", x), self.activation, up)
        else:
            h = op.activate(up, self.activation)
        return run("w_down", h, residual)

    def _two_four_forward(self, x: Tensor, residual: Tensor | None) -> Tensor:
        op = ops(self.backend)
        if _semi_structured_supported(x):
            try:
                w = {
                    name: self._cached(
                        name, "semi", lambda name=name: _to_semi(self._masked(name))
                    )
                    for name in self._weight_names()
                }
                up = F.linear(x, w["w_up"])
                if self.gated:
                    h = op.activate(F.linear(x, w["w_gate"]), self.activation, up)
                else:
                    h = op.activate(up, self.activation)
                y = F.linear(h, w["w_down"])
                self.sparse_path = "semi_structured"
                return y if residual is None else y + residual
            except (RuntimeError, ValueError, NotImplementedError):
                # Shapes or hardware the cuSPARSELt/CUTLASS path rejects: masked dense below.
                pass
        self.sparse_path = "masked_dense"
        w = {
            name: self._cached(name, "masked", lambda name=name: self._masked(name))
            for name in self._weight_names()
        }
        return op.dense_ffn(
            x,
            w["w_up"],
            w["w_down"],
            activation=self.activation,
            w_gate=w.get("w_gate"),
            residual=residual,
        )


def _semi_structured_supported(x: Tensor) -> bool:
    if x.device.type != "cuda" or x.dtype not in (torch.float16, torch.bfloat16):
        return False
    return torch.cuda.get_device_capability(x.device) >= (8, 0)


def _to_semi(w: Tensor) -> Tensor:
    from torch.sparse import to_sparse_semi_structured

    return to_sparse_semi_structured(w.contiguous())


def _block_mask(w: Tensor, block: int, density: float, init: Init) -> Tensor:
    """Keep ``max(1, round(density * n_tiles))`` tiles, chosen by the seeded generator."""
    rows, cols = w.shape[0] // block, w.shape[1] // block
    n_tiles = rows * cols
    kept = max(1, round(density * n_tiles))
    chosen = init.permutation(n_tiles)[:kept]
    mask = torch.zeros(n_tiles, dtype=torch.bool)
    mask[chosen] = True
    return mask.view(rows, cols).to(w.device)


def _two_four_mask(w: Tensor) -> Tensor:
    """Keep the two largest-magnitude weights of every 4 consecutive along the input dim."""
    groups = w.detach().float().abs().reshape(w.shape[0], -1, 4)
    keep = torch.topk(groups, 2, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return mask.reshape(w.shape)


class MoEFFN(FFN):
    """Top-k routed experts plus always-on shared experts (one dense FFN of width ``S*w``)."""

    kind = "moe"

    def __init__(self, layer: LayerFFN, d: int, init: Init, backend: str) -> None:
        super().__init__(backend)
        assert layer.width is not None and layer.experts is not None and layer.top_k is not None
        w, e, s = layer.width, layer.experts, layer.shared_experts
        self.activation = layer.activation
        self.gated = layer.gated
        self.top_k = layer.top_k
        self.router = init.normal(e, d)
        self.w_gate = init.normal(e, w, d) if self.gated else None
        self.w_up = init.normal(e, w, d)
        self.w_down = init.normal(e, d, w, std=init.residual_std)
        if s:
            self.s_gate = init.normal(s * w, d) if self.gated else None
            self.s_up = init.normal(s * w, d)
            self.s_down = init.normal(d, s * w, std=init.residual_std)
        self.has_shared = bool(s)
        self.sparse_path = "grouped_moe"

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        shared = (self.s_gate, self.s_up, self.s_down) if self.has_shared else None
        return ops(self.backend).moe_ffn(
            x,
            self.router,
            self.w_up,
            self.w_down,
            top_k=self.top_k,
            activation=self.activation,
            w_gate=self.w_gate,
            shared=shared,
            residual=residual,
        )


class LowRankFFN(FFN):
    """Each matrix ``W[out, in] = U[out, r] @ V[r, in]`` (``d*r + r*f`` parameters)."""

    kind = "lowrank"

    def __init__(self, layer: LayerFFN, d: int, init: Init, backend: str) -> None:
        super().__init__(backend)
        assert layer.width is not None and layer.rank is not None
        f, r = layer.width, layer.rank
        self.activation = layer.activation
        self.gated = layer.gated
        # Factor std so that the product has std 0.02 (resp. the residual std):
        # Var(UV) = r * s_u^2 * s_v^2.
        std = math.sqrt(0.02 / math.sqrt(r))
        down_std = math.sqrt(init.residual_std / math.sqrt(r))
        if self.gated:
            self.gate_u, self.gate_v = init.normal(f, r, std=std), init.normal(r, d, std=std)
        self.up_u, self.up_v = init.normal(f, r, std=std), init.normal(r, d, std=std)
        self.down_u = init.normal(d, r, std=down_std)
        self.down_v = init.normal(r, f, std=down_std)
        self._merged = DerivedWeights()
        self.sparse_path = "lowrank"

    def _pairs(self) -> dict[str, tuple[Tensor, Tensor]]:
        pairs: dict[str, tuple[Tensor, Tensor]] = {
            "up": (self.up_u, self.up_v),
            "down": (self.down_u, self.down_v),
        }
        if self.gated:
            pairs["gate"] = (self.gate_u, self.gate_v)
        return pairs

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        pairs = self._pairs()
        op = ops(self.backend)
        if self.backend == "triton":
            from kernels.lowrank import should_merge

            d, r, f = self.up_v.shape[1], self.up_v.shape[0], self.up_u.shape[0]
            if should_merge(x.shape[0], d, f, r):
                merged = self._merged.get(
                    [t for pair in pairs.values() for t in pair],
                    lambda: {name: u @ v for name, (u, v) in pairs.items()},
                )
                self.sparse_path = "lowrank_merged"
                return op.dense_ffn(
                    x,
                    merged["up"],
                    merged["down"],
                    activation=self.activation,
                    w_gate=merged.get("gate"),
                    residual=residual,
                )
        self.sparse_path = "lowrank"
        return op.lowrank_ffn(
            x,
            pairs["up"],
            pairs["down"],
            activation=self.activation,
            gate=pairs.get("gate"),
            residual=residual,
        )


class BlockDiagFFN(FFN):
    """Each matrix is block-diagonal with ``b`` blocks (``d*f/b`` parameters)."""

    kind = "blockdiag"

    def __init__(self, layer: LayerFFN, d: int, init: Init, backend: str) -> None:
        super().__init__(backend)
        assert layer.width is not None and layer.blocks is not None
        f, b = layer.width, layer.blocks
        self.activation = layer.activation
        self.gated = layer.gated
        self.w_gate = init.normal(b, f // b, d // b) if self.gated else None
        self.w_up = init.normal(b, f // b, d // b)
        self.w_down = init.normal(b, d // b, f // b, std=init.residual_std)
        self.sparse_path = "blockdiag"

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        return ops(self.backend).blockdiag_ffn(
            x,
            self.w_up,
            self.w_down,
            activation=self.activation,
            w_gate=self.w_gate,
            residual=residual,
        )


class FusedGroupFFN(FFN):
    """FFN Fusion: ``sum_l ffn_l(norm_l(x))`` over a group of dense pre-norm layers.

    Holds each member's norm and dense FFN (so parameters match the unfused layers). On
    Triton the group runs as one wide gated GEMM: one gain-free normalisation of ``x``, the
    members' gate/up matrices concatenated along the output dim with each member's norm gain
    folded into its columns (and a LayerNorm bias folded into a GEMM bias), then one down GEMM
    over the concatenated widths with the residual add fused.
    """

    kind = "fused_group"

    def __init__(self, norms: list[Norm], ffns: list[DenseFFN], backend: str) -> None:
        super().__init__(backend)
        self.norms = nn.ModuleList(norms)
        self.ffns = nn.ModuleList(ffns)
        self.activation = ffns[0].activation
        self.gated = ffns[0].gated
        self.norm_type = norms[0].norm_type
        self.eps = norms[0].eps
        self._folded = DerivedWeights()
        self.sparse_path = "fused_group"

    def _lists(self) -> dict[str, Any]:
        norms = list(self.norms)
        ffns = list(self.ffns)
        return {
            "norm_weights": [n.weight for n in norms],
            "norm_biases": None if self.norm_type == "rmsnorm" else [n.bias for n in norms],
            "w_ups": [f.w_up for f in ffns],
            "w_downs": [f.w_down for f in ffns],
            "w_gates": [f.w_gate for f in ffns] if self.gated else None,
        }

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        lists = self._lists()
        if self.backend == "torch":
            return ops("torch").fused_group_ffn(
                x,
                lists["norm_weights"],
                lists["norm_biases"],
                lists["w_ups"],
                lists["w_downs"],
                activation=self.activation,
                w_gates=lists["w_gates"],
                eps=self.eps,
                residual=residual,
            )
        from kernels.fused_group import fold_group
        from kernels.fused_group import fused_group_ffn_folded

        sources = [t for value in lists.values() if value is not None for t in value]
        folded = self._folded.get(
            sources,
            lambda: fold_group(
                lists["norm_weights"],
                lists["norm_biases"],
                lists["w_ups"],
                lists["w_downs"],
                w_gates=lists["w_gates"],
            ),
        )
        return fused_group_ffn_folded(
            x, folded, activation=self.activation, eps=self.eps, residual=residual
        )


def build_ffn_module(layer: LayerFFN, dims: ModelDims, init: Init, backend: str) -> FFN:
    d = dims.d_model
    if layer.kind == "dense":
        return DenseFFN(layer, d, init, backend)
    if layer.kind == "moe":
        return MoEFFN(layer, d, init, backend)
    if layer.kind == "lowrank":
        return LowRankFFN(layer, d, init, backend)
    if layer.kind == "blockdiag":
        return BlockDiagFFN(layer, d, init, backend)
    if layer.kind == "linear":
        return LinearFFN(d, init, backend)
    if layer.kind == "noop":
        return NoFFN(backend)
    raise ValueError(f"unknown FFN kind {layer.kind!r}")

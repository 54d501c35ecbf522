"""Residual units: one transformer layer, or a whole FFN Fusion group.

Block semantics are those of the `search_space.design` module docstring. A unit maps the
residual stream ``x[B, T, d]`` to the next one and exposes ``unit.ffn`` (``[N, d] -> [N, d]``)
so per-layer timing can run one unit's FFN alone.
"""

from __future__ import annotations

from typing import cast

from torch import Tensor
from torch import nn

from search_space.design import LayerFFN
from workers.modules.attention import Attention
from workers.modules.ffn import FFN
from workers.modules.ffn import FusedGroupFFN
from workers.modules.norms import Norm


class LayerUnit(nn.Module):
    """One layer: pre-norm attention, then the FFN with its norm placement."""

    def __init__(
        self,
        index: int,
        layer: LayerFFN,
        attn_norm: Norm,
        attn: Attention,
        ffn: FFN,
        ffn_norms: list[Norm],
    ) -> None:
        super().__init__()
        self.layers = (index,)
        self.spec = layer
        self.attn_norm = attn_norm
        self.attn = attn
        self.ffn = ffn
        self.placement = layer.norm
        self.parallel = layer.parallel_attn
        # pre/post: one norm; sandwich: norm_in then norm_out; none/noop: none.
        self.ffn_norms = nn.ModuleList(ffn_norms)

    def _norm(self, i: int) -> Norm:
        return cast(Norm, self.ffn_norms[i])

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        a = self.attn(self.attn_norm(x)).reshape(-1, shape[-1])
        flat = x.reshape(-1, shape[-1])
        out = self._ffn_sublayer(flat, a)
        return out.reshape(shape)

    def _ffn_sublayer(self, x: Tensor, a: Tensor) -> Tensor:
        """``x`` is the block input, ``a`` the attention output, both ``[N, d]``."""
        placement = self.placement
        if self.spec.kind == "noop":
            return x + a
        if self.parallel:
            r = x + a
            if placement == "pre":
                return self.ffn(self._norm(0)(x), residual=r)
            if placement == "none":
                return self.ffn(x, residual=r)
            if placement == "post":
                return self._norm(0).add(self.ffn(x), r)[0]
            return r + self._norm(1)(self.ffn(self._norm(0)(x)))
        if placement == "pre":
            # One fused pass: r = x + a and its norm.
            normed, r = self._norm(0).add(a, x)
            return self.ffn(normed, residual=r)
        if placement == "sandwich":
            normed, r = self._norm(0).add(a, x)
            return r + self._norm(1)(self.ffn(normed))
        r = x + a
        if placement == "none":
            return self.ffn(r, residual=r)
        return self._norm(0).add(self.ffn(r), r)[0]


class FusionUnit(nn.Module):
    """A fusion group: the members' attention sublayers in order, then every member's FFN
    reads the same stream ``h``: ``x = h + sum_l ffn_l(norm_l(h))``."""

    def __init__(
        self,
        indices: list[int],
        attn_norms: list[Norm],
        attns: list[Attention],
        ffn: FusedGroupFFN,
    ) -> None:
        super().__init__()
        self.layers = tuple(indices)
        self.attn_norms = nn.ModuleList(attn_norms)
        self.attns = nn.ModuleList(attns)
        self.ffn = ffn

    def forward(self, x: Tensor) -> Tensor:
        h = x
        for norm, attn in zip(self.attn_norms, self.attns, strict=True):
            h = h + attn(norm(h))
        flat = h.reshape(-1, h.shape[-1])
        return self.ffn(flat, residual=flat).reshape(h.shape)

"""Causal grouped-query attention with rotary embeddings, held fixed across designs.

Attention is the same torch code on both backends (`scaled_dot_product_attention`); only the
FFN side of a block is searched, so only the FFN side runs on our kernels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch import nn

from search_space.design import ModelDims
from workers.modules.init import Init

ROPE_THETA = 10_000.0


class Attention(nn.Module):
    def __init__(self, dims: ModelDims, init: Init) -> None:
        super().__init__()
        d, hd = dims.d_model, dims.head_dim
        self.n_heads = dims.n_heads
        self.n_kv_heads = dims.n_kv_heads
        self.head_dim = hd
        self.q = init.normal(d, d)
        self.k = init.normal(dims.n_kv_heads * hd, d)
        self.v = init.normal(dims.n_kv_heads * hd, d)
        self.o = init.normal(d, d, std=init.residual_std)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q = F.linear(x, self.q).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = F.linear(x, self.k).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = F.linear(x, self.v).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = _rope_tables(t, self.head_dim, x.device)
        q = _rotate(q, cos, sin)
        k = _rotate(k, cos, sin)
        if self.n_kv_heads != self.n_heads:
            repeat = self.n_heads // self.n_kv_heads
            k = k.repeat_interleave(repeat, dim=1)
            v = v.repeat_interleave(repeat, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return F.linear(out.transpose(1, 2).reshape(b, t, d), self.o)


_ROPE_CACHE: dict[tuple[int, int, str], tuple[Tensor, Tensor]] = {}


def _rope_tables(t: int, head_dim: int, device: torch.device) -> tuple[Tensor, Tensor]:
    key = (t, head_dim, str(device))
    cached = _ROPE_CACHE.get(key)
    if cached is None:
        half = head_dim // 2
        freq = ROPE_THETA ** (-torch.arange(half, dtype=torch.float32) / half)
        angle = torch.arange(t, dtype=torch.float32)[:, None] * freq[None, :]
        cached = (angle.cos().to(device), angle.sin().to(device))
        _ROPE_CACHE[key] = cached
    return cached


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    # Rotate-half RoPE on the first 2*(head_dim//2) features, in fp32.
    half = cos.shape[-1]
    x32 = x.float()
    a, b, rest = x32[..., :half], x32[..., half : 2 * half], x32[..., 2 * half :]
    out = torch.cat([a * cos - b * sin, b * cos + a * sin, rest], dim=-1)
    return out.to(x.dtype)

"""Deterministic, seeded parameter initialisation shared by both backends.

Every tensor is drawn on the CPU in float32 from one `torch.Generator` and only then moved and
cast, so the same seed gives the same weights whatever the backend, device or dtype.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# GPT-2 / nanoGPT-style init: N(0, 0.02), residual-stream output projections scaled by
# 1/sqrt(2 * n_layers) so the residual variance does not grow with depth.
BASE_STD = 0.02


def sub_seed(seed: int, *parts: int) -> int:
    """A seed for one sub-module, stable across runs (no Python ``hash`` randomisation)."""
    value = seed & 0xFFFFFFFF
    for part in parts:
        value = (value * 1_000_003 + part + 1) % (2**61 - 1)
    return value


class Init:
    def __init__(
        self, seed: int, *, n_layers: int, device: torch.device | str, dtype: torch.dtype
    ) -> None:
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.residual_std = BASE_STD / math.sqrt(2 * n_layers)
        self.device = device
        self.dtype = dtype

    def draw(self, *shape: int, std: float = BASE_STD) -> torch.Tensor:
        data = torch.randn(shape, generator=self.generator, dtype=torch.float32) * std
        return data.to(device=self.device, dtype=self.dtype)

    def normal(self, *shape: int, std: float = BASE_STD) -> nn.Parameter:
        return nn.Parameter(self.draw(*shape, std=std))

    def ones(self, *shape: int) -> nn.Parameter:
        return nn.Parameter(torch.ones(shape, device=self.device, dtype=self.dtype))

    def zeros(self, *shape: int) -> nn.Parameter:
        return nn.Parameter(torch.zeros(shape, device=self.device, dtype=self.dtype))

    def permutation(self, n: int) -> torch.Tensor:
        return torch.randperm(n, generator=self.generator)

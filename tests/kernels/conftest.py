"""Shared cases for the kernel tests: device, dtypes with their tolerances, odd shapes.

On the CPU the kernels run under TRITON_INTERPRET=1 (set by the root conftest) in float32 and
float16; bfloat16 runs only on a CUDA GPU (`-m gpu`): the interpreter's bf16 arithmetic is
not trustworthy here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
DEVICE = "cuda" if HAS_CUDA else "cpu"

# Odd token counts (Liger's "weird shapes"): none is a multiple of any tile size.
TOKENS = (6, 42, 123, 431)


@dataclass(frozen=True)
class Tol:
    atol: float
    rtol: float


# Tolerances, with why:
# * float32: the kernels accumulate in fp32 with exact (IEEE, not TF32) dots; the only
#   difference from torch is summation order over K <= ~200 terms of O(1) products, a few
#   ulp (1.2e-7 each) -> 1e-5.
# * float16: one rounding of the output (2^-11 = 4.9e-4 relative) plus the reference's extra
#   rounding of GEMM outputs before the activation/epilogue (the kernel keeps fp32); chained
#   through a second GEMM that is a few ulp of O(1) values -> 4e-3 (~8 ulp at 1.0).
# * bfloat16: the same chain with 2^-8 = 3.9e-3 per rounding -> 3e-2 (~8 ulp at 1.0).
TOLS = {
    torch.float32: Tol(1e-5, 1e-5),
    torch.float16: Tol(4e-3, 4e-3),
    torch.bfloat16: Tol(3e-2, 3e-2),
}

DTYPES = [
    pytest.param(torch.float32, id="fp32"),
    pytest.param(torch.float16, id="fp16"),
    pytest.param(
        torch.bfloat16,
        id="bf16",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not HAS_CUDA, reason="bfloat16 kernels are tested on a GPU"),
        ],
    ),
]


def randn(*shape: int, dtype: torch.dtype, scale: float = 1.0, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=gen) * scale).to(device=DEVICE, dtype=dtype)


def assert_close(
    got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype, *, activation: str = ""
) -> None:
    tol = TOLS[dtype]
    # Squared ReLU doubles the relative error of its (reference-rounded) input:
    # d(x^2)/x^2 = 2 dx/x, so its cases get twice the tolerance in half precision.
    factor = 2.0 if activation == "relu2" and dtype != torch.float32 else 1.0
    torch.testing.assert_close(
        got.float(), want.float(), atol=tol.atol * factor, rtol=tol.rtol * factor
    )

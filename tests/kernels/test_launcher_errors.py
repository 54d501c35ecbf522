"""Bad input raises ValueError naming the problem, before any kernel launches."""

from __future__ import annotations

import pytest
import torch

from kernels.activation import activate
from kernels.block_sparse import block_sparse_matmul
from kernels.blockdiag import blockdiag_ffn
from kernels.dense_ffn import dense_ffn
from kernels.layer_norm import layer_norm
from kernels.lowrank import lowrank_ffn
from kernels.matmul import matmul
from kernels.moe import moe_ffn
from kernels.moe import moe_route
from kernels.rms_norm import add_rms_norm
from kernels.rms_norm import rms_norm
from tests.kernels.conftest import DEVICE


def _t(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(shape, device=DEVICE).to(dtype)


def test_wrong_dtype() -> None:
    with pytest.raises(ValueError, match="dtype must be float32, float16 or bfloat16"):
        matmul(_t(4, 8).to(torch.float64), _t(8, 8).to(torch.float64))
    with pytest.raises(ValueError, match=r"w dtype must be torch.float32 \(as the input\)"):
        matmul(_t(4, 8), _t(8, 8, dtype=torch.float16))
    with pytest.raises(ValueError, match="x dtype must be"):
        rms_norm(torch.ones(4, 8, dtype=torch.int32, device=DEVICE), None)


def test_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="x has 8 columns but w expects 6"):
        matmul(_t(4, 8), _t(5, 6))
    with pytest.raises(ValueError, match=r"w_gate must have shape \(5, 8\)"):
        matmul(_t(4, 8), _t(5, 8), w_gate=_t(6, 8), activation="swiglu")
    with pytest.raises(ValueError, match=r"residual must have shape \(4, 5\)"):
        matmul(_t(4, 8), _t(5, 8), residual=_t(4, 8))
    with pytest.raises(ValueError, match=r"w_down must be \[d, f\]"):
        dense_ffn(_t(4, 8), _t(16, 8), _t(8, 12), activation="gelu")
    with pytest.raises(ValueError, match=r"w_down must have shape \(2, 4, 8\)"):
        blockdiag_ffn(_t(4, 8), _t(2, 8, 4), _t(2, 8, 4), activation="gelu")
    with pytest.raises(ValueError, match=r"up must be U\[out, r\], V\[r, 8\]"):
        lowrank_ffn(_t(4, 8), (_t(16, 3), _t(2, 8)), (_t(8, 3), _t(3, 16)), activation="gelu")
    with pytest.raises(ValueError, match=r"weight must have shape \(8,\)"):
        rms_norm(_t(4, 8), _t(7))
    with pytest.raises(ValueError, match=r"residual must have shape \(4, 8\)"):
        add_rms_norm(_t(4, 8), _t(3, 8), None)
    with pytest.raises(ValueError, match=r"up must have shape \(4, 8\)"):
        activate(_t(4, 8), "swiglu", _t(4, 9))


def test_activation_and_gate_must_agree() -> None:
    with pytest.raises(ValueError, match="activation 'swiglu' needs a gate weight"):
        matmul(_t(4, 8), _t(5, 8), activation="swiglu")
    with pytest.raises(ValueError, match="activation 'gelu' must not have a gate weight"):
        matmul(_t(4, 8), _t(5, 8), w_gate=_t(5, 8), activation="gelu")
    with pytest.raises(ValueError, match="activation must be one of"):
        activate(_t(4, 8), "tanh")


def test_top_k_larger_than_experts() -> None:
    with pytest.raises(
        ValueError, match=r"`1 <= top_k <= experts` must hold, but got top_k=5, experts=4"
    ):
        moe_route(_t(6, 8), _t(4, 8), 5)
    with pytest.raises(ValueError, match="top_k"):
        moe_ffn(_t(6, 8), _t(4, 8), _t(4, 16, 8), _t(4, 8, 16), top_k=5, activation="gelu")


def test_non_contiguous_where_unsupported() -> None:
    with pytest.raises(ValueError, match="x must be contiguous"):
        activate(_t(8, 4).t(), "gelu")
    with pytest.raises(ValueError, match=r"x rows must be contiguous \(stride\(1\) == 1\)"):
        layer_norm(_t(8, 4).t(), None, None)
    with pytest.raises(ValueError, match="x must be contiguous"):
        moe_ffn(_t(8, 6).t(), _t(4, 8), _t(4, 16, 8), _t(4, 8, 16), top_k=2, activation="gelu")


def test_block_sparse_mask_problems() -> None:
    with pytest.raises(ValueError, match="block_size must be one of"):
        block_sparse_matmul(_t(4, 32), _t(32, 32), torch.ones(2, 2, dtype=torch.bool), 8)
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 2\)"):
        block_sparse_matmul(
            _t(4, 32), _t(32, 32), torch.ones(1, 2, dtype=torch.bool, device=DEVICE), 16
        )
    with pytest.raises(ValueError, match="must be a multiple of block_size=16"):
        block_sparse_matmul(
            _t(4, 24), _t(32, 24), torch.ones(2, 1, dtype=torch.bool, device=DEVICE), 16
        )


def test_not_a_tensor() -> None:
    with pytest.raises(ValueError, match="x must be a torch.Tensor, but got list"):
        matmul([[1.0]], _t(1, 1))  # type: ignore[arg-type]

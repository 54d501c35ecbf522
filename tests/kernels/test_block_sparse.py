"""Block-sparse GEMM vs the masked dense reference, including all-zero tile columns."""

from __future__ import annotations

import math

import pytest
import torch

from kernels import reference as ref
from kernels.block_sparse import block_sparse_matmul
from kernels.block_sparse import tile_index
from tests.kernels.conftest import DEVICE
from tests.kernels.conftest import DTYPES
from tests.kernels.conftest import TOKENS
from tests.kernels.conftest import assert_close
from tests.kernels.conftest import randn


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize(("block", "density"), [(16, 0.3), (32, 0.6)])
def test_block_sparse_matches_masked_dense(
    tokens: int, block: int, density: float, dtype: torch.dtype
) -> None:
    n, k = 4 * block, 3 * block
    gen = torch.Generator().manual_seed(tokens + block)
    mask = (torch.rand(n // block, k // block, generator=gen) < density).to(DEVICE)
    mask[1] = False  # an output tile column with no kept tile must come out as residual only
    x = randn(tokens, k, dtype=dtype, seed=1)
    w = randn(n, k, dtype=dtype, scale=1 / math.sqrt(k), seed=2)
    res = randn(tokens, n, dtype=dtype, seed=3)
    got = block_sparse_matmul(x, w, mask, block, residual=res)
    assert_close(got, ref.block_sparse_matmul(x, w, mask, block, residual=res), dtype)
    assert_close(got[:, block : 2 * block], res[:, block : 2 * block], dtype)


def test_tile_index_lists_kept_tiles_per_output_column() -> None:
    mask = torch.tensor([[True, False, True], [False, False, False], [False, True, False]])
    row_ptr, k_tiles = tile_index(mask)
    assert row_ptr.tolist() == [0, 2, 2, 3]
    assert k_tiles.tolist() == [0, 2, 1]


def test_zero_tiles_are_never_read() -> None:
    # NaN in every dropped tile: if the kernel read one, the output would be NaN.
    block = 16
    mask = torch.tensor([[True, False], [False, True]], device=DEVICE)
    w = randn(32, 32, dtype=torch.float32, seed=1)
    full = mask.repeat_interleave(block, 0).repeat_interleave(block, 1)
    w_nan = torch.where(full, w, torch.full_like(w, float("nan")))
    x = randn(6, 32, dtype=torch.float32, seed=2)
    got = block_sparse_matmul(x, w_nan, mask, block)
    assert torch.isfinite(got).all()
    assert_close(got, ref.block_sparse_matmul(x, w, mask, block), torch.float32)

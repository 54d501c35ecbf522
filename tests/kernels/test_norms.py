"""RMSNorm / LayerNorm kernels (plain and fused with the residual add) vs references and
torch.nn.functional."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kernels import reference as ref
from kernels.layer_norm import add_layer_norm
from kernels.layer_norm import layer_norm
from kernels.rms_norm import add_rms_norm
from kernels.rms_norm import rms_norm
from tests.kernels.conftest import DTYPES
from tests.kernels.conftest import TOKENS
from tests.kernels.conftest import assert_close
from tests.kernels.conftest import randn

WIDTH = 200  # not a power of two: exercises the masked tail of the row


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tokens", TOKENS)
def test_add_rms_norm(tokens: int, dtype: torch.dtype) -> None:
    x = randn(tokens, WIDTH, dtype=dtype, seed=1)
    r = randn(tokens, WIDTH, dtype=dtype, seed=2)
    w = 1 + randn(WIDTH, dtype=dtype, scale=0.3, seed=3)
    out, summed = add_rms_norm(x, r, w, 1e-6)
    want_out, want_sum = ref.add_rms_norm(x, r, w, 1e-6)
    assert_close(out, want_out, dtype)
    assert_close(summed, want_sum, dtype)
    # And against torch's own RMSNorm of the (rounded) sum.
    assert_close(out, F.rms_norm(summed.float(), (WIDTH,), w.float(), 1e-6), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tokens", TOKENS)
def test_add_layer_norm(tokens: int, dtype: torch.dtype) -> None:
    x = randn(tokens, WIDTH, dtype=dtype, seed=1, scale=2.0) + 3.0  # non-zero mean
    r = randn(tokens, WIDTH, dtype=dtype, seed=2)
    w = 1 + randn(WIDTH, dtype=dtype, scale=0.3, seed=3)
    b = randn(WIDTH, dtype=dtype, scale=0.3, seed=4)
    out, summed = add_layer_norm(x, r, w, b, 1e-5)
    want_out, want_sum = ref.add_layer_norm(x, r, w, b, 1e-5)
    assert_close(out, want_out, dtype)
    assert_close(summed, want_sum, dtype)
    want = F.layer_norm(summed.float(), (WIDTH,), w.float(), b.float(), 1e-5)
    assert_close(out, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_norms_without_affine(dtype: torch.dtype) -> None:
    x = randn(42, WIDTH, dtype=dtype, seed=1)
    assert_close(rms_norm(x, None), ref.rms_norm(x, None), dtype)
    assert_close(layer_norm(x, None, None), ref.layer_norm(x, None, None), dtype)
    assert_close(layer_norm(x, None, None), F.layer_norm(x.float(), (WIDTH,)), dtype)


def test_norm_reads_rows_with_a_row_stride() -> None:
    big = randn(42, 2 * WIDTH, dtype=torch.float32, seed=1)
    x = big[:, :WIDTH]  # row stride 2*WIDTH, column stride 1
    w = randn(WIDTH, dtype=torch.float32, seed=2)
    assert_close(rms_norm(x, w), ref.rms_norm(x, w), torch.float32)

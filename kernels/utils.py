"""Shared launch helpers: input checks that raise ValueError, activation codes, configs."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
import triton
import triton.language as tl

SUPPORTED_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float16, torch.bfloat16)

# Activation name -> epilogue code of `apply_act`. Gated names use the same elementwise
# function on the gate branch (silu for swiglu, gelu for geglu).
ACT_CODES: dict[str, int] = {"none": 0, "swiglu": 1, "geglu": 2, "gelu": 2, "relu2": 3}
GATED_ACTIVATIONS: frozenset[str] = frozenset({"swiglu", "geglu"})

# Largest row the one-program-per-row norm kernels hold in registers (Liger's limit).
MAX_FUSED_SIZE = 65536


def interpreting() -> bool:
    """True under TRITON_INTERPRET=1 (CPU tests): configs shrink to one small tile."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def gemm_configs(
    cuda_configs: list[tuple[int, int, int, int, int]],
    interpret_config: tuple[int, int, int] = (32, 32, 32),
) -> list[triton.Config]:
    """Autotune configs ``(BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages)``.

    The interpreter runs every program of every config sequentially in numpy, so it gets a
    single config (autotuning would multiply test time by the number of configs).
    """
    if interpreting():
        bm, bn, bk = interpret_config
        return [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk})]
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
        for bm, bn, bk, w, s in cuda_configs
    ]


def shared_memory_limit() -> int:
    """Shared memory (bytes) one program may use on the current device, as Triton checks it
    at load time (227 KB on H100/H200, 163 KB on A100)."""
    from triton.runtime.driver import driver

    active = driver.active
    props = active.utils.get_device_properties(active.get_current_device())
    return int(props["max_shared_mem"])


def fit_stages(
    configs: list[triton.Config],
    stage_bytes: Callable[[triton.Config], int],
    *,
    limit: int,
    min_stages: int = 2,
) -> list[triton.Config]:
    """Lower each config's ``num_stages`` until ``num_stages * stage_bytes`` fits ``limit``.

    A config whose pipeline buffers exceed the device's shared memory fails to load, and the
    autotuner skips it after paying for its compile: the gated GEMM lost half its configs on
    sm_90 that way (`kernels.compile_check`). Fewer stages keep the tile shape, which matters
    more for decode GEMVs than the pipelining depth. Configs that do not fit even at
    ``min_stages`` are dropped (all of them: the last is kept, so the autotuner has one to
    try and Triton names the overflow); duplicates collapse; the order is kept.
    """
    out: list[triton.Config] = []
    seen: set[tuple[object, ...]] = set()
    for cfg in configs:
        per_stage = stage_bytes(cfg)
        stages = cfg.num_stages
        while stages > min_stages and stages * per_stage > limit:
            stages -= 1
        if stages * per_stage > limit:
            continue
        key = (tuple(sorted(cfg.kwargs.items())), cfg.num_warps, stages)
        if key in seen:
            continue
        seen.add(key)
        out.append(
            triton.Config(dict(cfg.kwargs), num_warps=cfg.num_warps, num_stages=stages)
            if stages != cfg.num_stages
            else cfg
        )
    return out or configs[-1:]


def activation_code(activation: str, *, gated: bool) -> int:
    if activation not in ACT_CODES:
        raise ValueError(f"activation must be one of {sorted(ACT_CODES)}, but got {activation!r}")
    if gated != (activation in GATED_ACTIVATIONS):
        need = "needs" if activation in GATED_ACTIVATIONS else "must not have"
        raise ValueError(
            f"activation {activation!r} {need} a gate weight, but got "
            f"w_gate={'given' if gated else 'None'}"
        )
    return ACT_CODES[activation]


def check_tensor(
    name: str,
    t: object,
    *,
    ndim: int | tuple[int, ...],
    like: torch.Tensor | None = None,
    contiguous: bool = False,
) -> torch.Tensor:
    """Raise ValueError unless ``t`` is a float tensor of a supported dtype with ``ndim``
    dims (and the dtype/device of ``like``)."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, but got {type(t).__name__}")
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if t.dim() not in dims:
        raise ValueError(
            f"{name} must have {' or '.join(map(str, dims))} dims, but got shape {tuple(t.shape)}"
        )
    if t.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"{name} dtype must be float32, float16 or bfloat16, but got {t.dtype}")
    if like is not None:
        if t.dtype != like.dtype:
            raise ValueError(
                f"{name} dtype must be {like.dtype} (as the input), but got {t.dtype}"
            )
        if t.device != like.device:
            raise ValueError(
                f"{name} must be on {like.device} (as the input), but is on {t.device}"
            )
    if contiguous and not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous, but got strides {t.stride()}")
    return t


def check_shape(name: str, t: torch.Tensor, shape: tuple[int, ...]) -> None:
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, but got {tuple(t.shape)}")


def check_device(x: torch.Tensor) -> None:
    """Kernels run on CUDA, or on the CPU under the interpreter."""
    if x.device.type != "cuda" and not interpreting():
        raise ValueError(
            f"Triton kernels need a CUDA tensor (or TRITON_INTERPRET=1 on the CPU), "
            f"but got a tensor on {x.device}"
        )


@triton.jit
def apply_act(x, ACT: tl.constexpr):  # type: ignore[no-untyped-def]
    """Elementwise activation in fp32: 0 identity, 1 silu, 2 tanh-GELU, 3 squared ReLU."""
    if ACT == 1:
        x = x * tl.sigmoid(x)
    elif ACT == 2:
        # 0.5*x*(1+tanh(u)) == x*sigmoid(2u), u = sqrt(2/pi)*(x + 0.044715 x^3); the
        # sigmoid form avoids a tanh the interpreter lacks.
        u = 0.7978845608028654 * (x + 0.044715 * x * x * x)
        x = x * tl.sigmoid(2.0 * u)
    elif ACT == 3:
        x = tl.maximum(x, 0.0)
        x = x * x
    return x

"""Compile every Triton kernel for a GPU this machine does not have, and report what it costs.

A kernel that only ever ran under ``TRITON_INTERPRET=1`` can still fail on the GPU: a type
error the numpy interpreter lets through, a tile that needs more shared memory than the chip
has, a GEMM that falls off the tensor-core path. Triton compiles to PTX and cubin without a
GPU when it is handed a target, so this module does that, for every launch the kernels make
and every autotune config of it:

1. **record** (a child process with ``TRITON_INTERPRET=1``): run each launcher on small CPU
   tensors (`WORKLOADS`) and record every kernel launch: the kernel, its arguments (tensor
   dtype and alignment, integer values) and its constexprs. Shapes that set constexprs (norm
   row widths, expert counts, top-k) are real model sizes; GEMM sizes are small, since only
   their specialisation (``== 1``, multiple of 16) reaches the compiler.
2. **compile** (this process, no interpreter): hand Triton a stand-in driver that reports the
   target (``sm_90`` by default) and call ``JITFunction.warmup`` with each recorded launch,
   once per autotune config and dtype; read shared memory from the kernel metadata, registers
   and stack (spills) from ``cuobjdump -res-usage`` on the cubin, and whether the PTX uses
   ``wgmma`` (Hopper's warpgroup MMA) or the TMA bulk copy.

A launch fails the check when a config does not compile, or when no config fits the chip's
shared memory (the autotuner would have nothing to run). Configs that compile but do not fit
are reported as dead weight: the autotuner skips them on the GPU, after compiling them.

Usage: ``python -m kernels.compile_check [--arch 90] [--dtype bf16 --dtype fp16] [--json F]``;
exit status 0 when every launch passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import multiprocessing
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kernels.compile_workloads import RECORD_DTYPE
from kernels.compile_workloads import WORKLOADS

log = logging.getLogger("kernels.compile_check")

# Opt-in shared memory per block (bytes) by compute capability: the CUDA programming guide's
# "maximum amount of shared memory per thread block" (227 KB on Hopper, 163 KB on A100,
# 99 KB on consumer Ampere/Ada).
SHARED_LIMIT = {90: 232448, 80: 166912, 86: 101376, 89: 101376}

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

# Config keys the autotuner owns; what a recorded launch carries besides them is its own.
_LAUNCH_OPTIONS = ("num_warps", "num_stages", "num_ctas", "maxnreg", "ir_override")


@dataclass(frozen=True)
class Launch:
    """One kernel launch as the GPU would compile it."""

    workload: str
    kernel: str  # "module:attribute", e.g. "kernels.matmul:_matmul_kernel"
    args: tuple[Any, ...]  # {"tensor": dtype, "aligned": bool} | int | float | None
    kwargs: tuple[tuple[str, Any], ...]  # constexprs and launch options, sorted

    def key(self) -> tuple[Any, ...]:
        """What Triton specialises on: ints by ``== 1`` / ``% 16 == 0``, tensors by dtype."""
        spec = tuple(_spec(a) for a in self.args)
        return (self.kernel, spec, self.kwargs)


def _spec(arg: Any) -> Any:
    if isinstance(arg, bool) or not isinstance(arg, int):
        return json.dumps(arg, sort_keys=True)
    return "1" if arg == 1 else "16k" if arg % 16 == 0 else "int"


@dataclass
class Result:
    """One launch compiled with one config in one dtype."""

    workload: str
    kernel: str
    dtype: str
    config: dict[str, Any]
    ok: bool
    error: str | None = None
    shared_bytes: int | None = None
    fits_shared: bool | None = None
    registers: int | None = None
    stack_bytes: int | None = None
    wgmma: bool | None = None
    tma: bool | None = None
    seconds: float = 0.0

    @property
    def viable(self) -> bool:
        return self.ok and bool(self.fits_shared)


# ----------------------------------------------------------------------------- record


def _describe(arg: Any) -> Any:
    if isinstance(arg, torch.Tensor):
        return {
            "tensor": str(arg.dtype).removeprefix("torch."),
            "aligned": arg.data_ptr() % 16 == 0,
        }
    if isinstance(arg, bool | int | float | str) or arg is None:
        return arg
    raise TypeError(f"cannot record a kernel argument of type {type(arg).__name__}")


@contextmanager
def _recording(sink: list[Launch], workload: list[str]) -> Iterator[None]:
    from triton.runtime.interpreter import InterpretedFunction

    original = InterpretedFunction.run

    def run(self: Any, *args: Any, grid: Any, warmup: bool, **kwargs: Any) -> Any:
        fn = self.fn
        sink.append(
            Launch(
                workload=workload[0],
                kernel=f"{fn.__module__}:{fn.__name__}",
                args=tuple(_describe(a) for a in args),
                kwargs=tuple(sorted((k, _describe(v)) for k, v in kwargs.items())),
            )
        )
        return original(self, *args, grid=grid, warmup=warmup, **kwargs)

    InterpretedFunction.run = run  # type: ignore[method-assign]
    try:
        yield
    finally:
        InterpretedFunction.run = original  # type: ignore[method-assign]


def record(names: list[str] | None = None) -> list[Launch]:
    """Run the workloads under the interpreter; one `Launch` per distinct specialisation."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("record() runs under TRITON_INTERPRET=1 (use record_in_child())")
    launches: list[Launch] = []
    current = [""]
    with _recording(launches, current):
        for name in names or list(WORKLOADS):
            current[0] = name
            WORKLOADS[name]()
    unique: dict[tuple[Any, ...], Launch] = {}
    for launch in launches:
        unique.setdefault(launch.key(), launch)
    return list(unique.values())


def record_in_child(names: list[str] | None = None) -> list[Launch]:
    """`record` in a child process with the interpreter on (kernels import differently)."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    cmd = [sys.executable, "-m", "kernels.compile_check", "--record-only"]
    for name in names or []:
        cmd += ["--workload", name]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"recording the kernel launches failed:\n{done.stderr[-4000:]}")
    return [_launch_from_json(item) for item in json.loads(done.stdout)]


def _launch_from_json(item: dict[str, Any]) -> Launch:
    return Launch(
        workload=item["workload"],
        kernel=item["kernel"],
        args=tuple(item["args"]),
        kwargs=tuple((k, v) for k, v in item["kwargs"]),
    )


# ----------------------------------------------------------------------------- compile


class _TargetUtils:
    def __init__(self, arch: int) -> None:
        self.arch = arch

    def get_device_properties(self, device: int) -> dict[str, int]:
        del device
        return {"max_shared_mem": SHARED_LIMIT[self.arch]}


class _TargetDriver:
    """The part of a Triton driver that compiling (not launching) asks for."""

    def __init__(self, arch: int) -> None:
        from triton.backends.compiler import GPUTarget

        self.target = GPUTarget("cuda", arch, 32)
        self.utils = _TargetUtils(arch)

    def get_current_target(self) -> Any:
        return self.target

    def get_current_device(self) -> int:
        return 0

    def get_current_stream(self, device: int | None = None) -> int:
        del device
        return 0

    def get_active_torch_device(self) -> torch.device:
        return torch.device("cpu")


_ARCH: list[int] = []


def _init_worker(arch: int) -> None:
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise RuntimeError("compiling for a GPU target needs TRITON_INTERPRET unset")
    from triton.runtime.driver import driver

    driver.set_active(_TargetDriver(arch))  # type: ignore[arg-type]
    _ARCH[:] = [arch]


def _cuobjdump() -> str:
    import triton

    return str(Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump")


def _resources(cubin: bytes) -> tuple[int | None, int | None]:
    """(registers, stack bytes) of the cubin's one function, from ``cuobjdump -res-usage``."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as fh:
        fh.write(cubin)
        fh.flush()
        out = subprocess.run(
            [_cuobjdump(), "-res-usage", fh.name], capture_output=True, text=True, check=False
        ).stdout
    reg = re.search(r"REG:(\d+)", out)
    stack = re.search(r"STACK:(\d+)", out)
    return (int(reg.group(1)) if reg else None, int(stack.group(1)) if stack else None)


def _kernel(name: str) -> tuple[Any, Any]:
    """(JIT function, its autotuner or None) for ``module:attribute``."""
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.jit import JITFunction

    module, attr = name.split(":")
    obj = getattr(importlib.import_module(module), attr)
    tuner = obj if isinstance(obj, Autotuner) else None
    fn = obj
    while not isinstance(fn, JITFunction):  # Autotuner / Heuristics wrap the JITFunction
        fn = fn.fn
    return fn, tuner


def _configs(tuner: Any, args: list[Any], own: dict[str, Any]) -> list[dict[str, Any]]:
    """The autotuner's configs after its own pruning (as it would run them on the GPU)."""
    configs = tuner.configs
    prune = getattr(tuner, "early_config_prune", None)
    if prune is not None:
        configs = prune(configs, dict(zip(tuner.arg_names, args, strict=False)), **own)
    return [c.all_kwargs() for c in configs]


def _mock(arg: Any, dtype: torch.dtype) -> Any:
    from triton.runtime.jit import MockTensor

    if isinstance(arg, dict) and "tensor" in arg:
        recorded = getattr(torch, arg["tensor"])
        return MockTensor(dtype if recorded == RECORD_DTYPE else recorded)
    return arg


def compile_launch(launch: Launch, dtype_name: str) -> list[Result]:
    """Compile one recorded launch with each of its configs (in a worker set by
    `_init_worker`)."""
    fn, tuner = _kernel(launch.kernel)
    dtype = DTYPES[dtype_name]
    own = dict(launch.kwargs)
    if tuner is not None:
        tuned = set(tuner.configs[0].all_kwargs()) | set(_LAUNCH_OPTIONS)
        own = {k: v for k, v in own.items() if k not in tuned}
    if dtype == torch.float32 and "IEEE" in own:
        own["IEEE"] = True
    args = [_mock(a, dtype) for a in launch.args]
    configs = _configs(tuner, args, own) if tuner is not None else [{}]
    results = []
    for config in configs:
        shown = {k: v for k, v in config.items() if v is not None}
        result = Result(launch.workload, launch.kernel, dtype_name, shown, ok=False)
        start = time.perf_counter()
        try:
            kernel = fn.warmup(*args, grid=(1,), **own, **config)
        except Exception as exc:  # noqa: BLE001 - any compiler failure is the finding
            result.error = f"{type(exc).__name__}: {str(exc).strip()[-2000:]}"
        else:
            result.ok = True
            result.shared_bytes = int(kernel.metadata.shared)
            result.fits_shared = result.shared_bytes <= SHARED_LIMIT.get(_ARCH[0], 0)
            result.registers, result.stack_bytes = _resources(kernel.asm["cubin"])
            ptx = kernel.asm["ptx"]
            result.wgmma = "wgmma.mma_async" in ptx
            result.tma = "cp.async.bulk.tensor" in ptx
        result.seconds = round(time.perf_counter() - start, 3)
        results.append(result)
    return results


def _compile_task(task: tuple[Launch, str]) -> list[Result]:
    return compile_launch(*task)


def compile_all(
    launches: list[Launch], *, arch: int, dtypes: list[str], workers: int | None = None
) -> list[tuple[Launch, str, list[Result]]]:
    """Compile every launch in every dtype for ``sm_<arch>`` in a pool of spawned processes
    (each sets the stand-in driver before importing the kernels)."""
    if arch not in SHARED_LIMIT:
        raise ValueError(f"arch must be one of {sorted(SHARED_LIMIT)}, but got {arch}")
    unknown = sorted(set(dtypes) - set(DTYPES))
    if unknown:
        raise ValueError(f"dtypes must be among {sorted(DTYPES)}, but got {unknown}")
    tasks = [(launch, dtype) for launch in launches for dtype in dtypes]
    workers = workers or max(1, min(len(tasks), os.cpu_count() or 1))
    # The children must import the kernels as JIT functions, not interpreted ones.
    env_before = os.environ.pop("TRITON_INTERPRET", None)
    try:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init_worker, initargs=(arch,)
        ) as pool:
            batches = list(pool.map(_compile_task, tasks))
    finally:
        if env_before is not None:
            os.environ["TRITON_INTERPRET"] = env_before
    return [(launch, dtype, batch) for (launch, dtype), batch in zip(tasks, batches, strict=True)]


# ----------------------------------------------------------------------------- report


@dataclass
class LaunchSummary:
    """Every config of one launch in one dtype."""

    workload: str
    kernel: str
    dtype: str
    constexprs: dict[str, Any]
    results: list[Result]

    @property
    def errors(self) -> list[str]:
        return [f"{r.config}: {r.error}" for r in self.results if not r.ok]

    @property
    def viable(self) -> list[Result]:
        return [r for r in self.results if r.viable]

    @property
    def dead(self) -> list[Result]:
        """Compiled, but over the chip's shared memory: the autotuner compiles and skips it."""
        return [r for r in self.results if r.ok and not r.fits_shared]

    @property
    def spilling(self) -> list[Result]:
        """Viable, but with a stack frame: registers spill to local memory."""
        return [r for r in self.viable if (r.stack_bytes or 0) > 0]

    @property
    def passed(self) -> bool:
        return not self.errors and bool(self.viable)

    def as_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "kernel": self.kernel,
            "dtype": self.dtype,
            "constexprs": self.constexprs,
            "passed": self.passed,
            "configs": [dataclasses.asdict(r) for r in self.results],
        }


def summarize(compiled: list[tuple[Launch, str, list[Result]]]) -> list[LaunchSummary]:
    out = []
    for launch, dtype, batch in compiled:
        constexprs = {k: v for k, v in launch.kwargs if k not in _LAUNCH_OPTIONS}
        for key in ("BLOCK_M", "BLOCK_N", "BLOCK_K"):  # tuned: shown per config instead
            if batch and key in batch[0].config:
                constexprs.pop(key, None)
        out.append(LaunchSummary(launch.workload, launch.kernel, dtype, constexprs, batch))
    return out


def format_report(summaries: list[LaunchSummary], arch: int) -> str:
    lines = [
        f"{'kernel':<34}{'dtype':<6}{'constexprs':<52}{'viable':>7}{'dead':>5}{'spill':>6}"
        f"{'wgmma':>6}{'max smem KB':>12}{'max reg':>8}  status",
    ]
    for s in summaries:
        ce = ",".join(f"{k}={v}" for k, v in s.constexprs.items())
        ok = [r for r in s.results if r.ok]
        smem = max((r.shared_bytes or 0) for r in s.viable) / 1024 if s.viable else 0.0
        regs = max((r.registers or 0) for r in ok) if ok else 0
        wgmma = sum(bool(r.wgmma) for r in s.viable)
        status = "ok" if s.passed else "FAIL"
        lines.append(
            f"{s.kernel.split(':')[1][:33]:<34}{s.dtype:<6}{ce[:51]:<52}"
            f"{len(s.viable):>4}/{len(s.results):<2}{len(s.dead):>5}{len(s.spilling):>6}"
            f"{wgmma:>6}{smem:>12.0f}{regs:>8}  {status}"
        )
        lines.extend(f"    error {e[:300]}" for e in s.errors)
    failed = sum(not s.passed for s in summaries)
    lines.append(
        f"sm_{arch}: {len(summaries)} launches, {sum(len(s.results) for s in summaries)} "
        f"compiles, {failed} failed; shared-memory limit {SHARED_LIMIT[arch]} bytes"
    )
    return "\n".join(lines)


def environment(arch: int) -> dict[str, Any]:
    import triton

    return {
        "target": f"sm_{arch}",
        "shared_limit_bytes": SHARED_LIMIT[arch],
        "triton": triton.__version__,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "host": platform.node(),
        "note": "compiled without a GPU: PTX and cubin only, nothing ran",
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m kernels.compile_check", description=__doc__)
    p.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90 or 80")
    p.add_argument("--dtype", action="append", choices=sorted(DTYPES), help="default: bf16")
    p.add_argument("--workload", action="append", choices=sorted(WORKLOADS))
    p.add_argument("--json", type=Path, help="write the full report here")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--record-only", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.record_only:
        launches = record(args.workload)
        json.dump([dataclasses.asdict(launch) for launch in launches], sys.stdout)
        return 0
    if args.arch not in SHARED_LIMIT:
        log.error("--arch must be one of %s, but got %s", sorted(SHARED_LIMIT), args.arch)
        return 2
    dtypes = args.dtype or ["bf16"]
    start = time.perf_counter()
    launches = record_in_child(args.workload)
    log.info("recorded %d distinct launches in %.1f s", len(launches), time.perf_counter() - start)
    summaries = summarize(
        compile_all(launches, arch=args.arch, dtypes=dtypes, workers=args.workers)
    )
    log.info("%s", format_report(summaries, args.arch))
    log.info("total %.1f s", time.perf_counter() - start)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "environment": environment(args.arch),
            "launches": [s.as_dict() for s in summaries],
        }
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0 if all(s.passed for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())

"""What a worker measures on: hardware fingerprint, calibration GEMM and its health check.

A worker fingerprints its hardware at start, runs one fixed calibration GEMM and refuses to
serve when the result is below 90% of that target's rolling median (performance.md §6.1:
clocks vary by 5% inside one node and by ~35% across machines, so a slow node must be caught
before its numbers enter the latency table).

GPU work (`fingerprint("cuda")`, `calibrate("cuda")`, `probe`) initialises CUDA, so it must run
in the spawned sandbox child, never in the forking Celery process:
``Sandbox().call(probe, "cuda")``. Clocks are read with ``nvidia-smi --query-gpu``; nothing
here sets them.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import statistics
import subprocess
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field

__all__ = [
    "CALIBRATION_HISTORY",
    "CALIBRATION_THRESHOLD",
    "Calibration",
    "TargetProbe",
    "calibrate",
    "check_calibration",
    "default_target_name",
    "fingerprint",
    "probe",
    "record_calibration",
]

logger = logging.getLogger(__name__)

# Refuse to serve below this share of the rolling median (performance.md §6.1).
CALIBRATION_THRESHOLD = 0.9
# How many past calibrations of a target the rolling median looks at.
CALIBRATION_HISTORY = 20
# The GPU calibration is the reference GEMM of performance.md §6.1: 8192^3 in bf16, which
# cuBLAS runs at ~800 TFLOP/s on an H100 SXM (~1.4 ms). The CPU one is a 1024^3 fp32 GEMM
# (~2.1 GFLOP; ~40 ms on 2 EPYC cores), long enough to be stable, short enough for start-up.
GPU_CALIBRATION_N = 8192
CPU_CALIBRATION_N = 1024

_NVIDIA_SMI_FIELDS = (
    "driver_version",
    "clocks.sm",
    "clocks.mem",
    "clocks.max.sm",
    "clocks.max.mem",
    "power.limit",
    "temperature.gpu",
    "pci.bus_id",
)


class Calibration(BaseModel):
    """One run of the calibration GEMM."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gflops: float = Field(gt=0, description="Achieved GFLOP/s at the median time.")
    p50_ms: float = Field(gt=0)
    shape: tuple[int, int, int]
    dtype: str
    method: str


class TargetProbe(BaseModel):
    """What a worker learns about its hardware at start."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    fingerprint: dict[str, Any]
    calibration: Calibration


def _versions() -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {"torch": torch.__version__, "python": platform.python_version()}
    try:
        import triton

        out["triton"] = triton.__version__
    except ImportError:  # no triton wheel on this platform (macOS); CPU targets need none
        out["triton"] = None
    return out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def _nvidia_smi(index: int) -> dict[str, str]:
    """Driver and clocks as read (never set) by nvidia-smi; empty when it is missing."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {}
    try:
        text = subprocess.run(
            [
                exe,
                f"--query-gpu={','.join(_NVIDIA_SMI_FIELDS)}",
                "--format=csv,noheader,nounits",
                f"--id={index}",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("nvidia-smi query failed: %s", exc)
        return {}
    values = [v.strip() for v in text.strip().splitlines()[0].split(",")] if text else []
    return dict(zip(_NVIDIA_SMI_FIELDS, values, strict=False))


def fingerprint(device: str = "auto") -> dict[str, Any]:
    """The hardware and software a latency number depends on.

    ``device``: ``"cpu"``, ``"cuda"``/``"cuda:N"``, or ``"auto"`` (CUDA when available).
    """
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        smi = _nvidia_smi(index)
        return {
            "kind": "gpu",
            "name": props.name,
            "sm_count": props.multi_processor_count,
            "memory_bytes": props.total_memory,
            "compute_capability": f"{props.major}.{props.minor}",
            "driver": smi.get("driver_version"),
            "cuda": torch.version.cuda,
            "clocks_mhz": {
                "sm": smi.get("clocks.sm"),
                "mem": smi.get("clocks.mem"),
                "max_sm": smi.get("clocks.max.sm"),
                "max_mem": smi.get("clocks.max.mem"),
            },
            "power_limit_w": smi.get("power.limit"),
            "temperature_c": smi.get("temperature.gpu"),
            "pci_bus_id": smi.get("pci.bus_id"),
            **_versions(),
        }
    if dev.type != "cpu":
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', but got {device!r}")
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "kind": "cpu",
        "name": _cpu_model(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "cores_available": affinity,
        "torch_threads": torch.get_num_threads(),
        **_versions(),
    }


def default_target_name(fp: dict[str, Any]) -> str:
    """``cpu`` for CPU targets, else a slug of the GPU name (``nvidia-h100-80gb-hbm3``)."""
    if fp.get("kind") == "cpu":
        return "cpu"
    name = str(fp.get("name") or "gpu").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", name).strip("-")
    return slug or "gpu"


def calibrate(device: str = "cpu") -> Calibration:
    """Time the fixed calibration GEMM on ``device`` with the project's timing protocol."""
    import torch

    from workers.timing import is_cuda
    from workers.timing import measure

    if is_cuda(device):
        n, dtype, dtype_name = GPU_CALIBRATION_N, torch.bfloat16, "bf16"
    else:
        n, dtype, dtype_name = CPU_CALIBRATION_N, torch.float32, "fp32"
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    stats = measure(lambda: torch.matmul(a, b), device=device, min_run_time_s=0.5)
    gflops = 2.0 * n**3 / (stats.p50_ms * 1e-3) / 1e9
    return Calibration(
        gflops=gflops, p50_ms=stats.p50_ms, shape=(n, n, n), dtype=dtype_name, method=stats.method
    )


def check_calibration(
    history: Sequence[float],
    value: float,
    *,
    threshold: float = CALIBRATION_THRESHOLD,
    window: int = CALIBRATION_HISTORY,
) -> tuple[bool, str]:
    """Is ``value`` (GFLOP/s) at least ``threshold`` x the median of the last ``window`` runs?

    Returns ``(ok, message)``; the message is meant for the log and the targets API.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"`0 < threshold <= 1` must hold, but got threshold={threshold}")
    recent = [h for h in list(history)[-window:] if h > 0]
    if not recent:
        return True, f"calibration {value:.1f} GFLOP/s (first run on this target)"
    median = statistics.median(recent)
    ratio = value / median
    if ratio < threshold:
        return False, (
            f"calibration {value:.1f} GFLOP/s is {ratio:.0%} of this target's rolling median "
            f"{median:.1f} GFLOP/s over {len(recent)} runs; a worker must reach "
            f">= {threshold:.0%} to serve (slow clocks, thermal throttling or a busy device)"
        )
    return True, (
        f"calibration {value:.1f} GFLOP/s = {ratio:.0%} of the rolling median "
        f"{median:.1f} GFLOP/s over {len(recent)} runs"
    )


def record_calibration(
    previous: dict[str, Any] | None, new: Calibration
) -> tuple[dict[str, Any], bool, str]:
    """Check ``new`` against the target's history and return the JSON to store.

    ``previous`` is the stored `Target.calibration` (or None): the latest run plus
    ``history``, the GFLOP/s of the last `CALIBRATION_HISTORY` runs on this target by any of
    its workers. Returns ``(calibration_json, ok, message)``; a refused run is kept out of
    the history, so one slow node cannot drag the median down.
    """
    history = [float(h) for h in (previous or {}).get("history", [])]
    ok, message = check_calibration(history, new.gflops)
    if ok:
        history = [*history, new.gflops][-CALIBRATION_HISTORY:]
    return {**new.model_dump(mode="json"), "history": history}, ok, message


def probe(device: str = "auto") -> TargetProbe:
    """Fingerprint + calibration, in one call for the sandbox child at worker start."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    fp = fingerprint(device)
    return TargetProbe(name=default_target_name(fp), fingerprint=fp, calibration=calibrate(device))

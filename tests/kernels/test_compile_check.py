"""`kernels.compile_check`: every kernel launch compiles for sm_90 (H100/H200) in bf16, fits
its shared memory, and the GEMMs take the wgmma path without spilling.

The kernels run under the interpreter everywhere else in this suite; this is the one place
the real compiler (Triton -> PTX -> ptxas cubin) sees them, without a GPU.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import triton

from kernels.compile_check import SHARED_LIMIT
from kernels.compile_workloads import WORKLOADS
from kernels.utils import fit_stages

ROOT = Path(__file__).resolve().parents[2]
KERNEL_MODULES = (
    "activation", "block_sparse", "layer_norm", "matmul", "moe", "rms_norm",
)  # fmt: skip


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("compile") / "sm90.json"
    done = subprocess.run(
        [sys.executable, "-m", "kernels.compile_check", "--arch", "90", "--json", str(out)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert out.exists(), done.stderr[-4000:]
    data: dict[str, Any] = json.loads(out.read_text())
    data["returncode"] = done.returncode
    data["log"] = done.stderr
    return data


def test_every_launch_compiles_for_sm90_and_fits(report: dict[str, Any]) -> None:
    failed = [
        (item["kernel"], item["constexprs"], [c["error"] for c in item["configs"] if c["error"]])
        for item in report["launches"]
        if not item["passed"]
    ]
    assert not failed, failed
    assert report["returncode"] == 0, report["log"][-4000:]
    assert report["environment"]["target"] == "sm_90"


def test_every_kernel_in_the_package_is_checked(report: dict[str, Any]) -> None:
    checked = {item["kernel"] for item in report["launches"]}
    defined = set()
    for name in KERNEL_MODULES:
        module = importlib.import_module(f"kernels.{name}")
        defined |= {
            f"kernels.{name}:{attr}"
            for attr in vars(module)
            if attr.startswith("_") and attr.endswith("_kernel")
        }
    assert defined, "no kernels found"
    assert defined <= checked, sorted(defined - checked)
    assert {item["workload"] for item in report["launches"]} == set(WORKLOADS)


def test_gemms_take_wgmma_without_spilling(report: dict[str, Any]) -> None:
    gemms = ("kernels.matmul:_matmul_kernel", "kernels.moe:_grouped_matmul_kernel")
    seen = 0
    for item in report["launches"]:
        if item["kernel"] not in gemms:
            continue
        for cfg in item["configs"]:
            seen += 1
            # No config is dead weight: the pruner fitted each pipeline in shared memory.
            assert cfg["fits_shared"], (item["constexprs"], cfg["config"], cfg["shared_bytes"])
            # A few bytes of stack (<= 16) is the 255-register cap brushing a temp; the
            # spilling configs the pruner drops had 512-1024.
            assert cfg["stack_bytes"] <= 16, (item["constexprs"], cfg["config"], cfg)
            if cfg["config"]["BLOCK_M"] >= 64:
                assert cfg["wgmma"], (item["constexprs"], cfg["config"])
    assert seen > 50


def test_compile_failures_and_oversized_tiles_fail_the_check() -> None:
    """The checker can fail: a kernel that does not compile and one whose only config
    exceeds shared memory are both reported as failed launches."""
    script = """
import json, sys
from kernels.compile_check import Launch, LaunchSummary, _init_worker, compile_launch
_init_worker(90)
t = {"tensor": "float16", "aligned": True}
out = []
for launch in (
    Launch("t", "tests.kernels.compile_targets:_mismatched_dot_kernel", (t, t), (("BLOCK", 32),)),
    Launch("t", "tests.kernels.compile_targets:_oversized_tile_kernel", (t, t, t, 1024), ()),
):
    rs = compile_launch(launch, "bf16")
    s = LaunchSummary("t", launch.kernel, "bf16", {}, rs)
    out.append({"passed": s.passed, "errors": s.errors, "dead": len(s.dead)})
json.dump(out, sys.stdout)
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    bad_dot, oversized = json.loads(done.stdout)
    assert not bad_dot["passed"] and bad_dot["errors"]
    assert "CompilationError" in bad_dot["errors"][0]
    assert not oversized["passed"] and not oversized["errors"] and oversized["dead"] == 1


def test_fit_stages_lowers_stages_then_drops() -> None:
    cfgs = [
        triton.Config({"B": 1}, num_warps=4, num_stages=4),  # 4 x 60 KB > 227 KB -> 3
        triton.Config({"B": 2}, num_warps=4, num_stages=3),  # 2 x 120 KB > 227 KB -> dropped
        triton.Config({"B": 3}, num_warps=4, num_stages=2),  # fits as is
        triton.Config({"B": 1}, num_warps=4, num_stages=3),  # same as the first after fitting
    ]
    per_stage = {1: 60 * 1024, 2: 120 * 1024, 3: 10 * 1024}
    fitted = fit_stages(cfgs, lambda c: per_stage[c.kwargs["B"]], limit=SHARED_LIMIT[90])
    assert [(c.kwargs["B"], c.num_stages) for c in fitted] == [(1, 3), (3, 2)]
    assert fitted[1] is cfgs[2]
    # Nothing fits: the last config survives so the autotuner has something to run.
    assert fit_stages(cfgs[1:2], lambda c: 10**9, limit=1) == cfgs[1:2]

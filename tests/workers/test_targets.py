"""Target fingerprint, names, calibration GEMM and the 90%-of-rolling-median rule."""

from __future__ import annotations

import pytest
import torch

from workers.targets import CPU_CALIBRATION_N
from workers.targets import Calibration
from workers.targets import calibrate
from workers.targets import check_calibration
from workers.targets import default_target_name
from workers.targets import fingerprint
from workers.targets import record_calibration


def test_cpu_fingerprint_records_hardware_and_versions() -> None:
    fp = fingerprint("cpu")
    assert fp["kind"] == "cpu"
    assert fp["cores"] >= 1 and fp["torch_threads"] == torch.get_num_threads()
    assert fp["torch"] == torch.__version__
    assert isinstance(fp["name"], str) and fp["name"]


def test_fingerprint_rejects_unknown_device() -> None:
    with pytest.raises(ValueError, match="device must be"):
        fingerprint("meta")


@pytest.mark.parametrize(
    ("fp", "name"),
    [
        ({"kind": "cpu", "name": "AMD EPYC"}, "cpu"),
        ({"kind": "gpu", "name": "NVIDIA H100 80GB HBM3"}, "nvidia-h100-80gb-hbm3"),
        ({"kind": "gpu", "name": "NVIDIA H200"}, "nvidia-h200"),
        ({"kind": "gpu", "name": "  NVIDIA  A100-SXM4-40GB "}, "nvidia-a100-sxm4-40gb"),
    ],
)
def test_default_target_name(fp: dict[str, str], name: str) -> None:
    assert default_target_name(fp) == name


def test_calibration_reports_consistent_flops() -> None:
    cal = calibrate("cpu")
    n = CPU_CALIBRATION_N
    assert cal.shape == (n, n, n) and cal.dtype == "fp32"
    assert cal.gflops == pytest.approx(2 * n**3 / (cal.p50_ms * 1e-3) / 1e9)


def test_check_calibration_first_run_is_accepted() -> None:
    ok, message = check_calibration([], 100.0)
    assert ok and "first run" in message


def test_check_calibration_refuses_below_90_percent_of_rolling_median() -> None:
    history = [100.0, 102.0, 98.0, 101.0, 99.0]  # median 100
    ok, message = check_calibration(history, 89.0)
    assert not ok
    assert "89%" in message and "100.0" in message
    ok, _ = check_calibration(history, 90.5)
    assert ok


def test_check_calibration_uses_the_recent_window_only() -> None:
    # Old runs at 200 GFLOP/s fell out of the window; the last 3 have median 100.
    ok, _ = check_calibration([200.0] * 10 + [100.0, 100.0, 100.0], 95.0, window=3)
    assert ok
    ok, _ = check_calibration([200.0] * 10 + [100.0, 100.0, 100.0], 95.0, window=20)
    assert not ok


@pytest.mark.gpu
def test_gpu_fingerprint_and_calibration() -> None:
    fp = fingerprint("cuda")
    assert fp["kind"] == "gpu" and fp["sm_count"] > 0 and fp["memory_bytes"] > 0
    assert fp["driver"] and fp["clocks_mhz"]["sm"]
    cal = calibrate("cuda")
    assert cal.shape == (8192, 8192, 8192) and cal.dtype == "bf16"
    assert cal.gflops > 1e4  # any datacenter GPU does > 10 TFLOP/s in bf16


def test_record_calibration_keeps_a_rolling_history_of_accepted_runs() -> None:
    def cal(gflops: float) -> Calibration:
        return Calibration(gflops=gflops, p50_ms=1.0, shape=(8, 8, 8), dtype="fp32", method="m")

    stored, ok, _ = record_calibration(None, cal(100.0))
    assert ok and stored["history"] == [100.0] and stored["gflops"] == 100.0
    stored, ok, _ = record_calibration(stored, cal(104.0))
    assert ok and stored["history"] == [100.0, 104.0]
    refused, ok, message = record_calibration(stored, cal(80.0))
    assert not ok and "78%" in message
    assert refused["history"] == [100.0, 104.0]  # a slow node does not enter the median

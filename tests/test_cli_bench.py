"""`ffnas bench`: per-layer timings that add up to the additive total, and clean exits."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims
from service.cli.main import app

DIMS = ModelDims(d_model=32, n_layers=3, n_heads=4, n_kv_heads=2, vocab=256, seq_len=64)


def _design(tmp_path: Path) -> Path:
    design = FFNDesign(
        dims=DIMS,
        layers=(
            LayerFFN(width=64),
            LayerFFN(kind="moe", width=16, experts=4, top_k=2),
            LayerFFN(kind="noop"),
        ),
    )
    path = tmp_path / "design.json"
    path.write_text(design.to_json())
    return path


def test_bench_reports_every_layer_and_the_end_to_end_check(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["bench", str(_design(tmp_path)), "--seq", "32", "--device", "cpu", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    additive = out["additive"]
    assert len(additive["per_layer_ms"]) == DIMS.n_layers
    assert all(ms > 0 for ms in additive["per_layer_ms"])
    parts = sum(additive["per_layer_ms"]) + additive["fixed_ms"]
    assert abs(parts - additive["total_ms"]) <= 1e-9 * max(1.0, additive["total_ms"])
    assert out["end_to_end"]["p50_ms"] > 0
    e2e = out["end_to_end"]["p50_ms"]
    assert out["additive_error"] == (additive["total_ms"] - e2e) / e2e


def test_bench_rejects_a_bad_design_file_with_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"dims": DIMS.model_dump(), "layers": []}))
    result = CliRunner().invoke(app, ["bench", str(bad)])
    assert result.exit_code == 2
    assert "n_layers" in result.stderr
    missing = CliRunner().invoke(app, ["bench", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and "cannot read" in missing.stderr

"""`ffnas front` / `ffnas solve`: output, JSON, exit codes and messages."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from search_space.library import BlockLibrary
from service.cli.main import app

runner = CliRunner()


def _library(tmp_path: Path) -> Path:
    # 3 layers x 3 variants; runtimes and KLs chosen so every total is a distinct float.
    data: dict[str, Any] = {}
    for layer in range(3):
        data[f"layer_{layer}"] = {
            "full": {
                "stats": {"runtime_ms": 10.0 + layer, "memory_mib": 8},
                "metrics": {"kl_div": 0.0},
            },
            "half": {
                "stats": {"runtime_ms": 5.0 + layer / 4, "memory_mib": 4},
                "metrics": {"kl_div": 0.5 + layer / 8},
            },
            "noop": {"stats": {"runtime_ms": 0, "memory_mib": 0}, "metrics": {"kl_div": 4.0}},
        }
    path = tmp_path / "block_library.json"
    path.write_text(json.dumps(data))
    return path


def _brute(path: Path) -> list[tuple[tuple[str, ...], float, float, float]]:
    lib = BlockLibrary.load(path)
    out = []
    for d in itertools.product(*(layer.names for layer in lib.layers)):
        out.append(
            (
                d,
                lib.total(d, "stats.runtime_ms"),
                lib.total(d, "stats.memory_mib"),
                lib.total(d, "metrics.kl_div"),
            )
        )
    return out


def test_front_json_is_the_brute_force_front(tmp_path: Path) -> None:
    path = _library(tmp_path)
    result = runner.invoke(app, ["front", str(path), "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    expected = []
    for _, cost, _, kl in sorted(_brute(path), key=lambda r: (r[1], r[3])):
        if not expected or kl < expected[-1][1]:
            if expected and expected[-1][0] == cost:
                continue
            expected.append((cost, kl))
    assert [(p["cost"], p["objective"]) for p in data["points"]] == expected
    assert data["n_points"] == len(expected) and data["optimal"] is True
    assert data["points"][0]["choices"] == ["noop", "noop", "noop"]


def test_front_table_and_limit(tmp_path: Path) -> None:
    path = _library(tmp_path)
    result = runner.invoke(app, ["front", str(path), "--limit", "2"])
    assert result.exit_code == 0, result.stderr
    assert "exact Pareto front:" in result.stdout and "(showing 2;" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    # The two ends: all no-op (code 2) and the parent (code 0), cost 0 and KL 0.
    assert rows[-2].split()[-1] == "222" and rows[-1].split()[-1] == "000"
    json_two = json.loads(
        runner.invoke(app, ["front", str(path), "--json", "--limit", "2"]).stdout
    )
    assert len(json_two["points"]) == 2


def test_solve_json_matches_brute_force(tmp_path: Path) -> None:
    path = _library(tmp_path)
    result = runner.invoke(
        app,
        [
            "solve",
            str(path),
            "--objective",
            "metrics.kl_div",
            "--constraint",
            "stats.runtime_ms<=20",
            "--constraint",
            "stats.memory_mib<=16",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    best = min(kl for _, rt, mem, kl in _brute(path) if rt <= 20 and mem <= 16)
    (sol,) = data["solutions"]
    assert sol["objective"] == pytest.approx(best, abs=1e-9)
    assert sol["totals"]["stats.runtime_ms"] <= 20 and sol["totals"]["stats.memory_mib"] <= 16
    assert data["status"] == "optimal" and data["optimal"] is True and data["gap"] == 0.0


def test_solve_table_with_diverse_solutions(tmp_path: Path) -> None:
    path = _library(tmp_path)
    result = runner.invoke(
        app,
        [
            "solve",
            str(path),
            "--constraint",
            "stats.runtime_ms<=25",
            "--solutions",
            "3",
            "--min-diversity",
            "2",
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert "status: optimal (proven optimal), 3 solution(s)" in result.stdout
    codes = [line.split()[-1] for line in result.stdout.splitlines() if "choices:" in line]
    assert len(codes) == 3
    for a, b in itertools.combinations(codes, 2):
        assert sum(x != y for x, y in zip(a, b, strict=True)) >= 2


def test_infeasible_budget_exits_2_and_reports_the_cheapest(tmp_path: Path) -> None:
    path = _library(tmp_path)
    result = runner.invoke(app, ["solve", str(path), "--constraint", "stats.memory_mib>=100"])
    assert result.exit_code == 2
    assert "infeasible" in result.stderr
    assert "no design meets stats.memory_mib>=100" in result.stderr
    assert "stats.memory_mib = 24" in result.stderr  # the largest possible: 3 x 8
    assert "that design: 000" in result.stderr


def test_jointly_infeasible_budgets_exit_2(tmp_path: Path) -> None:
    path = _library(tmp_path)
    result = runner.invoke(
        app,
        [
            "solve",
            str(path),
            "--constraint",
            "stats.runtime_ms<=1",
            "--constraint",
            "stats.memory_mib>=4",
            "--json",
        ],
    )
    assert result.exit_code == 2
    assert json.loads(result.stdout)["status"] == "infeasible"
    assert "but not together with the other constraints" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["front", "{lib}", "--cost", "stats.latency"], "'stats.latency' is missing for layer 0"),
        (
            ["front", "{lib}", "--objective", "kl_div"],
            "must be `stats.<name>` or `metrics.<name>`",
        ),
        (["solve", "{lib}", "--constraint", "stats.runtime_ms<5"], "a constraint must look like"),
        (["solve", "{lib}", "--constraint", "stats.runtime_ms<=fast"], "must be a number"),
        (["solve", "{lib}", "--constraint", "stats.power<=5"], "'stats.power' is missing"),
        (["solve", "{lib}", "--throughput", "256,1200"], "--throughput must be BATCH,SEQ"),
        (["front", "{missing}"], "cannot read block library"),
        (["front", "{broken}"], "is not valid JSON"),
        (["solve", "{holey}"], "'metrics.kl_div' is missing for layer 1, variant 'half'"),
    ],
)
def test_bad_input_exits_2_naming_it(tmp_path: Path, args: list[str], message: str) -> None:
    lib = _library(tmp_path)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    holey_data = json.loads(lib.read_text())
    del holey_data["layer_1"]["half"]["metrics"]["kl_div"]
    holey = tmp_path / "holey.json"
    holey.write_text(json.dumps(holey_data))
    paths = {"lib": lib, "missing": tmp_path / "absent.json", "broken": broken, "holey": holey}
    argv = [a.format(**{k: str(v) for k, v in paths.items()}) for a in args]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_real_library_solve_with_throughput(puzzle_library_path: Path) -> None:
    result = runner.invoke(
        app, ["solve", str(puzzle_library_path), "--throughput", "256,1200,8000", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    (sol,) = json.loads(result.stdout)["solutions"]
    assert sol["tokens_per_s"] >= 8000.0
    assert sol["totals"]["stats.runtime_ms"] <= 256 * 1200 / 8000 * 1000

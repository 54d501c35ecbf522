"""`ffnas schema|design|space|export` (service/cli/design_cmds.py): output and exit codes."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims
from search_space.design import design_json_schema
from search_space.space import SearchSpace
from service.cli import design_cmds

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "spaces"


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    # Only this module's commands, so the test does not depend on the other groups.
    app = typer.Typer()
    design_cmds.register(app)
    return app


@pytest.fixture()
def design_file(tmp_path: Path) -> Path:
    dims = ModelDims(d_model=64, n_layers=3, n_heads=4, n_kv_heads=2, vocab=256, seq_len=64)
    design = FFNDesign(
        name="t",
        dims=dims,
        layers=(
            LayerFFN(kind="dense", width=256),
            LayerFFN(kind="moe", width=64, experts=4, top_k=2),
            LayerFFN(kind="noop"),
        ),
    )
    path = tmp_path / "design.json"
    path.write_text(design.to_json())
    return path


def run(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_schema_design_prints_the_schema(app: typer.Typer) -> None:
    code, out, _ = run(app, "schema", "design")
    assert code == 0
    assert json.loads(out) == design_json_schema()


def test_validate_ok_and_bad(app: typer.Typer, design_file: Path, tmp_path: Path) -> None:
    code, out, _ = run(app, "design", "validate", str(design_file))
    assert code == 0 and out.startswith("ok: 3 layers")
    bad = json.loads(design_file.read_text())
    bad["layers"][1]["top_k"] = 9
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    code, _, err = run(app, "design", "validate", str(path))
    assert code == 2
    assert "top_k <= experts" in err and "top_k=9" in err
    code, _, err = run(app, "design", "validate", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read" in err
    (tmp_path / "junk.json").write_text("{[")
    assert run(app, "design", "validate", str(tmp_path / "junk.json"))[0] == 2


def test_costs_table_and_json(app: typer.Typer, design_file: Path) -> None:
    code, out, _ = run(app, "design", "costs", str(design_file), "--phase", "decode")
    assert code == 0
    assert "moe 4x64 top2" in out and "total" in out
    code, out, _ = run(
        app,
        "design",
        "costs",
        str(design_file),
        "--json",
        "--batch",
        "2",
        "--seq",
        "16",
        "--dtype",
        "fp32",
    )
    assert code == 0
    data = json.loads(out)
    assert data["dtype"] == "fp32" and data["tokens"] == 32
    # dense 3*64*256 + moe 256 + 4*3*64*64 + 3 attention blocks 12352 + 2 FFN norms 64
    # + embedding/head 2*256*64 + final norm 64
    assert data["params"] == 49152 + 49408 + 3 * 12352 + 128 + 32768 + 64
    assert run(app, "design", "costs", str(design_file), "--batch", "0")[0] == 2


def test_space_size_prints_the_exact_count(app: typer.Typer) -> None:
    path = EXAMPLES / "llama3-8b.yaml"
    code, out, _ = run(app, "space", "size", str(path))
    assert code == 0
    exact, approx = out.strip().splitlines()
    size = SearchSpace.load(path).size()
    assert exact == str(size)
    mantissa, exponent = approx.removeprefix("~ ").removesuffix(" designs").split("e+")
    assert int(exponent) == len(exact) - 1
    assert mantissa == format(Decimal(exact).scaleb(-(len(exact) - 1)), ".2f")
    assert int(exact) > 10**90  # astronomically large, printed exactly


def test_scientific_is_exact_beyond_floats() -> None:
    assert design_cmds.scientific(12345) == "1.23e+04"
    assert design_cmds.scientific(99999) == "1.00e+05"
    assert design_cmds.scientific(7) == "7.00e+00"
    assert design_cmds.scientific(3 * 10**400) == "3.00e+400"


def test_space_sample_json_lines(app: typer.Typer) -> None:
    path = str(EXAMPLES / "tiny-cpu.yaml")
    code, out, _ = run(app, "space", "sample", path, "--n", "5", "--seed", "7")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 5
    designs = [FFNDesign.from_json(line) for line in lines]
    space = SearchSpace.load(path)
    for design in designs:
        space.params_for(design)  # each is in the space
    assert run(app, "space", "sample", path, "--n", "5", "--seed", "7")[1] == out


def test_space_errors_exit_2(app: typer.Typer, tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("dims: {d_model: 64}\nlayer: {kind: [dense]}\n")
    code, _, err = run(app, "space", "size", str(path))
    assert code == 2 and "n_layers" in err


def test_export_writes_file_and_reports_lossy(
    app: typer.Typer, design_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "config.json"
    code, _, err = run(app, "export", str(design_file), "--format", "decilm", "-o", str(out))
    assert code == 0
    config = json.loads(out.read_text())
    assert config["model_type"] == "nemotron-nas"
    assert "lossy: layer 1: kind='moe'" in err
    assert "warning: layer 2: kind='noop'" in err
    code, stdout, err = run(app, "export", str(design_file), "--format", "native")
    assert code == 0 and err == ""
    assert FFNDesign.from_json(stdout) == FFNDesign.from_json(design_file.read_text())
    code, _, _ = run(app, "export", str(design_file), "--format", "onnx")
    assert code == 2
    code, _, err = run(app, "export", str(tmp_path / "nope.json"), "--format", "native")
    assert code == 2 and "cannot read" in err

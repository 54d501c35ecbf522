"""BlockLibrary: Puzzle layout round trip, native form, key access, clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from search_space.design import LayerFFN
from search_space.design import ModelDims
from search_space.errors import LibraryError
from search_space.library import BlockLibrary
from search_space.library import parse_key
from search_space.workload import Workload


def _small() -> dict[str, Any]:
    return {
        "layer_0": {
            "full": {"stats": {"runtime_ms": 2.5, "memory_mib": 10}, "metrics": {"kl_div": 0.0}},
            "half": {"stats": {"runtime_ms": 1.25, "memory_mib": 5}, "metrics": {"kl_div": 0.5}},
        },
        "layer_1": {
            "full": {"stats": {"runtime_ms": 3.0, "memory_mib": 10}, "metrics": {"kl_div": 0.0}},
            "noop": {"stats": {"runtime_ms": 0, "memory_mib": 0}, "metrics": {"kl_div": 7.0}},
        },
    }


def test_real_puzzle_library_round_trips_to_identical_json(puzzle_library_path: Path) -> None:
    raw = json.loads(puzzle_library_path.read_text())
    library = BlockLibrary.load(puzzle_library_path)
    assert library.n_layers == 80
    assert all(len(layer.variants) == 16 for layer in library.layers)
    out = library.to_dict()
    assert out == raw
    # Same types too (`0` stays an int, `0.0` a float) and same key order: identical text.
    assert json.dumps(out) == json.dumps(raw)


def test_real_library_values_match_the_file(puzzle_library_path: Path) -> None:
    raw = json.loads(puzzle_library_path.read_text())
    library = BlockLibrary.load(puzzle_library_path)
    name = list(raw["layer_7"])[3]
    assert (
        library.value(7, name, "stats.runtime_ms") == raw["layer_7"][name]["stats"]["runtime_ms"]
    )
    assert library.value(7, name, "metrics.kl_div") == raw["layer_7"][name]["metrics"]["kl_div"]
    column = library.column("metrics.lm_loss")
    assert [float(x) for x in column[79]] == [
        float(v["metrics"]["lm_loss"]) for v in raw["layer_79"].values()
    ]
    assert "stats.memory_mib" in library.keys() and "metrics.kl_div" in library.keys()


def test_native_form_round_trip_keeps_designs_and_measurement(tmp_path: Path) -> None:
    base = BlockLibrary.from_dict(_small())
    dims = ModelDims(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab=256, seq_len=128)
    native = base.to_native()
    native["dims"] = dims.model_dump(mode="json")
    native["workload"] = {"phase": "prefill", "batch": 256, "seq": 1200}
    native["hardware"] = "NVIDIA H100 80GB HBM3, fp8"
    native["layers"][0]["variants"]["full"]["design"] = {"kind": "dense", "width": 256}
    native["layers"][0]["variants"]["half"]["design"] = {"kind": "dense", "width": 128}
    native["layers"][1]["variants"]["full"]["design"] = {"kind": "dense", "width": 256}
    native["layers"][1]["variants"]["noop"]["design"] = {"kind": "noop"}
    library = BlockLibrary.from_dict(native)
    assert library.workload == Workload(phase="prefill", batch=256, seq=1200)
    assert library.layers[0].variants["half"].design == LayerFFN(kind="dense", width=128)

    path = tmp_path / "lib.json"
    library.save(path)
    again = BlockLibrary.load(path)
    assert again == library
    assert json.loads(path.read_text()) == library.to_native()
    # The Puzzle layout drops designs and measurement info but keeps every number.
    assert library.to_dict() == _small()

    design = library.design(("half", "noop"), name="pick")
    assert [layer.kind for layer in design.layers] == ["dense", "noop"]
    assert design.layers[0].width == 128


def test_total_adds_left_to_right() -> None:
    library = BlockLibrary.from_dict(_small())
    assert library.total(("half", "noop"), "stats.runtime_ms") == 1.25 + 0
    assert library.total(["full", "full"], "metrics.kl_div") == 0.0
    with pytest.raises(LibraryError, match=r"len\(choices\) == n_layers"):
        library.total(("full",), "stats.runtime_ms")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("runtime_ms", "must be `stats.<name>` or `metrics.<name>`"),
        ("cost.runtime_ms", "must be `stats.<name>` or `metrics.<name>`"),
        ("stats.", "must be `stats.<name>` or `metrics.<name>`"),
        ("stats.latency", "'stats.latency' is missing for layer 0, variant 'full'"),
    ],
)
def test_bad_keys_name_the_key(key: str, message: str) -> None:
    library = BlockLibrary.from_dict(_small())
    with pytest.raises(LibraryError, match=message):
        library.column(key)


def test_value_names_missing_layer_variant_and_key() -> None:
    library = BlockLibrary.from_dict(_small())
    with pytest.raises(LibraryError, match=r"`0 <= layer < 2` must hold, but got layer=5"):
        library.value(5, "full", "stats.runtime_ms")
    with pytest.raises(LibraryError, match=r"layer 1 has no variant 'half'"):
        library.value(1, "half", "stats.runtime_ms")
    with pytest.raises(LibraryError, match=r"'metrics.lm_loss' is missing for layer 1"):
        library.value(1, "noop", "metrics.lm_loss")


def test_missing_stat_in_one_variant_is_named() -> None:
    data = _small()
    del data["layer_1"]["noop"]["stats"]["runtime_ms"]
    library = BlockLibrary.from_dict(data)
    with pytest.raises(LibraryError, match=r"missing for layer 1, variant 'noop'"):
        library.column("stats.runtime_ms")
    assert "stats.runtime_ms" not in library.keys()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update({"layer_x": {}}), "keys `layer_<i>`, but got key 'layer_x'"),
        (lambda d: d.pop("layer_0"), "layer_0 is missing"),
        (lambda d: d.update({"layer_1": {}}), "at least one variant"),
        (lambda d: d["layer_0"].update({"v": [1, 2]}), "variant 'v' must be an object"),
        (
            lambda d: d["layer_0"]["full"]["stats"].update({"runtime_ms": "fast"}),
            "layer_0, variant 'full': stats.runtime_ms",
        ),
        (
            lambda d: d["layer_0"]["full"]["stats"].update({"runtime_ms": float("nan")}),
            "`runtime_ms` must be a finite number",
        ),
        (lambda d: d["layer_0"]["full"].update({"cost": {}}), "unknown field"),
    ],
)
def test_malformed_puzzle_library_is_refused(mutate: Any, message: str) -> None:
    data = _small()
    mutate(data)
    with pytest.raises(LibraryError, match=message):
        BlockLibrary.from_dict(data)


def test_malformed_native_library_is_refused() -> None:
    native = BlockLibrary.from_dict(_small()).to_native()
    with pytest.raises(LibraryError, match="`format == 'ffnas-library/v1'` must hold"):
        BlockLibrary.from_dict({**native, "format": "other/v9"})
    with pytest.raises(LibraryError, match=r"unknown field\(s\)"):
        BlockLibrary.from_dict({**native, "extra": 1})
    bad_design = json.loads(json.dumps(native))
    bad_design["layers"][0]["variants"]["full"]["design"] = {"kind": "moe", "width": 8}
    with pytest.raises(LibraryError, match=r"layers\[0\], variant 'full'"):
        BlockLibrary.from_dict(bad_design)
    wrong_dims = {
        **native,
        "dims": {
            "d_model": 64,
            "n_layers": 3,
            "n_heads": 4,
            "n_kv_heads": 2,
            "vocab": 256,
            "seq_len": 128,
        },
    }
    with pytest.raises(LibraryError, match=r"`dims.n_layers == len\(layers\)` must hold"):
        BlockLibrary.from_dict(wrong_dims)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(LibraryError, match="cannot read block library"):
        BlockLibrary.load(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(LibraryError, match="is not valid JSON"):
        BlockLibrary.load(broken)
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    with pytest.raises(LibraryError, match="must be a JSON object, but got list"):
        BlockLibrary.load(listed)


def test_parse_key() -> None:
    assert parse_key("stats.runtime_ms") == ("stats", "runtime_ms")
    assert parse_key("metrics.kl.div") == ("metrics", "kl.div")


def test_design_needs_dims_and_designs() -> None:
    library = BlockLibrary.from_dict(_small())
    with pytest.raises(LibraryError, match="has no `dims`"):
        library.design(("full", "full"))

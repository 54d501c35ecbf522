"""Round trip of `workers.export_torch`: same design, same weights, same outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims
from workers.build import build_model
from workers.export_torch import load
from workers.export_torch import save

DIMS = ModelDims(d_model=64, n_layers=3, n_heads=4, n_kv_heads=2, vocab=64, seq_len=16)
DESIGN = FFNDesign(
    name="roundtrip",
    dims=DIMS,
    layers=(
        LayerFFN(width=64, sparsity={"pattern": "block", "block_size": 16, "density": 0.5}),
        LayerFFN(kind="moe", width=16, experts=4, top_k=2),
        LayerFFN(kind="lowrank", width=64, rank=8, norm="sandwich", norm_type="layernorm"),
    ),
)


def test_save_then_load_gives_the_same_model(tmp_path: Path) -> None:
    model = build_model(DESIGN, backend="torch", seed=9)
    with torch.no_grad():  # weights that differ from a fresh build with the default seed
        for p in model.parameters():
            p.add_(0.01)
    save(model, DESIGN, tmp_path / "out")
    assert FFNDesign.from_json((tmp_path / "out" / "design.json").read_text()) == DESIGN
    loaded = load(tmp_path / "out", backend="torch")
    assert loaded.design == DESIGN
    for (name, a), (_, b) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    ids = torch.randint(0, 64, (2, 5), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), model(ids), atol=0, rtol=0)


def test_load_on_the_triton_backend(tmp_path: Path) -> None:
    model = build_model(DESIGN, backend="torch", seed=3)
    save(model, DESIGN, tmp_path)
    loaded = load(tmp_path, backend="triton")
    ids = torch.randint(0, 64, (1, 6), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), model(ids), atol=2e-5, rtol=2e-5)


def test_load_rejects_a_directory_without_weights(tmp_path: Path) -> None:
    (tmp_path / "design.json").write_text(DESIGN.to_json())
    with pytest.raises(ValueError, match="model.pt is missing"):
        load(tmp_path)


def test_save_rejects_a_design_the_model_was_not_built_from(tmp_path: Path) -> None:
    model = build_model(DESIGN, backend="torch")
    other = DESIGN.model_copy(update={"name": "other"})
    with pytest.raises(ValueError, match="another design"):
        save(model, other, tmp_path)

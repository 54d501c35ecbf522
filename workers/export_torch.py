"""Save a built model as plain PyTorch files and load it back through `build_model`.

A directory holds ``design.json`` (the native design JSON) and ``model.pt`` (the state dict:
parameters plus the fixed sparsity masks). Loading rebuilds the module tree from the design
on any backend, device and dtype, then loads the tensors with ``weights_only=True`` (no
pickled code runs).
"""

from __future__ import annotations

from pathlib import Path

import torch

from search_space.design import FFNDesign
from workers.build import FFNModel
from workers.build import build_model

__all__ = ["DESIGN_FILE", "WEIGHTS_FILE", "load", "save"]

DESIGN_FILE = "design.json"
WEIGHTS_FILE = "model.pt"


def save(model: FFNModel, design: FFNDesign, directory: str | Path) -> Path:
    """Write ``design.json`` and ``model.pt`` into ``directory`` (created if missing)."""
    if model.design != design:
        raise ValueError(
            "the model was built from another design than the one given "
            f"(model {model.design.name!r}, design {design.name!r})"
        )
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / DESIGN_FILE).write_text(design.to_json())
    state = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    torch.save(state, out / WEIGHTS_FILE)
    return out


def load(
    directory: str | Path,
    *,
    backend: str = "torch",
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> FFNModel:
    """Rebuild the saved model with `build_model` and load its weights."""
    root = Path(directory)
    for name in (DESIGN_FILE, WEIGHTS_FILE):
        if not (root / name).is_file():
            raise ValueError(f"{root} is not a saved model: {name} is missing")
    design = FFNDesign.from_json((root / DESIGN_FILE).read_text())
    model = build_model(design, backend=backend, device=device, dtype=dtype)
    state = torch.load(root / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"saved weights do not match the design: missing {sorted(missing)}, "
            f"unexpected {sorted(unexpected)}"
        )
    return model

"""Turn an `FFNDesign` into a PyTorch model on the torch references or the Triton kernels.

``build_model(design, backend=...)`` gives the same function on both backends from the same
weights (same seed -> same weights); ``backend="torch"`` is differentiable (proxy training),
``backend="triton"`` runs the inference kernels of `kernels/` (latency measurement).
Parameter count (sum of ``numel``) equals `search_space.costs.design_costs(...).params`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch import nn

from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims
from workers.modules.attention import Attention
from workers.modules.backend import check_backend
from workers.modules.ffn import FFN
from workers.modules.ffn import DenseFFN
from workers.modules.ffn import FusedGroupFFN
from workers.modules.ffn import build_ffn_module
from workers.modules.init import Init
from workers.modules.init import sub_seed
from workers.modules.norms import Norm
from workers.modules.units import FusionUnit
from workers.modules.units import LayerUnit

__all__ = ["FFNModel", "build_ffn", "build_model"]

# Sub-seed namespaces: embedding/head, attention of layer i, FFN of layer i, FFN norms.
_EMBED, _ATTN, _FFN = 0, 1, 2


class FFNModel(nn.Module):
    """Embedding -> residual units -> final RMSNorm -> head (tied or not)."""

    def __init__(
        self,
        design: FFNDesign,
        units: list[LayerUnit | FusionUnit],
        init: Init,
        backend: str,
    ) -> None:
        super().__init__()
        dims = design.dims
        self.design = design
        self.backend = backend
        self.embed = init.normal(dims.vocab, dims.d_model)
        self.units = nn.ModuleList(units)
        self.final_norm = Norm(dims.d_model, "rmsnorm", init, backend)
        self.head = None if dims.tie_embeddings else init.normal(dims.vocab, dims.d_model)

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [batch, seq], but got shape {tuple(tokens.shape)}")
        x = F.embedding(tokens, self.embed)
        for unit in self.units:
            x = unit(x)
        x = self.final_norm(x)
        return F.linear(x, self.embed if self.head is None else self.head)


def build_ffn(
    layer: LayerFFN,
    dims: ModelDims,
    *,
    backend: str = "triton",
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> FFN:
    """One layer's FFN (without its norms): ``ffn(x[N, d], residual=None) -> [N, d]``."""
    check_backend(backend)
    init = Init(seed, n_layers=dims.n_layers, device=device, dtype=dtype)
    return build_ffn_module(layer, dims, init, backend)


def build_model(
    design: FFNDesign,
    *,
    backend: str = "triton",
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> FFNModel:
    check_backend(backend)
    dims = design.dims
    d = dims.d_model

    def make_init(*parts: int) -> Init:
        return Init(sub_seed(seed, *parts), n_layers=dims.n_layers, device=device, dtype=dtype)

    def ffn_norms(layer: LayerFFN, init: Init) -> list[Norm]:
        count = {"pre": 1, "post": 1, "sandwich": 2, "none": 0}[layer.norm]
        return [Norm(d, layer.norm_type, init, backend) for _ in range(count)]

    group_of = {i: g for g, members in design.fusion_groups().items() for i in members}
    units: list[LayerUnit | FusionUnit] = []
    i = 0
    while i < dims.n_layers:
        layer = design.layers[i]
        group = group_of.get(i)
        if group is None:
            init = make_init(_ATTN, i)
            attn_norm = Norm(d, "rmsnorm", init, backend)
            attn = Attention(dims, init)
            ffn = build_ffn(
                layer,
                dims,
                backend=backend,
                device=device,
                dtype=dtype,
                seed=sub_seed(seed, _FFN, i),
            )
            units.append(LayerUnit(i, layer, attn_norm, attn, ffn, ffn_norms(layer, init)))
            i += 1
            continue
        members = design.fusion_groups()[group]
        attn_norms, attns, norms, ffns = [], [], [], []
        for j in members:
            init = make_init(_ATTN, j)
            attn_norms.append(Norm(d, "rmsnorm", init, backend))
            attns.append(Attention(dims, init))
            norms.extend(ffn_norms(design.layers[j], init))
            member = build_ffn(
                design.layers[j],
                dims,
                backend=backend,
                device=device,
                dtype=dtype,
                seed=sub_seed(seed, _FFN, j),
            )
            assert isinstance(member, DenseFFN)  # the design validates fused layers are dense
            ffns.append(member)
        units.append(FusionUnit(members, attn_norms, attns, FusedGroupFFN(norms, ffns, backend)))
        i = members[-1] + 1
    return FFNModel(design, units, make_init(_EMBED), backend)

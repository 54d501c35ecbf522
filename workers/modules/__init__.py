"""The `nn.Module`s `workers.build` assembles a design from (attention, norms, FFNs, units)."""

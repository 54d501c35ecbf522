"""`latency`: the design's measured latency at the job's workload on the job's target.

Values: ``latency_ms`` (the additive model: cached per-op timings summed over units plus the
fixed part, see `workers.latency`) and the analytic costs (``params``, ``active_params``,
``flops``, ``weight_bytes``). The outcome carries the p20/p50/p80 band, per-layer FFN
latency and the target fingerprint. Runs in the sandbox child (it touches torch/CUDA).

Settings (all optional):

* ``backend``: ``torch`` | ``triton`` (default: torch on the ``cpu`` target, else triton);
* ``dtype``: ``fp32`` | ``bf16`` | ``fp16`` (default: fp32 on ``cpu``, else the model's);
* ``cache``: ``db`` (the shared `LatencyRecord` table, default) | ``memory`` (per child);
* ``threads``: torch CPU threads while timing (default: torch's); tiny CPU models time
  faster and steadier on 1 thread on a busy machine (2 threads wait on each other);
* ``end_to_end``: also time the assembled stack and put it and the additive error in
  ``info`` (default false; the controller asks for it on front points).
"""

from __future__ import annotations

import functools
from typing import Any
from typing import ClassVar

from workers.evaluators.analytic import AnalyticEvaluator
from workers.evaluators.base import EvalOutcome
from workers.evaluators.base import Evaluator
from workers.evaluators.base import TrialContext
from workers.evaluators.base import register_evaluator

__all__ = [
    "LATENCY_SETTINGS",
    "LatencyEvaluator",
    "measure_trial_latency",
    "validate_latency_settings",
]

LATENCY_SETTINGS = frozenset({"backend", "dtype", "cache", "end_to_end", "threads"})


def validate_latency_settings(settings: dict[str, Any]) -> None:
    """Check the latency keys of ``settings``; ValueError naming the key and the rule."""
    backend = settings.get("backend")
    if backend is not None and backend not in ("torch", "triton"):
        raise ValueError(f"`backend` must be 'torch' or 'triton', but got {backend!r}")
    dtype = settings.get("dtype")
    if dtype is not None and dtype not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"`dtype` must be one of fp32, bf16, fp16, but got {dtype!r}")
    cache = settings.get("cache", "db")
    if cache not in ("db", "memory"):
        raise ValueError(f"`cache` must be 'db' or 'memory', but got {cache!r}")
    threads = settings.get("threads")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"`threads` must be an integer >= 1, but got {threads!r}")
    if not isinstance(settings.get("end_to_end", False), bool):
        raise ValueError(f"`end_to_end` must be true or false, but got {settings['end_to_end']!r}")


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def device_for(target: str) -> str:
    """The torch device a target's trials run on (``cpu``, or the worker's one GPU)."""
    return "cpu" if target == "cpu" else "cuda"


@functools.cache
def _memory_cache() -> Any:
    from workers.latency import MemoryLatencyCache

    return MemoryLatencyCache()


@functools.cache
def _fingerprint(device: str) -> dict[str, Any]:
    from workers.targets import fingerprint

    return fingerprint(device)


def measure_trial_latency(ctx: TrialContext) -> EvalOutcome:
    """Latency plus analytic costs for ``ctx`` (shared by the `latency` and `proxy` evaluators)."""
    import torch

    settings = ctx.settings
    threads = settings.get("threads")
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        return _measure(ctx, settings)
    finally:
        torch.set_num_threads(previous)


def _measure(ctx: TrialContext, settings: dict[str, Any]) -> EvalOutcome:
    from workers.latency import DBLatencyCache
    from workers.latency import additive_error
    from workers.latency import measure_design
    from workers.latency import measure_end_to_end

    device = device_for(ctx.target)
    cache = _memory_cache() if settings.get("cache", "db") == "memory" else DBLatencyCache()
    result = measure_design(
        ctx.design,
        ctx.workload,
        target=ctx.target,
        cache=cache,
        device=device,
        backend=settings.get("backend"),
        dtype=settings.get("dtype"),
    )
    costs = AnalyticEvaluator().evaluate(ctx.model_copy(update={"settings": {}}))
    values = {**costs.values, "latency_ms": result.total_ms}
    info: dict[str, Any] = {
        **costs.info,
        "fixed_ms": result.fixed_ms,
        "attention_ms": result.attention_ms,
        "embed_head_ms": result.embed_head_ms,
        "per_unit_ms": result.per_unit_ms,
        "unit_layers": result.unit_layers,
        "latency_cache_hits": result.cache_hits,
        "latency_cache_misses": result.cache_misses,
        "backend": result.backend,
        "dtype": result.dtype,
        "workload": ctx.workload.label(),
        "torch_threads": torch_threads(),
    }
    if settings.get("end_to_end", False):
        e2e = measure_end_to_end(
            ctx.design,
            ctx.workload,
            target=ctx.target,
            device=device,
            backend=result.backend,
            dtype=result.dtype,
        )
        info["end_to_end_ms"] = e2e.p50_ms
        info["additive_error"] = additive_error([(result.total_ms, e2e.p50_ms)])["mape"]
    return EvalOutcome(
        values=values,
        latency=result.stats(),
        layer_latency_ms=result.per_layer_ms,
        target_fingerprint=_fingerprint(device),
        info=info,
    )


class LatencyEvaluator(Evaluator):
    """Measured latency (torch references on CPU, Triton kernels on GPU) plus costs."""

    name: ClassVar[str] = "latency"
    needs_sandbox: ClassVar[bool] = True

    def validate_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(settings) - LATENCY_SETTINGS)
        if unknown:
            raise ValueError(
                f"latency evaluator settings: unknown keys {unknown}; "
                f"known: {sorted(LATENCY_SETTINGS)}"
            )
        validate_latency_settings(settings)
        return dict(settings)

    def evaluate(self, ctx: TrialContext) -> EvalOutcome:
        return measure_trial_latency(ctx)


register_evaluator(LatencyEvaluator.name, LatencyEvaluator)

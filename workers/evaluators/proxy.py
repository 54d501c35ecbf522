"""`proxy`: latency first, then quality as validation bits per byte of a small trained LM.

1. Latency (when the job asks for ``latency_ms`` as an objective or a constraint) is measured
   exactly as the `latency` evaluator does, before any training. A trial whose latency
   breaks the job's ``latency_ms`` constraint (``ctx.settings["constraints"]``, name -> max,
   filled by the task from the job spec) is reported without training: its ``bpb`` is 8.0,
   the bits per byte of a uniform guess over 256 bytes (what an untrained model scores), and
   the trial is infeasible anyway.
2. Quality: `workers.proxy.train_proxy` trains ``build_model(design, backend="torch")`` on the
   corpus for the token budget with the trial's seed, reporting validation bpb at each
   checkpoint through ``ctx.report``; a True answer (pruned) stops training and the outcome
   is marked pruned.

Settings: every field of `workers.proxy.ProxySettings` (``tokens``, ``batch_size``,
``seq_len``, ``lr``, ``schedule``, ``checkpoints``, ``corpus``, ...) plus the latency
evaluator's keys (``backend``, ``dtype``, ``cache``, ``end_to_end``) and ``constraints``.
"""

from __future__ import annotations

import math
from typing import Any
from typing import ClassVar

from pydantic import ValidationError

from workers.evaluators.analytic import AnalyticEvaluator
from workers.evaluators.base import EvalOutcome
from workers.evaluators.base import Evaluator
from workers.evaluators.base import TrialContext
from workers.evaluators.base import register_evaluator
from workers.evaluators.latency import LATENCY_SETTINGS
from workers.evaluators.latency import device_for
from workers.evaluators.latency import measure_trial_latency
from workers.evaluators.latency import validate_latency_settings

__all__ = ["UNTRAINED_BPB", "ProxyEvaluator"]

# log2(256): the bits per byte of a uniform prediction, i.e. of a model that never trained.
UNTRAINED_BPB = math.log2(256)


def _proxy_fields() -> frozenset[str]:
    from workers.proxy.train import ProxySettings

    return frozenset(ProxySettings.model_fields)


def _constraints(settings: dict[str, Any]) -> dict[str, float]:
    raw = settings.get("constraints") or {}
    if not isinstance(raw, dict) or not all(isinstance(v, int | float) for v in raw.values()):
        raise ValueError(f"`constraints` must map metric names to maxima, but got {raw!r}")
    return {str(k): float(v) for k, v in raw.items()}


class ProxyEvaluator(Evaluator):
    """Measured latency, then bits per byte of a byte-level LM trained from the design."""

    name: ClassVar[str] = "proxy"
    needs_sandbox: ClassVar[bool] = True
    reports_intermediate: ClassVar[bool] = True

    def validate_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        from workers.proxy.train import ProxySettings

        proxy_keys = _proxy_fields()
        known = proxy_keys | LATENCY_SETTINGS | {"constraints"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(
                f"proxy evaluator settings: unknown keys {unknown}; known: {sorted(known)}"
            )
        validate_latency_settings(settings)
        _constraints(settings)
        try:
            ProxySettings(**{k: v for k, v in settings.items() if k in proxy_keys})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "settings"
            raise ValueError(f"proxy evaluator settings: {where}: {first['msg']}") from None
        return dict(settings)

    def evaluate(self, ctx: TrialContext) -> EvalOutcome:
        from workers.proxy.train import ProxySettings
        from workers.proxy.train import train_proxy

        settings = ctx.settings
        constraints = _constraints(settings)
        if "latency_ms" in ctx.objectives or "latency_ms" in constraints:
            base = measure_trial_latency(ctx)
        else:
            base = AnalyticEvaluator().evaluate(ctx.model_copy(update={"settings": {}}))
        budget = constraints.get("latency_ms")
        latency = base.values.get("latency_ms")
        if budget is not None and latency is not None and latency > budget:
            info = {
                **base.info,
                "skipped_training": f"latency {latency:.4g} ms breaks the budget "
                f"latency_ms <= {budget:g}; not trained "
                f"(bpb = {UNTRAINED_BPB:g}, a uniform guess)",
            }
            return base.model_copy(
                update={"values": {**base.values, "bpb": UNTRAINED_BPB}, "info": info}
            )
        proxy_keys = _proxy_fields()
        proxy = ProxySettings(**{k: v for k, v in settings.items() if k in proxy_keys})
        result = train_proxy(
            ctx.design, proxy, seed=ctx.seed, report=ctx.report, device=device_for(ctx.target)
        )
        info = {
            **base.info,
            "proxy_curve": [list(point) for point in result.curve],
            "proxy_tokens": result.tokens,
            "proxy_steps": result.steps,
            "proxy_seconds": result.seconds,
            "train_loss_final": result.train_losses[-1] if result.train_losses else None,
        }
        return base.model_copy(
            update={
                "values": {**base.values, "bpb": result.bpb},
                "pruned": result.pruned,
                "info": info,
            }
        )


register_evaluator(ProxyEvaluator.name, ProxyEvaluator)

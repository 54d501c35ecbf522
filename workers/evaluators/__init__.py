"""Built-in evaluators. Each module registers itself with `register_evaluator` on import.

Add a module here and import it below to make a new evaluator selectable by jobs.
"""

from workers.evaluators import analytic  # noqa: F401,E402  (registers "analytic")
from workers.evaluators import latency  # noqa: F401,E402  (registers "latency")
from workers.evaluators import proxy  # noqa: F401,E402  (registers "proxy")
from workers.evaluators.base import EvalFailure
from workers.evaluators.base import EvalOutcome
from workers.evaluators.base import Evaluator
from workers.evaluators.base import TrialContext
from workers.evaluators.base import get_evaluator

__all__ = ["EvalFailure", "EvalOutcome", "Evaluator", "TrialContext", "get_evaluator"]

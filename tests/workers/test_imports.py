"""Workers execute; they never search: importing any worker module loads neither optuna nor nni.

The controller turns trial rows into Optuna/NNI tells (scheduler / searcher / executor kept
apart), so a GPU worker image does not need the search libraries at all.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import workers

FORBIDDEN = ("optuna", "nni")


def test_worker_modules_import_no_search_library() -> None:
    modules = sorted(info.name for info in pkgutil.walk_packages(workers.__path__, "workers."))
    assert "workers.tasks" in modules and "workers.evaluators.proxy" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]

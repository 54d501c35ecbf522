"""`search_space` stays pure: importing it pulls in neither torch, the service nor workers."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import search_space

FORBIDDEN = ("torch", "triton", "service", "workers", "kernels", "optuna", "nni", "fastapi")


def test_search_space_imports_no_heavy_or_service_modules() -> None:
    modules = sorted(
        info.name for info in pkgutil.walk_packages(search_space.__path__, "search_space.")
    )
    assert "search_space.space" in modules and "search_space.export.decilm" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

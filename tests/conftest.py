"""Suite-wide test setup.

TRITON_INTERPRET must be set before any kernel module is imported (``@triton.jit`` reads it
at decoration time), and any test module may import ``workers.build`` -> ``kernels``, so it is
set here, at the root, whenever no CUDA GPU is present.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

if shutil.which("nvidia-smi") is None and os.environ.get("FFNAS_FORCE_GPU") != "1":
    os.environ.setdefault("TRITON_INTERPRET", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def puzzle_library_path() -> Path:
    """The real 80-layer Puzzle block library (research licence, read from ../shared)."""
    path = SHARED_DATA / "puzzle" / "block_library.json"
    if not path.exists():
        pytest.skip(f"reference data not present at {path} (a user's clone has no ../shared)")
    return path

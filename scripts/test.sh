#!/usr/bin/env bash
# The whole test suite on a fresh machine: virtual environment, dependencies, the real
# services (PostgreSQL, Redis, Chromium), lint, type check, then pytest. Extra arguments go
# to pytest. GPU tests (`-m gpu`) are deselected here; run them on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh "[dev]"
bash scripts/services.sh
.venv/bin/ruff check .
.venv/bin/mypy search_space kernels workers service dashboards
exec .venv/bin/python -m pytest "$@"

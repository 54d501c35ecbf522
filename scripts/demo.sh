#!/usr/bin/env bash
# The main job on a fresh machine: virtual environment, dependencies, then `ffnas up --demo`,
# which starts the service on the embedded default (SQLite + SQLAlchemy broker, no server to
# install), runs the demo search to completion and prints where to see its front.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
exec .venv/bin/ffnas up --demo "$@"

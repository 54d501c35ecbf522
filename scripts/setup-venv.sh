#!/usr/bin/env bash
# Creates .venv (if missing) and installs torch 2.13.0, then ffnas with the given extras.
# torch goes first so that, on a machine without a GPU, pip keeps the CPU build and does not
# pull several GB of CUDA packages for `torch>=2.4`.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"

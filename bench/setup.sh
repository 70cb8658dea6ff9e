#!/usr/bin/env bash
# Make bench/.venv: conveyor (editable, from this checkout) plus the peers and tools the
# comparison benchmarks use (bench/requirements.txt). Never touches the project's .venv or
# pyproject.toml. Re-running it updates the venv in place.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv bench/.venv
bench/.venv/bin/pip install -q --upgrade pip
bench/.venv/bin/pip install -q -e '.[postgres]' -r bench/requirements.txt
echo "ready: bench/.venv/bin/python bench/run_all.py [--quick]"

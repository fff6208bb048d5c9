#!/usr/bin/env bash
# The test command: lint, format check, then the pytest suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest "$@"

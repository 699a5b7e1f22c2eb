#!/bin/sh
# The whole test suite: lint, format, types, then every test (the lab's tests need root).
set -eu
cd "$(dirname "$0")"
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"

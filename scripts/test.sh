#!/usr/bin/env bash
# The whole test suite, plus the linters CI enforces. Extra arguments go to pytest.
source "$(dirname "$0")/venv.sh"
ruff check .
ruff format --check .
mypy
python -m pytest "$@"

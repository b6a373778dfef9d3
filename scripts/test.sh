#!/usr/bin/env bash
# The whole test suite: setup (idempotent), static checks, then every test in parallel.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
source scripts/_python_env.sh

echo "== ruff"
ruff check bacalhau tests bench
ruff format --check bacalhau tests bench
echo "== mypy --strict"
mypy bacalhau
echo "== buf lint"
buf lint
echo "== generated code is fresh"
bash scripts/codegen.sh --check
echo "== pytest"
python3 -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadgroup -q "$@"

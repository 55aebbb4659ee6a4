#!/usr/bin/env bash
# Set up (or reuse) the environment, then run the test suite:  bash tools/run_tests.sh [pytest args]
# Everything runs by default (tests marked `slow` included: tool processes, Runner runs, full-size
# models), on one pytest-xdist worker per core (CONMIM_TEST_WORKERS: another number; 0 runs the
# tests in this process, in order). A quick run of the unit tests:  bash tools/run_tests.sh -m "not slow"
# The slowest tests:  bash tools/run_tests.sh --durations=15
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest -n "${CONMIM_TEST_WORKERS:-auto}" --dist loadgroup tests "$@"

#!/usr/bin/env bash
# Set up the environments (.venv and .venv-lerobot, idempotent), lint, then run the test suite.
#   bash scripts/test.sh                 # the default suite (what CI runs)
#   bash scripts/test.sh -k tracking -x  # extra arguments go to pytest
# The linter (ruff, rules in ruff.toml) runs first; any finding fails the run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
# the separate LeRobot venv (issue 18): the LeRobotDataset round trip of the suite runs in it
bash "$ROOT/scripts/setup_lerobot.sh"
cd "$ROOT"
export MUJOCO_GL="${MUJOCO_GL:-egl}"           # headless rendering through Mesa EGL
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-42}"     # keep test traffic off other graphs
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
echo "[test] ruff check (ruff.toml)"
"$ROOT/.venv/bin/ruff" check "$ROOT" || { echo "[test] FAILED: ruff found the problems above" >&2; exit 1; }
exec "$ROOT/.venv/bin/python" -m pytest "$@"

#!/usr/bin/env bash
# Set up the environment (idempotent), then run the main job.
# Today the main job is the synthetic perception pipeline demo (see README "Status"); it
# becomes the closed-loop simulated pick-and-place through the ROS graph when that exists.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
exec "$ROOT/.venv/bin/fdl-robot-pipeline-demo" "$@"

#!/usr/bin/env bash
# Set up the environment (idempotent), then run the main job: the simulated pick-and-place
# from pixels through the whole ROS graph (sim_node -> detector -> localizer -> tracker ->
# ACT policy_node -> sim_node) for a few episodes with the shipped weights. It prints each
# episode, saves outputs/demo.mp4 and outputs/demo_strip.png (annotated camera view) and
# ends with a line "success K/N". EPISODES=10 bash scripts/demo.sh runs more; any other
# argument goes to fdl-robot-closed-loop (see --help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
exec "$ROOT/.venv/bin/fdl-robot-closed-loop" --episodes "${EPISODES:-3}" --seed0 "${SEED0:-5000}" \
    --video outputs/demo.mp4 --strip outputs/demo_strip.png --json outputs/demo.json "$@"

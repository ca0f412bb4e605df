#!/usr/bin/env bash
# Set up the environment (idempotent), then run the main job: the simulated pick-and-place
# from pixels through the whole ROS graph as deployed -- a process per node (sim_node ->
# detector_node -> localizer_node -> tracker_node -> ACT policy_node -> sim_node), at real
# time on the wall clock, SCHED_FIFO priorities where permitted -- for a few episodes with the
# shipped weights. It prints each episode, the timing measured at the arm (command intervals,
# missed ticks, image-to-command latency, CPU per process), saves outputs/demo.mp4 (H.264 at
# the camera's 15 fps: plays in a browser, in real time) and outputs/demo_strip.png, and ends
# with a line "success K/N". EPISODES=10 bash scripts/demo.sh runs more; any other argument
# goes to fdl-robot-closed-loop (see --help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
exec "$ROOT/.venv/bin/fdl-robot-closed-loop" --episodes "${EPISODES:-3}" --seed0 "${SEED0:-5000}" \
    --video outputs/demo.mp4 --strip outputs/demo_strip.png --json outputs/demo.json "$@"

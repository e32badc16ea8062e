#!/usr/bin/env bash
# Build the ROS 2 messages into a Python venv made from the PyPI ROS 2 wheels, with plain cmake
# (no colcon, no ROS setup.bash): the s2m_ros messages of msg/, and tf2_msgs and the ROS4HRI
# hri_msgs subset of cmake/ (no wheels exist).
#
#   usage: tools/build_msgs.sh VENV        (the Makefile runs it once after `pip install -e .`)
#
# Idempotent: a re-run rebuilds only what changed (build folders under build/msgs/). Robots with
# an apt ROS distro use `colcon build` instead and never run this script.
set -euo pipefail

if [[ $# -ne 1 || ! -x "$1/bin/python" ]]; then
  echo "usage: $0 VENV   (VENV: a Python venv with the ROS 2 wheels of requirements.txt)" >&2
  exit 2
fi
VENV=$(cd "$1" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${S2M_MSGS_BUILD_DIR:-$ROOT/build/msgs}
PY=$VENV/bin/python
JOBS=$(nproc 2>/dev/null || echo 2)
LOGS=$BUILD/logs
mkdir -p "$LOGS"

common_args=(
  -DCMAKE_PREFIX_PATH="$VENV"
  -DCMAKE_INSTALL_PREFIX="$VENV"
  -DPython3_EXECUTABLE="$PY"
  -DPython3_FIND_VIRTUALENV=ONLY
  -DBUILD_TESTING=OFF
  # -O1: the generated typesupport code is mostly copies; -O3 (Release) builds ~1.7x slower
  -DCMAKE_BUILD_TYPE=
  -DCMAKE_C_FLAGS=-O1
  -DCMAKE_CXX_FLAGS=-O1
  # drops the wheel builder's /opt/python/ include paths; only this script loads it
  -DCMAKE_PROJECT_INCLUDE="$ROOT/cmake/pypi_wheels_fix.cmake"
)

# build NAME SOURCE_DIR [extra cmake args...]: configure, build and install into the venv;
# output goes to a log that is printed only on failure.
build() {
  local name=$1 src=$2
  shift 2
  local log=$LOGS/$name.log
  if ! {
    cmake -S "$src" -B "$BUILD/$name" "${common_args[@]}" "$@" &&
      cmake --build "$BUILD/$name" --parallel "$JOBS" &&
      cmake --install "$BUILD/$name"
  } >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "build_msgs.sh: building $name failed, full log: $log" >&2
    return 1
  fi
}

start=$SECONDS
# The two projects are independent: build them side by side (about 1.5x faster on 2 cores).
# tf2_msgs only when the venv has none of its own (a wheel some day), or when we built it.
# The same for hri_msgs (ROS4HRI): its marker file is one s2m does not build (Skeleton2D is).
tf2_pid=
if [[ -f "$VENV/share/tf2_msgs/msg/TFMessage.msg" && ! -f "$BUILD/tf2_msgs/Makefile" ]]; then
  echo "build_msgs.sh: tf2_msgs already in $VENV, not rebuilt"
else
  build tf2_msgs "$ROOT/cmake/tf2_msgs" &
  tf2_pid=$!
fi
hri_pid=
if [[ -f "$VENV/share/hri_msgs/msg/Skeleton2D.msg" && ! -f "$BUILD/hri_msgs/Makefile" ]]; then
  echo "build_msgs.sh: hri_msgs already in $VENV, not rebuilt"
else
  build hri_msgs "$ROOT/cmake/hri_msgs" &
  hri_pid=$!
fi
s2m_status=0
build s2m_ros "$ROOT" -DS2M_INSTALL_PYTHON=OFF || s2m_status=$?
for pid in $tf2_pid $hri_pid; do
  wait "$pid" || s2m_status=$?
done
if [[ $s2m_status -ne 0 ]]; then
  exit "$s2m_status"
fi

# Import check from outside the repository, so the installed files (not the source tree on the
# current directory) are what gets imported.
(cd / && "$PY" -c "
import s2m_ros.msg as m
from tf2_msgs.msg import TFMessage
from hri_msgs.msg import IdsList, Skeleton2D
print('build_msgs.sh: imported', ', '.join(sorted(n for n in dir(m) if n[0].isupper())),
      '+', TFMessage.__name__, '+', IdsList.__name__, Skeleton2D.__name__)
")
echo "build_msgs.sh: messages built into $VENV in $((SECONDS - start)) s"

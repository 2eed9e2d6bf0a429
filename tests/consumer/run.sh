#!/usr/bin/env bash
# Install + consumer test: builds tests/consumer (a project outside theta) twice and runs it.
#   (a) package:      cmake --install BUILD_DIR into a scratch prefix, then find_package(theta)
#   (b) subdirectory: add_subdirectory() of the theta source tree
# Usage: tests/consumer/run.sh [BUILD_DIR]   (default build/; it must already be built)
# Scratch files go to BUILD_DIR/consumer-test/, so a second run is incremental.
# THETA_WERROR=1 builds theta with -Werror in the subdirectory case too; THETA_JOBS sets -j.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=$(cd "${1:-$ROOT/build}" && pwd)
WORK=$BUILD_DIR/consumer-test
PREFIX=$WORK/prefix
JOBS=${THETA_JOBS:-2}
WERROR=OFF
if [[ ${THETA_WERROR:-0} == 1 ]]; then WERROR=ON; fi

say() { printf 'consumer: %s\n' "$*"; }
fail() { printf 'consumer: FAIL: %s\n' "$*" >&2; exit 1; }

[[ -f $BUILD_DIR/CMakeCache.txt ]] || fail "$BUILD_DIR is not a configured theta build directory"

say "(a) install tree + find_package"
rm -rf "$PREFIX"
mkdir -p "$WORK"
cmake --install "$BUILD_DIR" --prefix "$PREFIX" >"$WORK/install.log" 2>&1 ||
  { cat "$WORK/install.log"; fail "cmake --install failed"; }
[[ -f $PREFIX/lib/cmake/theta/thetaConfig.cmake ]] || fail "no thetaConfig.cmake under $PREFIX"
[[ -f $PREFIX/include/theta/tensor/tensor.hpp ]] || fail "headers missing under $PREFIX/include/theta"
# The installed package must not point back into the source or build tree.
if grep -rlF -e "$ROOT/" -e "$BUILD_DIR" "$PREFIX/lib/cmake/theta"; then
  fail "installed CMake files reference the source or build tree"
fi
cmake -S "$ROOT/tests/consumer" -B "$WORK/package" -DCMAKE_BUILD_TYPE=Release \
  -DTHETA_CONSUMER_MODE=package -DCMAKE_PREFIX_PATH="$PREFIX"
cmake --build "$WORK/package" -j "$JOBS"
"$WORK/package/theta_consumer" || fail "package build: theta_consumer failed"

say "(b) add_subdirectory of the source tree"
cmake -S "$ROOT/tests/consumer" -B "$WORK/subdirectory" -DCMAKE_BUILD_TYPE=Release \
  -DTHETA_CONSUMER_MODE=subdirectory -DTHETA_SOURCE_DIR="$ROOT" -DTHETA_WERROR="$WERROR"
cmake --build "$WORK/subdirectory" -j "$JOBS"
# theta's tests, benchmarks and demos default to OFF below a parent project.
for unwanted in tests/theta_tests bench/theta_bench; do
  [[ ! -e $WORK/subdirectory/theta/$unwanted ]] || fail "add_subdirectory built $unwanted"
done
"$WORK/subdirectory/theta_consumer" || fail "subdirectory build: theta_consumer failed"

say "both builds passed"

#!/usr/bin/env bash
# Install + consumer test: builds tests/consumer (a project outside theta: the umbrella header, a
# program that loads the shipped digits, trains, computes an NTK and a Hessian spectrum, and every
# C++ example of README.md as a program) with -Wall -Wextra -Wpedantic -Werror, twice, and runs it.
#   (a) package:      theta configured for a scratch prefix, `cmake --install`ed there, then
#                     find_package(theta); the programs run with THETA_DATA_DIR unset and must
#                     load the data from the prefix (the installed library holds no path into the
#                     source tree); under `taskset` to one CPU the default thread count must be 1;
#                     the Python package installed there imports, loads the data and runs an NTK
#   (b) subdirectory: add_subdirectory() of the theta source tree
# Usage: tests/consumer/run.sh [BUILD_DIR]   (default build/; a configured theta build: its
# compiler launcher, e.g. ccache, is reused, and `cmake --install` of it must warn that its data
# path does not follow --prefix)
# Scratch files go to BUILD_DIR/consumer-test/, so a second run is incremental.
# THETA_WERROR=1 builds theta with -Werror too; THETA_JOBS sets -j; THETA_BUILD_LOCK=FILE runs
# every build under `flock FILE`.
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

build() {
  local lock=()
  if [[ -n ${THETA_BUILD_LOCK:-} ]]; then lock=(flock "$THETA_BUILD_LOCK"); fi
  "${lock[@]}" cmake --build "$1" -j "$JOBS"
}

[[ -f $BUILD_DIR/CMakeCache.txt ]] || fail "$BUILD_DIR is not a configured theta build directory"
LAUNCHER=$(sed -n 's/^CMAKE_CXX_COMPILER_LAUNCHER:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt")
mkdir -p "$WORK"
SNIPPETS=$WORK/snippets
count=$("$ROOT/tests/consumer/readme_snippets.sh" "$ROOT/README.md" "$SNIPPETS")
say "$count C++ examples in README.md"

say "(a) install tree + find_package"
# The installed library looks for its data where it was configured to be installed, so theta is
# configured for this prefix (library only).
cmake -S "$ROOT" -B "$WORK/theta" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX" \
  -DTHETA_BUILD_TESTS=OFF -DTHETA_BUILD_BENCH=OFF -DTHETA_BUILD_DEMOS=OFF -DTHETA_WERROR="$WERROR" \
  -DCMAKE_CXX_COMPILER_LAUNCHER="$LAUNCHER" >"$WORK/theta-configure.log" ||
  { cat "$WORK/theta-configure.log"; fail "configuring theta for $PREFIX failed"; }
build "$WORK/theta"
rm -rf "$PREFIX"
cmake --install "$WORK/theta" >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; fail "cmake --install failed"; }
if grep -qi warning "$WORK/install.log"; then cat "$WORK/install.log"; fail "cmake --install warned"; fi
[[ -f $PREFIX/lib/cmake/theta/thetaConfig.cmake ]] || fail "no thetaConfig.cmake under $PREFIX"
[[ -f $PREFIX/include/theta/tensor/tensor.hpp ]] || fail "headers missing under $PREFIX/include/theta"
[[ -f $PREFIX/include/theta/theta/theta.hpp ]] || fail "umbrella header missing under $PREFIX/include/theta"
for file in digits.csv.gz iris.csv README.md; do
  [[ -f $PREFIX/share/theta/$file ]] || fail "data file $file missing under $PREFIX/share/theta"
done
# The installed package must not point back into the source or build tree.
if grep -rlF -e "$ROOT/" -e "$BUILD_DIR" "$PREFIX/lib/cmake/theta"; then
  fail "installed CMake files reference the source or build tree"
fi
if grep -rlF "$ROOT/data" "$PREFIX/lib"; then fail "an installed library names the source tree's data folder"; fi

cmake -S "$ROOT/tests/consumer" -B "$WORK/package" -DCMAKE_BUILD_TYPE=Release \
  -DTHETA_CONSUMER_MODE=package -DCMAKE_PREFIX_PATH="$PREFIX" -DTHETA_CONSUMER_SNIPPETS_DIR="$SNIPPETS" \
  -DCMAKE_CXX_COMPILER_LAUNCHER="$LAUNCHER"
build "$WORK/package"
# Run from a scratch folder with no data override: the data must come from the prefix.
run_dir=$WORK/package-run
rm -rf "$run_dir" && mkdir -p "$run_dir"
(cd "$run_dir" && env -u THETA_DATA_DIR "$WORK/package/theta_consumer") | tee "$WORK/package-run.log" ||
  fail "package build: theta_consumer failed"
data_path=$(sed -n 's/^theta consumer: data //p' "$WORK/package-run.log")
[[ $data_path == "$PREFIX/share/theta/"* ]] || fail "theta_consumer loaded its data from '$data_path', not from $PREFIX"
# (Named after the README's current examples: a build folder may hold stale ones.)
for source in "$SNIPPETS"/readme_snippet_*.cpp; do
  name=$(basename "$source" .cpp)
  say "running $name"
  (cd "$run_dir" && env -u THETA_DATA_DIR "$WORK/package/$name" >"$run_dir/$name.log" 2>&1) ||
    { cat "$run_dir/$name.log"; fail "README example $name (README.md line ${name#readme_snippet_}) failed"; }
done
# The default thread count follows the affinity mask (Note [Default thread count]).
cpu=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*\([0-9]*\).*/\1/p' /proc/self/status)
threads=$(env -u THETA_NUM_THREADS -u OMP_NUM_THREADS taskset -c "$cpu" "$WORK/package/theta_consumer" --threads)
[[ $threads == 1 ]] || fail "under taskset -c $cpu the default thread count is $threads, not 1"
say "under taskset -c $cpu: 1 thread"

# The Python package installed beside the library: it imports from the prefix alone (run from the
# scratch folder, the build tree off the path) and finds the data sets under the prefix.
python=$(head -n 1 "$WORK/theta/python/interpreter.txt")
site=$(sed -n 's/^THETA_PYTHON_INSTALL_DIR:[A-Z]*=//p' "$WORK/theta/CMakeCache.txt")
[[ $site == /* ]] || site=$PREFIX/$site
[[ -f $site/theta/__init__.py ]] || fail "the Python package is missing under $site"
[[ ! -e $site/theta/_build_tree.py ]] || fail "the build tree's _build_tree.py was installed"
(cd "$run_dir" && env -u THETA_DATA_DIR PYTHONPATH="$site" "$python" -c '
import theta, numpy as np
x, y = theta.nn.load_digits()
assert x.shape == (1797, 64) and y.shape == (1797,), (x.shape, y.shape)
net = theta.nn.mlp([64, 16, 10], seed=0)
k = theta.theory.ntk(net, x[:8], form="trace")
assert k.shape == (8, 8) and np.allclose(k, k.T)
print("theta python:", theta.__file__)
') | tee "$WORK/python-run.log" || fail "the installed Python package failed"
grep -q "^theta python: $site/theta/" "$WORK/python-run.log" || fail "python imported theta from elsewhere, not $site"
say "Python package: imports from the prefix, loads the data from it"

# Installing a build configured for another prefix elsewhere warns: its data path is fixed.
cmake --install "$BUILD_DIR" --prefix "$WORK/elsewhere" >"$WORK/install-elsewhere.log" 2>&1 ||
  { cat "$WORK/install-elsewhere.log"; fail "cmake --install --prefix failed"; }
grep -q "THETA_DATA_DIR=$WORK/elsewhere/share/theta" "$WORK/install-elsewhere.log" ||
  fail "cmake --install --prefix $WORK/elsewhere did not warn that the data path stays $(sed -n 's/^CMAKE_INSTALL_PREFIX:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt")"
rm -rf "$WORK/elsewhere"

say "(b) add_subdirectory of the source tree"
cmake -S "$ROOT/tests/consumer" -B "$WORK/subdirectory" -DCMAKE_BUILD_TYPE=Release \
  -DTHETA_CONSUMER_MODE=subdirectory -DTHETA_SOURCE_DIR="$ROOT" -DTHETA_WERROR="$WERROR" \
  -DTHETA_CONSUMER_SNIPPETS_DIR="$SNIPPETS" -DCMAKE_CXX_COMPILER_LAUNCHER="$LAUNCHER"
build "$WORK/subdirectory"
# theta's tests, benchmarks and demos default to OFF below a parent project.
for unwanted in tests/theta_tests bench/theta_bench; do
  [[ ! -e $WORK/subdirectory/theta/$unwanted ]] || fail "add_subdirectory built $unwanted"
done
"$WORK/subdirectory/theta_consumer" || fail "subdirectory build: theta_consumer failed"

say "both builds passed"

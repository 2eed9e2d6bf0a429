#!/usr/bin/env bash
# Builds theta_npy_fuzz with Clang (libFuzzer + ASan + UBSan) in its own build directory and
# runs it for a bounded time.
#   fuzz/run_npy_fuzz.sh [seconds=60] [build dir=build-fuzz]
# New inputs go to <build dir>/npy_corpus (seeded from fuzz/corpus/npy); crashes to
# <build dir>/npy_artifacts.
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${2:-${root}/build-fuzz}"
flags="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer"

CC=clang CXX=clang++ cmake -S "${root}" -B "${build}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="${flags}" -DTHETA_BUILD_FUZZ=ON \
  -DTHETA_BUILD_TESTS=OFF -DTHETA_BUILD_BENCH=OFF -DTHETA_BUILD_DEMOS=OFF >/dev/null
lock=(); command -v flock >/dev/null && lock=(flock /tmp/theta-build.lock)
"${lock[@]}" cmake --build "${build}" -j2 --target theta_npy_fuzz

mkdir -p "${build}/npy_corpus" "${build}/npy_artifacts"
cp -n "${root}"/fuzz/corpus/npy/* "${build}/npy_corpus/"
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  "${build}/fuzz/theta_npy_fuzz" "${build}/npy_corpus" -dict="${root}/fuzz/npy.dict" \
  -max_total_time="${seconds}" -max_len=4096 -artifact_prefix="${build}/npy_artifacts/" \
  -print_final_stats=1

#!/usr/bin/env bash
# Every test: installs what is missing, builds (Release, with tests), runs ctest.
# Exits non-zero on any failure. Usage: tools/test.sh [extra ctest args]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/install-deps.sh"
build="$root/build-test"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCAUSALATTN_BUILD_TESTS=ON -DCAUSALATTN_BUILD_BENCH=ON > /dev/null
cmake --build "$build" -j "$(nproc)"
# The benchmark binary must run too: one quick pass over a small case.
"$build/bench/causalattn_bench" --benchmark_filter='BM_Attention/T:128/D:64/causal:1/threads:1' \
  --benchmark_min_time=0.01 > /dev/null
cd "$build"
ctest --output-on-failure -j "$(nproc)" "$@"

#!/usr/bin/env bash
# Fuzzes causalattn_forward_f32 against the reference (tests/fuzz/fuzz_forward.cpp) with
# libFuzzer, ASan and UBSan: first every committed regression input, then RUNS new executions
# from the committed seed corpus. Exits non-zero on any crash or mismatch; libFuzzer writes the
# input as crash-*, which then belongs in tests/fuzz/regressions/.
# Usage: tools/fuzz.sh [RUNS]   (default 20000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-20000}
"$root/tools/install-deps.sh" --sanitize
build="$root/build-fuzz"
CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCAUSALATTN_SANITIZE=address,undefined -DCAUSALATTN_BUILD_FUZZ=ON \
  -DCAUSALATTN_BUILD_TESTS=OFF -DCAUSALATTN_BUILD_BENCH=OFF > /dev/null
cmake --build "$build" -j "$(nproc)" --target fuzz_forward
fuzzer="$build/tests/fuzz/fuzz_forward"
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
regressions=("$root"/tests/fuzz/regressions/*)
if [ -e "${regressions[0]}" ]; then
  echo "fuzz: ${#regressions[@]} regression inputs"
  "$fuzzer" "${regressions[@]}" 2>&1 | tail -n 2
fi
# New inputs go to a scratch corpus; the committed seeds are read only.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
echo "fuzz: $runs runs from $(ls "$root/tests/fuzz/corpus" | wc -l) seeds"
cd "$build"
"$fuzzer" -runs="$runs" -max_len=8192 -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
  "$scratch" "$root/tests/fuzz/corpus" 2>&1 | grep -E "^#|Done|stat::number_of_executed_units|ERROR|fuzz_forward:" | tail -n 5
echo "fuzz: ok"

#!/usr/bin/env bash
# Fuzzes every entry point against the reference with libFuzzer, ASan and UBSan (tests/fuzz/):
#   forward      causalattn_forward_f32
#   attend       causalattn_attend_f32 (varlen, paged, window, dropout, decode, workspaces),
#                causalattn_merge_f32, causalattn_linear_f32
#   safetensors  the safetensors reader and a module's load_state_dict
# For each target: first every committed regression input (tests/fuzz/<target>_regressions),
# then RUNS new executions from the committed seeds (tests/fuzz/<target>_corpus, with
# tests/fuzz/<target>.dict where there is one). Exits non-zero on any crash or mismatch;
# libFuzzer writes the input as crash-* in build-fuzz/, which then belongs in the regressions.
# Usage: tools/fuzz.sh [RUNS] [TARGET...]   (default 20000 runs, every target)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-20000}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(forward attend safetensors)
"$root/tools/install-deps.sh" --sanitize
build="$root/build-fuzz"
CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCAUSALATTN_SANITIZE=address,undefined -DCAUSALATTN_BUILD_FUZZ=ON \
  -DCAUSALATTN_BUILD_TESTS=OFF -DCAUSALATTN_BUILD_BENCH=OFF > /dev/null
cmake --build "$build" -j "$(nproc)" --target "${targets[@]/#/fuzz_}"
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$build"
for target in "${targets[@]}"; do
  fuzzer="$build/tests/fuzz/fuzz_$target"
  regressions=("$root/tests/fuzz/${target}_regressions"/*)
  if [ -e "${regressions[0]}" ]; then
    echo "fuzz $target: ${#regressions[@]} regression inputs"
    "$fuzzer" "${regressions[@]}" 2>&1 | tail -n 2
  fi
  # New inputs go to a scratch corpus; the committed seeds are read only.
  mkdir -p "$scratch/$target"
  dict=()
  [ -f "$root/tests/fuzz/$target.dict" ] && dict=(-dict="$root/tests/fuzz/$target.dict")
  echo "fuzz $target: $runs runs from $(ls "$root/tests/fuzz/${target}_corpus" | wc -l) seeds"
  "$fuzzer" -runs="$runs" -max_len=8192 -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
    "$scratch/$target" "$root/tests/fuzz/${target}_corpus" 2>&1 |
    grep -E "^#|Done|stat::number_of_executed_units|ERROR|fuzz_[a-z]*:" | tail -n 5
done
echo "fuzz: ok"

#!/usr/bin/env bash
# Fuzzes every entry point against the reference with libFuzzer, ASan and UBSan (tests/fuzz/):
#   forward      causalattn_forward_f32
#   attend       causalattn_attend_f32 (varlen, paged, window, dropout, decode, workspaces),
#                causalattn_merge_f32, causalattn_linear_f32
#   safetensors  the safetensors reader and a module's load_state_dict
# For each target: first every committed regression input (tests/fuzz/<target>_regressions),
# then RUNS new executions from the committed seeds (tests/fuzz/<target>_corpus, with
# tests/fuzz/<target>.dict where there is one). Exits non-zero on any crash or mismatch, printing
# the failing call and the input's bytes in hex (`xxd -r -p` turns them back into the file that
# then belongs in the regressions).
# Usage: tools/fuzz.sh [RUNS] [TARGET...]   (default 20000 runs, every target)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-20000}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(forward attend safetensors)
"$root/tools/install-deps.sh" --sanitize
# The entry points run the kernels of this CPU's row: only it and the baseline are built
# (CAUSALATTN_ISA_ROWS), a third of the compile time of every row under the sanitizers.
build="$root/build-fuzz"
CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCAUSALATTN_SANITIZE=address,undefined -DCAUSALATTN_BUILD_FUZZ=ON -DCAUSALATTN_ISA_ROWS=native \
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
    if ! "$fuzzer" "${regressions[@]}" > "$scratch/log" 2>&1; then
      grep -E "ERROR|fuzz_[a-z]*:|  call:|Running:|SUMMARY" "$scratch/log" | head -n 20
      exit 1
    fi
  fi
  # New inputs go to a scratch corpus; the committed seeds are read only.
  mkdir -p "$scratch/$target"
  dict=()
  [ -f "$root/tests/fuzz/$target.dict" ] && dict=(-dict="$root/tests/fuzz/$target.dict")
  echo "fuzz $target: $runs runs from $(ls "$root/tests/fuzz/${target}_corpus" | wc -l) seeds"
  # A finding prints its call and its input's bytes: the CI log alone reproduces it.
  if ! "$fuzzer" -runs="$runs" -max_len=8192 -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
      -artifact_prefix="$scratch/" "$scratch/$target" "$root/tests/fuzz/${target}_corpus" > "$scratch/log" 2>&1; then
    grep -E "ERROR|fuzz_[a-z]*:|  call:|SUMMARY" "$scratch/log" | head -n 20
    for input in "$scratch"/crash-* "$scratch"/timeout-* "$scratch"/oom-* "$scratch"/leak-*; do
      [ -e "$input" ] && { echo "input $(basename "$input") (hex):"; od -An -v -tx1 "$input" | head -n 64; }
    done
    exit 1
  fi
  grep -E "^#|Done|stat::number_of_executed_units" "$scratch/log" | tail -n 3
done
echo "fuzz: ok"

#!/usr/bin/env bash
# Every test: installs what is missing, builds (Release, with tests), runs ctest.
# Exits non-zero on any failure.
# Usage: tools/test.sh [--sanitize | --minimal | --aarch64] [extra ctest args]
#   --sanitize  instead: the suite under AddressSanitizer + UndefinedBehaviorSanitizer (g++), then
#               the threading tests under ThreadSanitizer (clang, see tools/sanitizers/)
#   --minimal   the same suite built as on a machine without any optional package
#               (CAUSALATTN_USE_OPTIONAL=OFF: no OpenBLAS baseline, no torch), in build-minimal/
#   --aarch64   instead: cross-built for aarch64 (cmake/aarch64-linux-gnu.cmake) in build-aarch64/,
#               the suite and a benchmark smoke run under qemu-aarch64 (emulated: no timing means
#               anything there)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=plain
case "${1:-}" in
  --sanitize) mode=sanitize; shift ;;
  --minimal) mode=minimal; shift ;;
  --aarch64) mode=aarch64; shift ;;
esac
jobs=$(nproc)

# ctest in the slow stages (emulation, the sanitizers). The rows that only add a bf16 kernel to
# the row they extend (amx, avx512bf16, neonbf16: every other kernel is that row's, which runs in
# full) run only their bf16 and dtype tests there: the batch-invariance suite alone on them was
# a third of those stages. $slow_skip, where set: a regex of more tests to leave out.
slow_ctest() {
  local bf16_rows='amx|avx512bf16|neonbf16'
  ctest --output-on-failure -j "$jobs" -E "/($bf16_rows)( |\$)${slow_skip:+|$slow_skip}" "$@"
  ctest --output-on-failure -j "$jobs" -R "(Bf16|Dtypes)[^/]*/($bf16_rows)( |\$)" --no-tests=ignore "$@"
}

if [ $mode = aarch64 ]; then
  "$root/tools/install-deps.sh" --aarch64
  build="$root/build-aarch64"
  # No optional package: none is installed for arm64 (no MPI, no OpenBLAS, no torch).
  cmake -S "$root" -B "$build" -DCMAKE_TOOLCHAIN_FILE="$root/cmake/aarch64-linux-gnu.cmake" -DCMAKE_BUILD_TYPE=Release \
    -DCAUSALATTN_BUILD_TESTS=ON -DCAUSALATTN_BUILD_BENCH=ON -DCAUSALATTN_USE_OPTIONAL=OFF > /dev/null
  cmake --build "$build" -j "$jobs"
  qemu-aarch64 "$build/bench/causalattn_bench" \
    --benchmark_filter='BM_Attention/T:128/D:64/causal:1/threads:1' --benchmark_min_time=0.01 > /dev/null
  # ctest runs the tests through the toolchain's emulator. Not run: the packaging tests (label
  # build: they build host projects) and the T=65536 memory test (label large: minutes emulated).
  (cd "$build" && slow_ctest -LE 'build|large' "$@")
  exit 0
fi

if [ $mode != sanitize ]; then
  "$root/tools/install-deps.sh"
  build="$root/build-test" optional=ON
  [ $mode = minimal ] && build="$root/build-minimal" optional=OFF
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCAUSALATTN_BUILD_TESTS=ON -DCAUSALATTN_BUILD_BENCH=ON \
    -DCAUSALATTN_USE_OPTIONAL=$optional > /dev/null
  cmake --build "$build" -j "$jobs"
  # The benchmark binary must run too: one quick pass over a small case.
  "$build/bench/causalattn_bench" --benchmark_filter='BM_Attention/T:128/D:64/causal:1/threads:1' \
    --benchmark_min_time=0.01 > /dev/null
  (cd "$build" && ctest --output-on-failure -j "$jobs" "$@")
  # The Python package (PyPI's nanobind and scikit-build-core): not part of the minimal build.
  [ $mode = minimal ] || "$root/tools/python-test.sh"
  exit 0
fi

"$root/tools/install-deps.sh" --sanitize
# AddressSanitizer + UndefinedBehaviorSanitizer, any error fatal, leaks checked. Not run here:
# the packaging tests (label build: they build other projects without the sanitizer flags) and
# the T=65536 memory test (label large: the sanitizers' shadow memory is what it would measure).
build="$root/build-asan"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCAUSALATTN_SANITIZE=address,undefined \
  -DCAUSALATTN_BUILD_TESTS=ON -DCAUSALATTN_BUILD_BENCH=OFF > /dev/null
cmake --build "$build" -j "$jobs"
# The batch-invariance suite runs on the AVX-512 row only here: on sse2 and avx2 it was 7 of the
# 16 CPU-minutes of this ctest, for kernels the per-ISA serving, dtype and variant tests run
# under the sanitizers on every row (the plain build runs the suite on every row).
(cd "$build" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  slow_skip='BatchInvariance\.[^/]*/(sse2|avx2)( |$)' slow_ctest -LE 'build|large|mpi' "$@")
# The MPI tests (where built) without the leak check: Open MPI keeps allocations at MPI_Finalize
# from components it has already unloaded, which no suppression can name.
(cd "$build" && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -L mpi --no-tests=ignore "$@")

# ThreadSanitizer over the tests labelled threads. clang, because its -fsanitize-ignorelist lets
# TBB's header code stay uninstrumented like Debian's libtbb (tools/sanitizers/tsan-ignorelist.txt).
# The kernels of this CPU's row and the baseline's only (CAUSALATTN_ISA_ROWS): the threading is
# what is tested, and the other rows' objects were most of this tree's build.
build="$root/build-tsan"
CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCAUSALATTN_SANITIZE=thread \
  -DCAUSALATTN_ISA_ROWS=native \
  -DCMAKE_CXX_FLAGS="-fsanitize-ignorelist=$root/tools/sanitizers/tsan-ignorelist.txt" \
  -DCAUSALATTN_BUILD_TESTS=ON -DCAUSALATTN_BUILD_BENCH=OFF > /dev/null
cmake --build "$build" -j "$jobs" --target test_concurrency test_hostile test_properties test_dropout test_linear
(cd "$build" && TSAN_OPTIONS="halt_on_error=1 suppressions=$root/tools/sanitizers/tsan.supp" \
  ctest --output-on-failure -j "$jobs" -L threads "$@")

#!/usr/bin/env bash
# The main job: installs what is missing, builds Release, runs the benchmark sweep over sequence
# lengths and writes reports/<date>-<host>/report.md (raw JSON beside it).
# Usage: tools/report.sh [--quick]    --quick: a few sizes, under two minutes
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
  esac
done
"$root/tools/install-deps.sh" --report
build="$root/build-release"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCAUSALATTN_BUILD_TESTS=OFF -DCAUSALATTN_BUILD_BENCH=ON > /dev/null
cmake --build "$build" -j "$(nproc)" > /dev/null
out="$root/reports/$(date +%Y-%m-%d)-$(hostname -s)"
mkdir -p "$out"
filter='.*'
min_time=0.3
if [ $quick -eq 1 ]; then
  filter='BM_PeakFma|BM_Attention/T:(256|1024)/|BM_Reference/T:256/'
  min_time=0.05
fi
total=$("$build/bench/causalattn_bench" --benchmark_list_tests --benchmark_filter="$filter" | wc -l)
echo "running $total benchmark cases (raw JSON: $out/bench.json)"
start=$(date +%s)
# Progress: one line per finished case (its median over repetitions), with how many are left
# and the time so far.
stdbuf -oL "$build/bench/causalattn_bench" --benchmark_filter="$filter" --benchmark_min_time="$min_time" \
  --benchmark_out="$out/bench.json" --benchmark_out_format=json --benchmark_format=console 2>/dev/null |
  awk -v total="$total" -v start="$start" '
    /^BM_/ && ($1 ~ /_median$/ || $1 !~ /repeats:/) {
      n++; "date +%s" | getline now; close("date +%s")
      printf("[%d/%d, %ds] %s\n", n, total, now - start, $0); fflush()
    }'
/usr/bin/python3 "$root/tools/report.py" "$out/bench.json" "$out"
echo "report: $out/report.md"

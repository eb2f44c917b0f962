#!/usr/bin/env bash
# The main job: installs what is missing, builds Release, runs the sweep over sequence lengths
# (our kernel, the machine's limits, the baselines), measures peak memory per T and writes
# reports/<date>-<host>/report.md with its plots (raw results beside it; --quick writes to
# reports/<date>-<host>-quick/, so that it never replaces a full report of the same day).
# Usage: tools/report.sh [--quick] [--with-torch]
#   --quick       a few sizes, under two minutes
#   --with-torch  installs PyPI's torch in build-torch-venv/ (once) to measure PyTorch's
#                 scaled_dot_product_attention too; without it PyTorch is measured only when
#                 /usr/bin/python3 can already import torch
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
quick=0
with_torch=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    --with-torch) with_torch=1 ;;
    *) echo "usage: $0 [--quick] [--with-torch]" >&2; exit 2 ;;
  esac
done
"$root/tools/install-deps.sh" --report
build="$root/build-release"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCAUSALATTN_BUILD_TESTS=OFF -DCAUSALATTN_BUILD_BENCH=ON > /dev/null
cmake --build "$build" -j "$(nproc)" > /dev/null
out="$root/reports/$(date +%Y-%m-%d)-$(hostname -s)"
if [ $quick -eq 1 ]; then out="$out-quick"; fi
mkdir -p "$out"
rm -f "$out/torch.json" "$out/memory.jsonl" "$out/mpi.jsonl"

filter='.*'
min_time=0.2
memory_lens=(128 256 512 1024 2048 4096 8192 16384)
if [ $quick -eq 1 ]; then
  filter='BM_Peak(Fma|DotBf16)|BM_ReadBandwidth/threads:1/|BM_Attention/T:(256|1024)/|BM_TextbookBlas/T:(256|1024)/|BM_Reference/T:256/|BM_Decode/Tk:(512|8192)/batch:1/threads:1/|BM_Linear(Blas)?/M:4096/.*threads:1/|BM_Gpt2Layer/T:256/|BM_PrefillDtypes/.*/threads:1/|BM_PackedBatch/.*/threads:1/|BM_Variants/.*/threads:1/|BM_HeadDimV/.*/threads:1/'
  min_time=0.05
  memory_lens=(256 1024)
fi
start=$(date +%s)
total=$("$build/bench/causalattn_bench" --benchmark_list_tests --benchmark_filter="$filter" | wc -l)
echo "1/5 benchmark sweep: $total cases (raw JSON: $out/bench.json)"
# Progress: one line per finished case (its median over repetitions), with how many are left
# and the time so far.
stdbuf -oL "$build/bench/causalattn_bench" --benchmark_filter="$filter" --benchmark_min_time="$min_time" \
  --benchmark_out="$out/bench.json" --benchmark_out_format=json --benchmark_format=console 2>/dev/null |
  awk -v total="$total" -v start="$start" '
    /^BM_/ && ($1 ~ /_median$/ || $1 !~ /repeats:/) {
      n++; "date +%s" | getline now; close("date +%s")
      printf("[%d/%d, %ds] %s\n", n, total, now - start, $0); fflush()
    }'

# The headline cases again, in three passes whose repetitions run interleaved at random: a noisy
# stretch of the shared machine then slows some repetitions of several cases instead of every
# repetition of one, which would skew the headline ratios. report.py takes the headline table
# from these passes (each case's best) and the rest from the sweep.
rm -f "$out"/headline-*.json
if [ $quick -eq 0 ]; then
  headline='BM_PeakFma|BM_Attention/T:4096/|BM_TextbookBlas/T:4096/|BM_Linear(Blas)?/M:4096/N:1024/K:1024/'
  echo "2/5 headline cases again, interleaved: 3 passes of $("$build/bench/causalattn_bench" \
    --benchmark_list_tests --benchmark_filter="$headline" | wc -l) cases (raw JSON: $out/headline-*.json)"
  for pass in 1 2 3; do
    "$build/bench/causalattn_bench" --benchmark_filter="$headline" --benchmark_min_time=0.05 \
      --benchmark_enable_random_interleaving=true --benchmark_out="$out/headline-$pass.json" \
      --benchmark_out_format=json > /dev/null 2>&1
    echo "[$(($(date +%s) - start))s] headline pass $pass done"
  done
fi

# Peak memory: one process per (method, T), since a process's peak only grows.
echo "3/5 peak memory, D=128, H=8, all threads: ${#memory_lens[@]} lengths × 2 methods"
for t in "${memory_lens[@]}"; do
  for method in causal textbook; do
    "$build/bench/causalattn_peak_memory" "$method" "$t" 128 8 "$(nproc)" >> "$out/memory.jsonl"
  done
  echo "[$(($(date +%s) - start))s] memory T=$t done"
done

# Scale-out over MPI (causalattn::mpi): 2 ranks × 1 thread against one process with 2 threads on
# the same cores, ring prefill (zigzag and contiguous shards) and sharded-cache decode.
if [ -x "$build/bench/causalattn_mpi_bench" ] && command -v mpirun > /dev/null; then
  mpi_tokens=16384 mpi_reps=3 decode_len=32768
  [ $quick -eq 1 ] && mpi_tokens=2048 mpi_reps=1 decode_len=4096
  echo "4/5 scale-out over MPI: 2 ranks, ring T=$mpi_tokens (zigzag, contiguous), decode Tk=$decode_len"
  # Open MPI refuses root unless told (CI runs as root).
  [ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  for sharding in zigzag contiguous; do
    mpirun -np 2 --oversubscribe --bind-to none "$build/bench/causalattn_mpi_bench" --mode ring \
      --tokens $mpi_tokens --dim 128 --heads 8 --sharding $sharding --reps $mpi_reps >> "$out/mpi.jsonl"
  done
  mpirun -np 2 --oversubscribe --bind-to none "$build/bench/causalattn_mpi_bench" --mode decode \
    --tokens $decode_len --dim 128 --heads 32 --kv-heads 8 --reps $mpi_reps >> "$out/mpi.jsonl"
  echo "[$(($(date +%s) - start))s] scale-out done"
else
  echo "4/5 scale-out over MPI: skipped (no causalattn_mpi_bench or mpirun: tools/install-deps.sh installs Open MPI)"
fi

python=""
if [ $with_torch -eq 1 ]; then
  venv="$root/build-torch-venv"
  if ! "$venv/bin/python" -c "import torch" 2> /dev/null; then
    "$root/tools/install-deps.sh" --torch
    echo "installing PyPI's torch into $venv (once; several GB)"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q torch numpy
  fi
  python="$venv/bin/python"
elif /usr/bin/python3 -c "import torch" 2> /dev/null; then
  python=/usr/bin/python3
fi
if [ -n "$python" ]; then
  echo "5/5 PyTorch baselines ($python)"
  quick_arg=()
  [ $quick -eq 1 ] && quick_arg=(--quick)
  "$python" "$root/tools/torch_bench.py" "$out/torch.json" "${quick_arg[@]}"
else
  echo "5/5 PyTorch baselines: skipped (no importable torch; --with-torch installs one)"
fi

/usr/bin/python3 "$root/tools/report.py" "$out"
echo "report: $out/report.md ($(($(date +%s) - start))s)"

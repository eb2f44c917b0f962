#!/usr/bin/env bash
# The main job: installs what is missing, builds Release, runs the sweep over sequence lengths
# (our kernel, the machine's limits, the baselines), measures peak memory per T and writes
# reports/<date>-<host>/report.md with its plots (raw results beside it; --quick writes to
# reports/<date>-<host>-quick/, so that it never replaces a full report of the same day).
# Usage: tools/report.sh [--quick] [--with-torch] [--with-peers]
#   --quick       a few sizes, under two minutes
#   --with-torch  measures PyTorch's scaled_dot_product_attention too, in the project's Python
#                 environment (tools/python-env.sh: PyPI's torch in build-py-venv/, once); without
#                 it PyTorch is measured only when /usr/bin/python3 can already import torch
#   --with-peers  (implies --with-torch) also OpenVINO's SDPA, ONNX Runtime's GroupQueryAttention
#                 (PyPI's openvino, onnxruntime, onnx, into the same environment) and llama.cpp's
#                 ggml flash attention, built from the ggml sources inside PyPI's llama-cpp-python
#                 sdist (pip download --no-binary; nothing vendored here)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
quick=0
with_torch=0
with_peers=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    --with-torch) with_torch=1 ;;
    --with-peers) with_peers=1 with_torch=1 ;;
    *) echo "usage: $0 [--quick] [--with-torch] [--with-peers]" >&2; exit 2 ;;
  esac
done
"$root/tools/install-deps.sh" --report
build="$root/build-release"
# The peers' Python packages and ggml's sources (llama.cpp's ggml/ inside PyPI's llama-cpp-python
# sdist, a pinned version), fetched once; a peer that fails here is reported as skipped.
ggml_source=""
python=""
if [ $with_peers -eq 1 ]; then
  python=$("$root/tools/python-env.sh" openvino onnxruntime onnx) || python=""
  peers_src="$root/build-peers-src"
  ggml_version=0.3.36
  if [ ! -d "$peers_src/llama_cpp_python-$ggml_version/vendor/llama.cpp/ggml" ] && [ -n "$python" ]; then
    mkdir -p "$peers_src"
    "$python" -m pip download -q --disable-pip-version-check --no-binary :all: --no-deps \
      "llama-cpp-python==$ggml_version" -d "$peers_src" &&
      tar xzf "$peers_src/llama_cpp_python-$ggml_version.tar.gz" -C "$peers_src" \
        "llama_cpp_python-$ggml_version/vendor/llama.cpp/ggml" || echo "ggml sources: not fetched"
  fi
  [ -d "$peers_src/llama_cpp_python-$ggml_version/vendor/llama.cpp/ggml" ] &&
    ggml_source="$peers_src/llama_cpp_python-$ggml_version/vendor/llama.cpp/ggml"
fi
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCAUSALATTN_BUILD_TESTS=OFF -DCAUSALATTN_BUILD_BENCH=ON \
  -DCAUSALATTN_GGML_SOURCE="$ggml_source" > /dev/null
cmake --build "$build" -j "$(nproc)" > /dev/null
if [ -n "$ggml_source" ]; then
  # (ggml's own warnings go to the log, not the console.)
  cmake --build "$build" -j "$(nproc)" --target causalattn_ggml_attention > "$build/ggml-build.log" 2>&1 ||
    echo "ggml: build failed ($build/ggml-build.log); reported as skipped"
fi
out="$root/reports/$(date +%Y-%m-%d)-$(hostname -s)"
if [ $quick -eq 1 ]; then out="$out-quick"; fi
mkdir -p "$out"
rm -f "$out/torch.json" "$out/memory.jsonl" "$out/mpi.jsonl" "$out/peers.json"

filter='.*'
min_time=0.2
memory_lens=(128 256 512 1024 2048 4096 8192 16384)
if [ $quick -eq 1 ]; then
  filter='BM_Peak(Fma|DotBf16|AmxBf16)|BM_ReadBandwidth/threads:1/|BM_Attention/T:(256|1024)/|BM_TextbookBlas/T:(256|1024)/|BM_Reference/T:256/|BM_Decode/Tk:(512|8192)/batch:1/threads:1/|BM_Decode/Tk:32768/batch:1/threads:1/kv_dtype:0/|BM_Linear(Blas|Bf16)?/M:4096/.*threads:1/|BM_Gpt2Layer(Bf16)?/T:256/|BM_PrefillDtypes/.*/threads:1/|BM_PackedBatch/.*/threads:1/|BM_Variants/.*/threads:1/|BM_HeadDimV/.*/threads:1/'
  min_time=0.05
  memory_lens=(256 1024)
fi
start=$(date +%s)
total=$("$build/bench/causalattn_bench" --benchmark_list_tests --benchmark_filter="$filter" | wc -l)
echo "1/6 benchmark sweep: $total cases (raw JSON: $out/bench.json)"
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
  echo "2/6 headline cases again, interleaved: 3 passes of $("$build/bench/causalattn_bench" \
    --benchmark_list_tests --benchmark_filter="$headline" | wc -l) cases (raw JSON: $out/headline-*.json)"
  for pass in 1 2 3; do
    "$build/bench/causalattn_bench" --benchmark_filter="$headline" --benchmark_min_time=0.05 \
      --benchmark_enable_random_interleaving=true --benchmark_out="$out/headline-$pass.json" \
      --benchmark_out_format=json > /dev/null 2>&1
    echo "[$(($(date +%s) - start))s] headline pass $pass done"
  done
fi

# Peak memory: one process per (method, T), since a process's peak only grows.
echo "3/6 peak memory, D=128, H=8, all threads: ${#memory_lens[@]} lengths × 2 methods"
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
  echo "4/6 scale-out over MPI: 2 ranks, ring T=$mpi_tokens (zigzag, contiguous), decode Tk=$decode_len"
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
  echo "4/6 scale-out over MPI: skipped (no causalattn_mpi_bench or mpirun: tools/install-deps.sh installs Open MPI)"
fi

if [ $with_torch -eq 1 ] && [ -z "$python" ]; then
  python=$("$root/tools/python-env.sh")
elif [ $with_torch -eq 0 ] && /usr/bin/python3 -c "import torch" 2> /dev/null; then
  python=/usr/bin/python3
fi
quick_arg=()
[ $quick -eq 1 ] && quick_arg=(--quick)
if [ -n "$python" ]; then
  echo "5/6 PyTorch baselines ($python)"
  "$python" "$root/tools/torch_bench.py" "$out/torch.json" "${quick_arg[@]}"
else
  echo "5/6 PyTorch baselines: skipped (no importable torch; --with-torch installs one)"
fi
if [ $with_peers -eq 1 ] && [ -n "$python" ]; then
  echo "6/6 peers: OpenVINO, ONNX Runtime, ggml (each checked against the reference first)"
  "$python" "$root/tools/peers_bench.py" "$out/peers.json" --bench "$build/bench/causalattn_bench" \
    --ggml "$build/bench/causalattn_ggml_attention" "${quick_arg[@]}"
else
  echo "6/6 peers: skipped (--with-peers measures them)"
fi

/usr/bin/python3 "$root/tools/report.py" "$out"
echo "report: $out/report.md ($(($(date +%s) - start))s)"

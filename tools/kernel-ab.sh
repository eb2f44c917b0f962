#!/usr/bin/env bash
# Paired A/B of the f32 attention kernel of one ISA row between git revisions and/or the working
# tree, in one process: each version's lib/ is compiled into a shared object of its own and
# bench/kernel_ab/kernel_ab.cpp runs them alternately, trial by trial, on the same inputs. On a
# shared, noisy machine the median speed ratio it prints is far steadier than separate runs.
# Usage: tools/kernel-ab.sh [--isa avx512|avx2|sse2] [--d D] [--t T] [--non-causal] [--trials N] VERSION...
#   --isa     the row whose kernel is compared (default avx512; avx2 on a CPU without AVX-512)
#   VERSION: a git revision, WORKTREE for the working tree, or a directory that holds a lib/
#   (an experiment's copy). Example:
#   tools/kernel-ab.sh --d 64 HEAD WORKTREE
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
isa=avx512 d=128 t=4096 causal=1 trials=10
versions=()
while [ $# -gt 0 ]; do
  case "$1" in
    --isa) isa=$2; shift 2 ;;
    --d) d=$2; shift 2 ;;
    --t) t=$2; shift 2 ;;
    --non-causal) causal=0; shift ;;
    --trials) trials=$2; shift 2 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) versions+=("$1"); shift ;;
  esac
done
[ ${#versions[@]} -ge 1 ] || { echo "usage: $0 [--isa avx512|avx2|sse2] [--d D] [--t T] [--non-causal] [--trials N] VERSION..." >&2; exit 2; }
# The CPU features each row's kernel needs (its CPU_CHECK in cmake/isas.cmake), as /proc/cpuinfo names them.
case "$isa" in
  avx512) needed="avx512f avx512cd avx512dq avx512bw avx512vl fma f16c" ;;
  avx2) needed="avx2 fma f16c" ;;
  sse2) needed="sse2" ;;
  *) echo "--isa $isa: kernel-ab compares the f32 kernel of avx512, avx2 or sse2" >&2; exit 2 ;;
esac
for feature in $needed; do
  grep -qw "$feature" /proc/cpuinfo || { echo "the $isa kernel needs $feature, which this CPU lacks" >&2; exit 1; }
done
"$root/tools/install-deps.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The row's flags and definitions, from the ISA table (cmake/isas.cmake), as lib/CMakeLists.txt uses them.
mapfile -t isa_flags < <(cmake -DISA="$isa" -P "$root/cmake/print-isa-flags.cmake")
flags=(-std=c++20 -O3 -DNDEBUG "${isa_flags[@]}" -ffp-contract=off -Wno-uninitialized -Wno-maybe-uninitialized)
libraries=()
for version in "${versions[@]}"; do
  name=$(printf '%s' "$version" | tr -c 'A-Za-z0-9._-' _)
  mkdir -p "$work/$name"
  if [ "$version" = WORKTREE ]; then
    cp -r "$root/lib" "$work/$name/"
  elif [ -d "$version/lib" ]; then
    cp -r "$version/lib" "$work/$name/"
  else
    git -C "$root" archive "$version" lib | tar -x -C "$work/$name"
  fi
  # The driver fills the kernel's RowBlockArgs itself: every version must agree on it.
  if ! cmp -s "$work/$name/lib/kernels/kernel_table.hpp" "$root/lib/kernels/kernel_table.hpp"; then
    echo "$version: lib/kernels/kernel_table.hpp differs from the working tree's (or is missing: before the ISA table it was row_block.hpp), so the driver cannot call it" >&2
    exit 1
  fi
  g++ "${flags[@]}" -fPIC -shared -fvisibility=hidden -fvisibility-inlines-hidden -I"$work/$name/lib" \
    -I"$root/include" "$root/bench/kernel_ab/kernel_variant.cpp" -o "$work/$name.so"
  libraries+=("$work/$name.so")
done
g++ "${flags[@]}" -c -I"$root/lib" -I"$root/include" -I"$root/bench" -DCAUSALATTN_PEAK_LOOP="peak_loop__$isa" \
  "$root/bench/peak_fma_of_isa.cpp" -o "$work/peak_fma_$isa.o"
g++ -std=c++20 -O2 -I"$root/lib" -I"$root/include" -I"$root/bench" -DCAUSALATTN_PEAK_LOOP="peak_loop__$isa" \
  "$root/bench/kernel_ab/kernel_ab.cpp" "$work/peak_fma_$isa.o" -o "$work/kernel_ab" -ldl
"$work/kernel_ab" "$d" "$t" "$causal" "$trials" "${libraries[@]}"

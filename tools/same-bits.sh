#!/usr/bin/env bash
# Same bits between two versions of the library: builds each (a git revision, or WORKTREE for the
# working tree) in Release, runs bench/same_bits/hash_outputs.cpp (the working tree's, so both
# sides make the same calls) against each, and compares the hashes of out and LSE for every call
# on every ISA this CPU runs. Exits non-zero, listing the calls that differ, when any does.
# Usage: tools/same-bits.sh [--cases N] VERSION_A VERSION_B   (default 1000 calls per ISA)
#   tools/same-bits.sh HEAD WORKTREE
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cases=1000
if [ "${1:-}" = "--cases" ]; then cases=$2; shift 2; fi
[ $# -eq 2 ] || { echo "usage: $0 [--cases N] VERSION_A VERSION_B" >&2; exit 2; }
"$root/tools/install-deps.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"; git -C "$root" worktree prune' EXIT
for side in a b; do
  version=$1
  shift
  if [ "$version" = WORKTREE ]; then
    source_dir=$root
  else
    source_dir="$work/src-$side"
    git -C "$root" worktree add -q --detach "$source_dir" "$version"
  fi
  cmake -S "$source_dir" -B "$work/build-$side" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DCAUSALATTN_BUILD_TESTS=OFF \
    -DCAUSALATTN_BUILD_BENCH=OFF > /dev/null
  cmake --build "$work/build-$side" -j "$(nproc)" --target causalattn > /dev/null
  library=$(find "$work/build-$side" -name 'libcausalattn.so*' -type f | head -n 1)
  g++ -std=c++20 -O2 -I"$source_dir/include" "$root/bench/same_bits/hash_outputs.cpp" "$library" \
    -Wl,-rpath,"$(dirname "$library")" -o "$work/hash-$side"
  "$work/hash-$side" "$cases" > "$work/hashes-$side.txt"
  [ "$version" = WORKTREE ] || git -C "$root" worktree remove --force "$source_dir"
done
grep skipped "$work/hashes-a.txt" || true
calls=$(grep -vc skipped "$work/hashes-a.txt")
if cmp -s "$work/hashes-a.txt" "$work/hashes-b.txt"; then
  echo "same bits: $calls calls (out and LSE hashed), identical"
else
  echo "different bits:"
  diff "$work/hashes-a.txt" "$work/hashes-b.txt" | head -n 40
  exit 1
fi

#!/usr/bin/env bash
# Fails when two per-ISA object files define the same symbol. The linker keeps one copy of a
# weak (inline or template) symbol; if it keeps the AVX-512 copy, a CPU without AVX-512 dies with
# SIGILL on code that was meant to be the SSE2 or AVX2 path.
# Usage: tools/check-isa-symbols.sh OBJECT...
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 OBJECT OBJECT..." >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
i=0
for object in "$@"; do
  # Defined code and data symbols (T/t text, W/w weak, V/v weak objects, D/d/B/b/R/r data, u unique).
  # DW.ref.__gxx_personality_v0 is a pointer to the C++ unwinder's routine, no code: skip it.
  nm --defined-only "$object" | awk '$2 ~ /^[TWVDBRuwvi]$/ && $3 !~ /^DW\.ref\./ {print $3}' | sort -u > "$tmp/$i"
  i=$((i + 1))
done
shared=$(cat "$tmp"/* | sort | uniq -d)
if [ -n "$shared" ]; then
  echo "symbols defined in more than one per-ISA object:"
  echo "$shared" | c++filt | head -50
  exit 1
fi
echo "$# per-ISA objects, no shared symbols"

#!/usr/bin/env bash
# Installs the Debian packages causalattn needs, only those missing; quiet when all are there.
# Usage: tools/install-deps.sh [--report | --python | --sanitize]
#   --report    adds what tools/report.sh needs; --python what tools/python-env.sh needs;
#   --sanitize  what tools/test.sh --sanitize and tools/fuzz.sh need
set -euo pipefail
packages=(cmake make g++ binutils libxsimd-dev xtl-dev libtbb-dev libbenchmark-dev libgtest-dev libgmock-dev
  nlohmann-json3-dev
  # Open MPI for the optional causalattn::mpi and its tests under mpirun (the core never needs it).
  libopenmpi-dev openmpi-bin)
case "${1:-}" in
  # OpenBLAS for the textbook baseline (bench only), matplotlib for the plots.
  --report) packages+=(libopenblas-dev python3-matplotlib) ;;
  # A virtual environment for PyPI's packages (tools/python-env.sh).
  --python) packages=(python3-venv python3-pip) ;;
  # clang for ThreadSanitizer with an ignorelist and for libFuzzer; its runtimes.
  --sanitize) packages+=(clang-14 libclang-rt-14-dev) ;;
  "") ;;
  *) echo "usage: $0 [--report | --python | --sanitize]" >&2; exit 2 ;;
esac
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null

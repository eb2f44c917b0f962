#!/usr/bin/env bash
# Installs the Debian packages causalattn needs, only those missing; quiet when all are there.
# Usage: tools/install-deps.sh [--report | --python | --sanitize | --aarch64]
#   --report    adds what tools/report.sh needs; --python what tools/python-env.sh needs;
#   --sanitize  what tools/test.sh --sanitize and tools/fuzz.sh need;
#   --aarch64   what tools/test.sh --aarch64 needs: the cross compiler, qemu-user, and the arm64
#               packages of the dependencies beside the host's (Debian multiarch)
set -euo pipefail
packages=(cmake make g++ binutils libxsimd-dev xtl-dev libtbb-dev libbenchmark-dev libgtest-dev libgmock-dev
  nlohmann-json3-dev
  # ccache: the build trees of tools/test.sh, tools/report.sh and the Python package compile the
  # same sources with the same flags; each after the first takes the objects from the cache.
  ccache
  # Open MPI for the optional causalattn::mpi and its tests under mpirun (the core never needs it).
  libopenmpi-dev openmpi-bin)
case "${1:-}" in
  # OpenBLAS for the textbook baseline (bench only), matplotlib for the plots.
  --report) packages+=(libopenblas-dev python3-matplotlib) ;;
  # A virtual environment for PyPI's packages (tools/python-env.sh).
  --python) packages=(python3-venv python3-pip) ;;
  # clang for ThreadSanitizer with an ignorelist and for libFuzzer; its runtimes.
  --sanitize) packages+=(clang-14 libclang-rt-14-dev) ;;
  # No Open MPI for arm64: the cross build is the core library, its tests and its benchmarks.
  --aarch64) packages=(cmake make ccache xtl-dev nlohmann-json3-dev g++-aarch64-linux-gnu qemu-user libxsimd-dev:arm64
    libtbb-dev:arm64 libbenchmark-dev:arm64 libgtest-dev:arm64 libgmock-dev:arm64) ;;
  "") ;;
  *) echo "usage: $0 [--report | --python | --sanitize | --aarch64]" >&2; exit 2 ;;
esac
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
if [ "${1:-}" = --aarch64 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $sudo dpkg --add-architecture arm64
fi
missing=()
# Installed for this machine's architecture (or for all): with arm64 packages beside (--aarch64),
# a bare name also matches the arm64 copy.
native=$(dpkg --print-architecture)
installed() {
  case "$1" in
    *:*) dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q "install ok installed" ;;
    *) dpkg-query -W -f='${Status} ${Architecture}\n' "$1" 2>/dev/null | grep -qE "install ok installed ($native|all)$" ;;
  esac
}
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null

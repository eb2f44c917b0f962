#!/usr/bin/env bash
# Installs a configured build into a fresh prefix and builds a C++ and a C99 consumer against it
# with find_package(causalattn CONFIG REQUIRED), then runs both.
# Usage: tools/check-install.sh BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR
set -euo pipefail
build=$1 consumer=$2 work=$3
rm -rf "$work"
cmake --install "$build" --prefix "$work/prefix" > /dev/null
cmake -S "$consumer" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$work/build" > /dev/null
"$work/build/consumer_cpp"
"$work/build/consumer_c"
if [ -x "$work/build/consumer_mpi" ]; then
  "$work/build/consumer_mpi"
fi

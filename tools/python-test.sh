#!/usr/bin/env bash
# The Python package's tests: a virtual environment (build-py-venv/) with PyPI's nanobind,
# scikit-build-core, numpy, pytest and torch, the package built from this tree by pip install . (its
# CMake build kept in build-py/ between runs), then pytest over python/tests.
# Usage: tools/python-test.sh [pytest args]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/install-deps.sh"
venv="$root/build-py-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# torch (CPU use only; the wheel is large, about 5 GB installed, 1-2 minutes once) for the tests
# that check against PyTorch's own code: the model families' variants, the custom op and the SDPA
# drop-in, bfloat16 arrays.
"$venv/bin/python" -m pip install -q --disable-pip-version-check nanobind scikit-build-core numpy pytest torch
# The book's models (chapters 3 and 4) for the GPT example's test; they import torch alone, so
# without the notebooks' dependencies.
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps llms-from-scratch
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation \
  --config-settings=build-dir="$root/build-py" "$root"
cd "$root/python/tests"
"$venv/bin/python" -m pytest -q "$@"

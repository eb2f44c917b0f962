#!/usr/bin/env bash
# The project's Python environment, build-py-venv/: PyPI's nanobind, scikit-build-core, numpy,
# pytest and torch, the book's models, and this tree's package built by pip install . (its CMake
# build kept in build-py/ between runs). Installs only what is missing; prints the python's path.
# Usage: tools/python-env.sh [extra PyPI packages]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/install-deps.sh" >&2
"$root/tools/install-deps.sh" --python >&2
venv="$root/build-py-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
# torch (CPU use only; the wheel is large, about 5 GB installed, 1-2 minutes once) for the tests
# that check against PyTorch's own code (the model families' variants, the custom op and the SDPA
# drop-in, bfloat16 arrays) and for the report's PyTorch baselines.
"${pip[@]}" nanobind scikit-build-core numpy pytest torch "$@" >&2
# The book's models (chapters 3 and 4) for the GPT example's test; they import torch alone, so
# without the notebooks' dependencies.
"${pip[@]}" --no-deps llms-from-scratch >&2
"${pip[@]}" --no-build-isolation --config-settings=build-dir="$root/build-py" "$root" >&2
echo "$venv/bin/python"

#!/usr/bin/env bash
# The Python package's tests: pytest over python/tests in the project's Python environment
# (tools/python-env.sh: build-py-venv/ with the package built from this tree, numpy, torch).
# Usage: tools/python-test.sh [pytest args]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=$("$root/tools/python-env.sh")
cd "$root/python/tests"
"$python" -m pytest -q "$@"

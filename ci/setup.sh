# Sourced by ci/main and ci/test: make .venv hold this project, installed with the
# exact versions of ci/constraints.txt. Reinstalls only when those inputs change.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "error: Python >= 3.10 is needed (found: $("$PYTHON" --version 2>&1 || echo none))" >&2
    echo "tip: install python3 (and python3-venv), or set PYTHON=/path/to/python3" >&2
    exit 2
fi

stamp_inputs() { cat pyproject.toml ci/constraints.txt; "$PYTHON" --version; }
wanted="$(stamp_inputs | sha256sum | cut -d' ' -f1)"
if [[ ! -x .venv/bin/python || "$(cat .venv/.llmsys-stamp 2>/dev/null)" != "$wanted" ]]; then
    echo "setting up .venv (Python packages from ci/constraints.txt) ..."
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check \
        -c ci/constraints.txt -e '.[dev,torch,assignments]'
    echo "$wanted" > .venv/.llmsys-stamp
fi
export PATH="$PWD/.venv/bin:$PATH"

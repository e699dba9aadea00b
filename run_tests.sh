#!/usr/bin/env bash
# Run the test suite on a fresh machine with only Python 3.11:
# creates .venv (once), installs requirements.txt into it, runs pytest.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
exec .venv/bin/python -m pytest "$@"

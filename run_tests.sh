#!/usr/bin/env bash
# Run the test suite on a fresh machine with only Python 3.11:
# creates .venv (once), installs requirements.txt into it, runs pytest with
# TEST_WORKERS processes (default 4: most tests wait on services they started, so
# four share two cores well; TEST_WORKERS=0 runs them one at a time).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-4}" "$@"

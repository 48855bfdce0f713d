#!/usr/bin/env bash
# Creates the Python virtual environment the archive tests read with
# (DuckDB, pyarrow, pandas; pinned in requirements.txt), once.
#   tests/python/setup.sh [VENV_DIR]   default: target/python
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/target/python}"
exec "$root/plugins/venv.sh" "$here/requirements.txt" "$venv"

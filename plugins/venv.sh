#!/usr/bin/env bash
# Creates (once) a Python virtual environment with the pinned packages of a
# requirements file, for the tools plugins in other languages are built
# with (componentize-py, ziglang). Recreated when the file changes.
#   plugins/venv.sh REQUIREMENTS VENV_DIR
set -euo pipefail
req="$1"
venv="$2"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"

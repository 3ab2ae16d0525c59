#!/usr/bin/env bash
# Creates the isolated benchmark venv (.venv-bench) holding browser-use, kept
# apart from the main venv so its pinned deps never leak into corral's.
# Idempotent; the last line of stdout is the venv's python path. pip runs
# with -qq because this machine's pip config warns once per missing index dir.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${repo_root}/.venv-bench"
py="${venv}/bin/python"

if [[ ! -x "${py}" ]]; then
    base="${PYTHON:-python3}"  # browser-use 0.13 requires Python >= 3.11
    if ! "${base}" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "bench_env.sh: ${base} is older than 3.11; set PYTHON=python3.11 or newer" >&2
        exit 1
    fi
    "${base}" -m venv "${venv}" >&2
fi

# Fast path: skip pip entirely when the right version already imports.
if ! "${py}" - >/dev/null 2>&1 <<'PY'
import importlib.metadata as md
import psutil, browser_use  # noqa: F401
assert md.version("browser-use").startswith("0.13.")
PY
then
    "${py}" -m pip install -qq 'browser-use==0.13.*' psutil >&2
fi

echo "${py}"

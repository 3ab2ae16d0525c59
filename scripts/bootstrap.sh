#!/usr/bin/env bash
# Shared set-up for scripts/demo and scripts/test: a virtualenv with corral installed, and a
# Chromium to drive. Idempotent and quick when everything is already in place.
# Sourced, not executed: it sets ROOT and PY for the caller.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CORRAL_VENV:-$ROOT/.venv}"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
is_root() { [ "$(id -u)" = 0 ]; }

apt_install() {
    if is_root && command -v apt-get >/dev/null 2>&1; then
        say "installing Debian packages: $*"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
    else
        say "missing: $*. Install it, e.g.: sudo apt-get install $*"
        exit 1
    fi
}

find_python() {
    for cand in python3.13 python3.12 python3.11 python3; do
        if command -v "$cand" >/dev/null 2>&1 &&
            "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$cand"
            return 0
        fi
    done
    return 1
}

# --- Python and the virtualenv ------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    BASE_PY="$(find_python || true)"
    if [ -z "$BASE_PY" ]; then
        apt_install python3 python3-venv
        BASE_PY="$(find_python)" || { say "Python >= 3.11 is required"; exit 1; }
    fi
    say "creating virtualenv $VENV with $BASE_PY"
    rm -rf "$VENV"
    if ! "$BASE_PY" -m venv "$VENV" 2>/dev/null; then
        apt_install python3-venv
        "$BASE_PY" -m venv "$VENV"
    fi
fi
PY="$VENV/bin/python"

# Reinstall only when the project's dependencies changed.
STAMP="$VENV/.corral-installed"
WANT="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
# The import check runs from / so the checkout itself cannot hide a stale editable install.
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ] ||
    ! (cd / && "$PY" -c 'import runtime, profiles, tools, policies; assert policies.__file__') 2>/dev/null; then
    say "installing corral and its dependencies into $VENV"
    "$PY" -m pip install -q --disable-pip-version-check --upgrade pip >&2 2>/dev/null || true
    "$PY" -m pip install -q --disable-pip-version-check -e "$ROOT[dev]" >&2
    echo "$WANT" > "$STAMP"
fi

# The MiniWoB++ eval suite (corral eval miniwob) uses the package's HTML only: no dependencies.
if ! "$PY" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("miniwob") is None)'; then
    say "installing miniwob 1.1.0 (its HTML, for the MiniWoB++ eval suite)"
    "$PY" -m pip install -q --disable-pip-version-check --no-deps miniwob==1.1.0 >&2
fi

# --- A Chromium: CORRAL_BROWSER, else Playwright's own, else the system's, else apt ----------
find_browser() {
    if [ -n "${CORRAL_BROWSER:-}" ]; then
        command -v "$CORRAL_BROWSER" 2>/dev/null || { [ -x "$CORRAL_BROWSER" ] && echo "$CORRAL_BROWSER"; }
        return
    fi
    local managed
    managed="$("$PY" - <<'PYEOF' 2>/dev/null || true
from playwright.sync_api import sync_playwright
with sync_playwright() as p:
    print(p.chromium.executable_path)
PYEOF
)"
    if [ -n "$managed" ] && [ -x "$managed" ]; then echo "$managed"; return; fi
    for name in chromium chromium-browser google-chrome google-chrome-stable; do
        if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
    done
}

BROWSER="$(find_browser || true)"
if [ -z "$BROWSER" ]; then
    if [ -n "${CORRAL_BROWSER:-}" ]; then
        say "CORRAL_BROWSER=$CORRAL_BROWSER is not an executable"
        exit 1
    fi
    # `playwright install` cannot download here; Debian's chromium works with Playwright.
    apt_install chromium
    BROWSER="$(find_browser || true)"
    [ -n "$BROWSER" ] || { say "chromium was installed but not found on PATH"; exit 1; }
fi
say "browser: $BROWSER"
export CORRAL_BROWSER="$BROWSER"

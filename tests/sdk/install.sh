#!/usr/bin/env bash
# Installs the official LeanCloud SDKs that tests/test_sdk_compat.py drives:
#   * the Python SDK (PyPI leancloud==3.0.2) into <repo>/.venv-sdk, a virtualenv
#     of its own because it pins old requests/urllib3/Werkzeug;
#   * the JS SDK (npm leancloud-storage 4.15.2) into tests/sdk/js/node_modules,
#     exactly as locked in tests/sdk/js/package-lock.json.
# Idempotent and quiet; exits non-zero when either install fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.venv-sdk"
py_version="3.0.2"
js_dir="$here/js"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

fail() {
    echo "tests/sdk/install.sh: $1" >&2
    cat "$log" >&2
    exit 1
}

# --- Python SDK --------------------------------------------------------------
if ! "$venv/bin/python" -c "import leancloud, importlib.metadata as m; \
assert m.version('leancloud') == '$py_version'" >/dev/null 2>&1; then
    if [ ! -x "$venv/bin/python" ]; then
        python=""
        for candidate in python3.11 python3; do
            if command -v "$candidate" >/dev/null 2>&1; then
                python="$candidate"
                break
            fi
        done
        [ -n "$python" ] || fail "no python3.11 or python3 found"
        "$python" -m venv "$venv" >"$log" 2>&1 || fail "could not create $venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "leancloud==$py_version" >"$log" 2>&1 || fail "pip install leancloud==$py_version failed"
fi

# --- JS SDK ------------------------------------------------------------------
command -v npm >/dev/null 2>&1 || fail "npm not found (Node.js 18+ is needed)"
installed="$js_dir/node_modules/leancloud-storage/package.json"
stamp="$js_dir/node_modules/.package-lock.json"  # written by npm on install
if [ ! -f "$installed" ] || [ ! -f "$stamp" ] || [ "$js_dir/package-lock.json" -nt "$stamp" ] \
    || ! grep -q '"version": "4.15.2"' "$installed"; then
    (cd "$js_dir" && npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1 \
        || fail "npm ci in tests/sdk/js failed"
fi

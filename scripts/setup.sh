#!/usr/bin/env bash
# Set up everything Hotline needs on a fresh Debian 12 machine. Idempotent: a second run only
# checks. Called by scripts/up.sh and scripts/test.sh, so a newcomer never runs it by hand.
#
#   1. Debian packages: mmdebstrap (builds the switch), sip-tester (SIPp), espeak-ng (Chinese
#      prompts), ffmpeg + sox (audio), graphviz + fonts-noto-cjk (IVR flow pictures).
#   2. A Python virtualenv in .venv with the pinned dependencies (constraints.txt).
#   3. The switch: Asterisk 22 in a chroot (scripts/install_switch.sh).
#   4. The database schema (hotline db upgrade).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

say() { echo "setup: $*"; }
die() { echo "setup: $*" >&2; exit 1; }

debs="mmdebstrap sip-tester espeak-ng ffmpeg sox graphviz fonts-noto-cjk"
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

scripts/install_switch.sh

.venv/bin/hotline db upgrade >/dev/null
say "ready"

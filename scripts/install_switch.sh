#!/usr/bin/env bash
# Build the switch: Asterisk 22 from Debian's packages, in a sid chroot made by mmdebstrap.
#
# Why a chroot: Debian 12 has no asterisk package, and installing sid's on the host would
# replace libc, systemd and python3 (see docs/decisions/0001-switch-in-a-chroot.md).
#
# Usage: scripts/install_switch.sh [CHROOT_DIR]
#   CHROOT_DIR defaults to $HOTLINE_SWITCH__ROOT or var/switch/root under the project.
# Idempotent: a chroot that already holds a working Asterisk 22 is left alone.
# Every failure ends with one line that says what went wrong and what to do.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
root=${1:-${HOTLINE_SWITCH__ROOT:-$here/var/switch/root}}
want_major=22
packages="asterisk,asterisk-core-sounds-en-wav,asterisk-moh-opsound-wav"

die() { echo "install_switch: $*" >&2; exit 1; }

asterisk_version() {
    # Prints e.g. "22.10.1" or nothing.
    chroot "$root" asterisk -V 2>/dev/null | sed -n 's/^Asterisk \([0-9][0-9.]*\).*/\1/p'
}

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap and chroot); run it with sudo or as root."

if [ -x "$root/usr/sbin/asterisk" ]; then
    have=$(asterisk_version || true)
    if [ "${have%%.*}" = "$want_major" ]; then
        echo "install_switch: Asterisk $have already in $root"
        exit 0
    fi
    die "$root holds Asterisk '${have:-unknown}', not $want_major.x; remove that folder and run again."
fi

command -v mmdebstrap >/dev/null || {
    echo "install_switch: installing mmdebstrap from Debian"
    apt-get install -y -t bookworm mmdebstrap >/dev/null 2>&1 \
        || { apt-get update >/dev/null 2>&1 && apt-get install -y -t bookworm mmdebstrap >/dev/null 2>&1; } \
        || die "cannot install mmdebstrap (apt-get failed): check the network to the Debian mirror."
}

# The mirror the host's apt already uses (deb822 or one-line sources).
mirror=${HOTLINE_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
    mirror=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | awk '{print $2}' | grep -E '/debian/?$' | head -n 1 || true)
fi
if [ -z "$mirror" ]; then
    mirror=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
        | awk '{print $2}' | grep -E '/debian/?$' | head -n 1 || true)
fi
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt; set HOTLINE_DEBIAN_MIRROR=http://…/debian and run again."

parent=$(dirname "$root")
mkdir -p "$parent"
free_kb=$(df -Pk "$parent" | awk 'NR==2 {print $4}')
[ "${free_kb:-0}" -ge 1048576 ] || die "less than 1 GB free under $parent (the switch needs ~400 MB); free some disk and run again."

# Build into a temporary folder and move it in place only when it works, so that an
# interrupted build never leaves a half chroot that looks installed.
tmp="$root.partial"
rm -rf "$tmp"
echo "install_switch: building Debian sid + Asterisk in $root from $mirror (about 30 s)…"
log="$parent/install_switch.log"
if ! mmdebstrap --variant=minbase \
        --aptopt='Acquire::Check-Valid-Until "false"' \
        --include="$packages" \
        sid "$tmp" "$mirror" >"$log" 2>&1; then
    rm -rf "$tmp"
    if grep -qiE 'No space left' "$log"; then
        die "disk full while building the chroot (see $log); free some disk and run again."
    fi
    if grep -qiE 'could not resolve|failed to fetch|connection failed|unable to connect|temporary failure' "$log"; then
        die "cannot reach the Debian mirror $mirror (see $log); check the network and run again."
    fi
    die "mmdebstrap failed (see the last lines of $log)."
fi
mv "$tmp" "$root"
have=$(asterisk_version || true)
[ "${have%%.*}" = "$want_major" ] || die "the chroot holds Asterisk '${have:-none}', expected $want_major.x (see $log)."
echo "install_switch: Asterisk $have installed in $root"

#!/usr/bin/env bash
# Set everything up (idempotent) and run the contact center: switch + controller + health page
# on the embedded defaults (SQLite, local Asterisk). Ctrl-C (or 'hotline down') stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/hotline up "$@"

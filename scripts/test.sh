#!/usr/bin/env bash
# Set everything up (idempotent) and run the whole test suite: lint, types, then the tests,
# including the real-call ones (two real Asterisk instances, SIPp, SQLite and PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# PostgreSQL is part of the suite (data-layer tests run on both databases); start it if it is
# installed but stopped, as CI machines have it.
if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
fi
echo "test: ruff"
.venv/bin/ruff check cc_core tests scripts
.venv/bin/ruff format --check cc_core tests scripts
echo "test: mypy"
.venv/bin/mypy
# Import contracts (.importlinter, issue 12 item 5): switch imports no domain, domains no web,
# the pure cores no I/O.
echo "test: import contracts"
.venv/bin/lint-imports --no-cache
echo "test: pytest"
exec .venv/bin/pytest -q -p no:cacheprovider "$@"

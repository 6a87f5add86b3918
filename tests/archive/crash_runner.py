"""Runs one archive job in its own process and kills that process (SIGKILL, as ``kill -9``) right
after a chosen step: the crash-injection half of tests/archive/test_crash.py.

    python -m tests.archive.crash_runner --db URL --store DIR --backup DIR --root DIR \
        --job archive --crash-at renamed --occurrence 2 --journal FILE --now 2026-05-03T04:00:00+00:00

Every step the job reports (``checkpoint(point, id)``) is appended to the journal, synced, before
the kill: the test reads which steps really happened — e.g. that each original was removed once.
"""

from __future__ import annotations

import argparse
import os
import signal
from datetime import datetime
from pathlib import Path

from cc_core.archive.archiver import archive_recordings
from cc_core.archive.config import ArchiveConfig
from cc_core.archive.retention import purge_expired
from cc_core.db.session import make_engine, make_sessionmaker
from cc_core.switch.instance import Instance


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--backup", type=Path)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--instance", default="test")
    parser.add_argument("--job", choices=("archive", "purge"), default="archive")
    parser.add_argument("--crash-at", default="")
    parser.add_argument("--occurrence", type=int, default=1)
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--now", type=datetime.fromisoformat, required=True)
    parser.add_argument("--retention-days", type=int, default=1825)
    args = parser.parse_args()

    seen = 0

    def checkpoint(point: str, item: int) -> None:
        nonlocal seen
        fd = os.open(args.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{point} {item}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        if point == args.crash_at:
            seen += 1
            if seen == args.occurrence:
                os.kill(os.getpid(), signal.SIGKILL)

    engine = make_engine(args.db)
    sessions = make_sessionmaker(engine)
    config = ArchiveConfig(
        store=args.store,
        backup=args.backup,
        host_path=Instance(args.root, args.instance).host_path,
        retention_days=args.retention_days,
    )
    if args.job == "archive":
        result = archive_recordings(sessions, config, now=args.now, checkpoint=checkpoint)
        print(f"archived {len(result.archived)} failed {len(result.failed)} error {result.error}")
    else:
        purged = purge_expired(sessions, config, now=args.now, checkpoint=checkpoint)
        print(f"purged {len(purged.purged)}")
    engine.dispose()


if __name__ == "__main__":
    main()

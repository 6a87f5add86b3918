"""One archive job at a time, and the record of each job's outcome (``archive_runs``).

Archive, backup, seal, verify and purge all hold an exclusive ``flock`` on the archive folder's
``.archive.lock`` while they work: the scheduled archive job and a ``hotline recordings …`` typed
by hand never interleave, and verify never mistakes a file being written for an orphan. The
kernel releases the lock when its process dies, so a killed job never leaves it stuck.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, Result, select
from sqlalchemy.orm import Session, sessionmaker

from cc_core.archive.config import ArchiveBusy, ArchiveError, one_line
from cc_core.archive.layout import LOCK_NAME
from cc_core.db.models import ArchiveRun

# Findings kept with a run (the full list is in the returned report and the log).
MAX_STORED_FINDINGS = 200
_POLL_S = 0.2


@contextmanager
def archive_lock(store: Path, wait: float = 0.0) -> Iterator[None]:
    """Hold the archive's lock; wait up to ``wait`` seconds for another job, then raise ArchiveBusy."""
    path = store / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ArchiveError(f"cannot open the archive lock {path}: {exc.strerror or one_line(exc)}") from exc
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                    raise ArchiveBusy(
                        f"another archive job is running on {store} (it holds {path}); try again when it ends"
                    ) from exc
                time.sleep(_POLL_S)
        yield
    finally:
        os.close(fd)


class RunClock:
    """A run's moments: its start (given, e.g. a test's simulated "now", or the real time) plus the
    real time elapsed since, so a run's finish always follows its start."""

    def __init__(self, start: datetime | None = None) -> None:
        self.start = start or datetime.now(UTC)
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self._t0)


def changed(result: Result[Any]) -> int:
    """Rows an UPDATE changed."""
    return int(cast("CursorResult[Any]", result).rowcount)


@dataclass(frozen=True)
class RunView:
    """One archive job's outcome, as stored."""

    id: int
    kind: str
    started_at: datetime
    finished_at: datetime
    ok: bool
    counts: dict[str, Any]
    findings: list[dict[str, Any]]
    error: str | None
    chain_head: str | None

    @classmethod
    def from_row(cls, row: ArchiveRun) -> RunView:
        return cls(
            id=row.id,
            kind=row.kind,
            started_at=row.started_at,
            finished_at=row.finished_at,
            ok=row.ok,
            counts=dict(row.counts),
            findings=list(row.findings),
            error=row.error,
            chain_head=row.chain_head,
        )


def record_run(
    sessions: sessionmaker[Session],
    kind: str,
    started_at: datetime,
    finished_at: datetime,
    *,
    ok: bool,
    counts: dict[str, Any],
    findings: list[dict[str, Any]] | None = None,
    error: str | None = None,
    chain_head: str | None = None,
) -> int:
    """Store a job's outcome; returns its id. Findings past MAX_STORED_FINDINGS are counted, not kept."""
    kept = list(findings or [])[:MAX_STORED_FINDINGS]
    with sessions() as session, session.begin():
        row = ArchiveRun(
            kind=kind,
            started_at=started_at,
            finished_at=finished_at,
            ok=ok,
            counts=counts,
            findings=kept,
            error=error,
            chain_head=chain_head,
        )
        session.add(row)
        session.flush()
        return row.id


def last_run(sessions: sessionmaker[Session], kind: str) -> RunView | None:
    """The newest stored run of ``kind`` ("archive", "backup", "seal", "verify", "purge"), or None."""
    with sessions() as session:
        row = session.scalar(
            select(ArchiveRun)
            .where(ArchiveRun.kind == kind)
            .order_by(ArchiveRun.started_at.desc(), ArchiveRun.id.desc())
        )
        return None if row is None else RunView.from_row(row)


def last_verify(sessions: sessionmaker[Session]) -> RunView | None:
    """The last verify's outcome, for the health page: ``ok``, ``counts``, ``findings``, when."""
    return last_run(sessions, "verify")

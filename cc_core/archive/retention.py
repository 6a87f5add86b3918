"""Retention (T5): archived recordings are kept ``retention_days`` after their day, then purged —
except those under a legal hold, which an auditor sets and clears with who, when and why.

A purge is logged before anything is removed (``recording_purges``: which file, its hash, when,
why, by whom) and the recording is marked purged in the same transaction; only then are the
archived file and its backup copy removed. A crash in between leaves a logged purge whose files
are still there (``files_removed_at`` empty): the next purge run removes them. The row, its
hash and its manifest entry stay, so the manifest chain still verifies and verify reports the
recording as purged, not missing.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cc_core.archive.config import ArchiveConfig, RecordingNotFound, RecordingPurged, one_line, require_folder
from cc_core.archive.durable import remove_file
from cc_core.archive.progress import Progress
from cc_core.archive.runs import RunClock, archive_lock, changed, record_run
from cc_core.calendars.days import local_day, require_aware
from cc_core.db.models import Recording, RecordingHoldEvent, RecordingPurge

log = logging.getLogger(__name__)

PURGE_CHECKPOINTS = ("purge_logged", "purge_files_removed")
_WHO_LEN = 64
_WHY_LEN = 255


@dataclass(frozen=True)
class HoldView:
    """A recording's legal hold now: held or not, and by whom, since when, why."""

    recording_id: int
    held: bool
    at: datetime | None
    by: str | None
    reason: str | None
    purged_at: datetime | None


@dataclass(frozen=True)
class HoldEvent:
    """One hold set or cleared (the history auditors read)."""

    recording_id: int
    action: str
    at: datetime
    by: str
    reason: str


@dataclass(frozen=True)
class PurgeEntry:
    """One line of the purge log."""

    recording_id: int
    archive_path: str
    sha256: str
    size_bytes: int
    day: date
    purged_at: datetime
    by: str
    reason: str
    files_removed_at: datetime | None


@dataclass
class PurgeResult:
    """What one purge run did (or, with ``dry_run``, would do)."""

    started_at: datetime
    cutoff: date
    dry_run: bool = False
    finished_at: datetime | None = None
    purged: list[int] = field(default_factory=list)
    freed_bytes: int = 0
    # Past their retention but under a legal hold: kept.
    held: list[int] = field(default_factory=list)
    # Files of earlier purges removed now (a purge interrupted before its files were gone).
    finished_earlier: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, Any]:
        return {
            "purged": len(self.purged),
            "freed_bytes": self.freed_bytes,
            "held": len(self.held),
            "finished_earlier": self.finished_earlier,
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
        }


def _text(value: str, name: str, limit: int) -> str:
    text = " ".join(value.split())
    if not text:
        raise ValueError(f"{name} must not be empty")
    if len(text) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    return text


def _hold_view(row: Recording) -> HoldView:
    return HoldView(row.id, row.hold_at is not None, row.hold_at, row.hold_by, row.hold_reason, row.purged_at)


def _change_hold(
    sessions: sessionmaker[Session], recording_id: int, by: str, reason: str, at: datetime | None, setting: bool
) -> HoldView:
    who = _text(by, "by", _WHO_LEN)
    why = _text(reason, "reason", _WHY_LEN)
    moment = at or datetime.now(UTC)
    require_aware(moment)
    with sessions() as session, session.begin():
        row = session.get(Recording, recording_id, with_for_update=True)
        if row is None:
            raise RecordingNotFound(f"no recording has the id {recording_id}")
        if setting and row.purged_at is not None:
            raise RecordingPurged(
                f"recording {recording_id} was purged on {local_day(row.purged_at)} (Beijing); nothing to hold"
            )
        if (row.hold_at is not None) == setting:
            return _hold_view(row)  # already so: a repeat changes nothing
        row.hold_at, row.hold_by, row.hold_reason = (moment, who, why) if setting else (None, None, None)
        session.add(
            RecordingHoldEvent(
                recording_id=recording_id, action="set" if setting else "cleared", at=moment, by=who, reason=why
            )
        )
        session.flush()
        log.info("legal hold %s on recording %s by %s", "set" if setting else "cleared", recording_id, who)
        return _hold_view(row)


def set_hold(
    sessions: sessionmaker[Session], recording_id: int, *, by: str, reason: str, at: datetime | None = None
) -> HoldView:
    """Put the recording under a legal hold: retention will not purge it until the hold is cleared.

    ``by`` is the auditor (user name), ``reason`` why (e.g. a complaint's case number); both are
    required and logged with ``at`` (now by default). Holding a held recording changes nothing.
    Raises RecordingNotFound, RecordingPurged (too late), or ValueError for empty ``by``/``reason``.
    """
    return _change_hold(sessions, recording_id, by, reason, at, True)


def clear_hold(
    sessions: sessionmaker[Session], recording_id: int, *, by: str, reason: str, at: datetime | None = None
) -> HoldView:
    """Lift the recording's legal hold (who, why, when are logged); retention applies again.

    Clearing a recording that is not held changes nothing. Raises RecordingNotFound or ValueError.
    """
    return _change_hold(sessions, recording_id, by, reason, at, False)


def hold_history(sessions: sessionmaker[Session], recording_id: int | None = None) -> list[HoldEvent]:
    """Holds set and cleared, oldest first: of one recording, or all."""
    query = select(RecordingHoldEvent).order_by(RecordingHoldEvent.at, RecordingHoldEvent.id)
    if recording_id is not None:
        query = query.where(RecordingHoldEvent.recording_id == recording_id)
    with sessions() as session:
        return [HoldEvent(e.recording_id, e.action, e.at, e.by, e.reason) for e in session.scalars(query)]


def purge_log(sessions: sessionmaker[Session], since: datetime | None = None) -> list[PurgeEntry]:
    """The purge log, oldest first (from ``since`` on)."""
    query = select(RecordingPurge).order_by(RecordingPurge.purged_at, RecordingPurge.id)
    if since is not None:
        query = query.where(RecordingPurge.purged_at >= since)
    with sessions() as session:
        return [
            PurgeEntry(
                p.recording_id, p.archive_path, p.sha256, p.size_bytes, p.day, p.purged_at, p.by, p.reason,
                p.files_removed_at,
            )
            for p in session.scalars(query)
        ]  # fmt: skip


def retention_cutoff(today: date, retention_days: int) -> date:
    """Recordings of days before this one are past their retention on ``today``.

    A recording of day D is kept through D + ``retention_days`` and purged from the day after.
    """
    return today - timedelta(days=retention_days)


def _remove_files(config: ArchiveConfig, path: str) -> None:
    for root in (config.store, config.backup):
        if root is None:
            continue
        if not root.is_dir():
            # An unmounted backup disk: its copy is still owed a removal, not "gone".
            raise OSError(errno.ENOENT, f"the folder {root} is not there (is the disk mounted?)")
        remove_file(root / path)


def _finish_owed(sessions: sessionmaker[Session], config: ArchiveConfig, result: PurgeResult, clock: RunClock) -> None:
    """Remove the files of purges logged earlier whose removal was interrupted."""
    with sessions() as session:
        owed = list(
            session.execute(
                select(RecordingPurge.id, RecordingPurge.archive_path).where(RecordingPurge.files_removed_at.is_(None))
            )
        )
    for purge_id, path in owed:
        try:
            _remove_files(config, path)
        except OSError as exc:
            result.problems.append(f"cannot remove {path}: {exc.strerror or one_line(exc)}")
            continue
        with sessions() as session, session.begin():
            session.execute(
                update(RecordingPurge)
                .where(RecordingPurge.id == purge_id)
                .values(files_removed_at=clock.now())
                .execution_options(synchronize_session=False)
            )
        result.finished_earlier += 1


def purge_expired(
    sessions: sessionmaker[Session],
    config: ArchiveConfig,
    *,
    now: datetime | None = None,
    by: str = "retention",
    dry_run: bool = False,
    progress: Progress | None = None,
    checkpoint: Callable[[str, int], None] | None = None,
) -> PurgeResult:
    """Purge archived recordings past the retention period, except those under a legal hold.

    Each purge is logged (``by``: "retention" for the scheduled job, or the user) and committed
    before its files (archive and backup) are removed. ``dry_run``: only report what would go.
    Raises ArchiveError (one line) if the archive folder is missing or another job runs.
    """
    clock = RunClock(now)
    moment = clock.start
    require_aware(moment)
    who = _text(by, "by", _WHO_LEN)
    cutoff = retention_cutoff(local_day(moment), config.retention_days)
    require_folder(config.store, "archive", "store_dir")
    with archive_lock(config.store):
        result = PurgeResult(started_at=moment, cutoff=cutoff, dry_run=dry_run)
        expired = (
            Recording.archive_state == "archived",
            Recording.purged_at.is_(None),
            Recording.archive_day < cutoff,
        )
        with sessions() as session:
            due = [
                (row.id, str(row.archive_path), str(row.archive_sha256), row.archive_size_bytes or 0, row.archive_day)
                for row in session.execute(
                    select(
                        Recording.id,
                        Recording.archive_path,
                        Recording.archive_sha256,
                        Recording.archive_size_bytes,
                        Recording.archive_day,
                    )
                    .where(*expired, Recording.hold_at.is_(None))
                    .order_by(Recording.archive_day, Recording.id)
                )
            ]
            result.held = list(session.scalars(select(Recording.id).where(*expired, Recording.hold_at.is_not(None))))
        if dry_run:
            result.purged = [recording_id for recording_id, *_ in due]
            result.freed_bytes = sum(size for _, _, _, size, _ in due)
            result.finished_at = clock.now()
            return result
        _finish_owed(sessions, config, result, clock)
        reason = f"retention of {config.retention_days} days ended (recordings of days before {cutoff})"
        if progress is not None:
            progress(0, len(due), "")
        for number, (recording_id, path, sha256, size, day) in enumerate(due, 1):
            with sessions() as session, session.begin():
                # The hold is checked again in the same statement: one set meanwhile wins.
                marked = session.execute(
                    update(Recording)
                    .where(Recording.id == recording_id, Recording.purged_at.is_(None), Recording.hold_at.is_(None))
                    .values(purged_at=moment)
                    .execution_options(synchronize_session=False)
                )
                if changed(marked) == 1:
                    session.add(
                        RecordingPurge(
                            recording_id=recording_id,
                            archive_path=path,
                            sha256=sha256,
                            size_bytes=size,
                            day=day,
                            purged_at=moment,
                            by=who,
                            reason=reason,
                        )
                    )
            if changed(marked) == 1:
                if checkpoint is not None:
                    checkpoint("purge_logged", recording_id)
                try:
                    _remove_files(config, path)
                except OSError as exc:
                    result.problems.append(f"cannot remove {path}: {exc.strerror or one_line(exc)}")
                else:
                    if checkpoint is not None:
                        checkpoint("purge_files_removed", recording_id)
                    with sessions() as session, session.begin():
                        session.execute(
                            update(RecordingPurge)
                            .where(RecordingPurge.recording_id == recording_id)
                            .values(files_removed_at=clock.now())
                            .execution_options(synchronize_session=False)
                        )
                result.purged.append(recording_id)
                result.freed_bytes += size
            if progress is not None:
                progress(number, len(due), path)
        result.finished_at = clock.now()
        if result.purged or result.problems or result.finished_earlier:
            record_run(
                sessions,
                "purge",
                result.started_at,
                result.finished_at,
                ok=result.ok,
                counts=result.counts(),
                findings=[{"kind": "purge_problem", "detail": text} for text in result.problems],
            )
        log.info("purge: %d purged, %d held past retention (cutoff %s)", len(result.purged), len(result.held), cutoff)
        return result

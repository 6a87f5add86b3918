"""Read-only views of recordings' archive state, for the CLI, the health page and the replay API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cc_core.archive.config import ArchiveConfig
from cc_core.db.models import Recording


@dataclass(frozen=True)
class ArchivedRecording:
    """A recording with its archive fields (``state`` None: not taken up by the archiver yet)."""

    id: int
    call_id: int | None
    uniqueid: str
    agent_id: str | None
    leg: str
    started_at: datetime
    status: str
    state: str | None
    day: date | None
    path: str | None
    sha256: str | None
    size_bytes: int | None
    duration_s: float | None
    format: str | None
    error: str | None
    archived_at: datetime | None
    backed_up_at: datetime | None
    manifest_id: int | None
    hold_at: datetime | None
    hold_by: str | None
    hold_reason: str | None
    purged_at: datetime | None

    @classmethod
    def from_row(cls, row: Recording) -> ArchivedRecording:
        return cls(
            id=row.id,
            call_id=row.call_id,
            uniqueid=row.uniqueid,
            agent_id=row.agent_id,
            leg=row.leg,
            started_at=row.started_at,
            status=row.status,
            state=row.archive_state,
            day=row.archive_day,
            path=row.archive_path,
            sha256=row.archive_sha256,
            size_bytes=row.archive_size_bytes,
            duration_s=row.archive_duration_s,
            format=row.archive_format,
            error=row.archive_error,
            archived_at=row.archived_at,
            backed_up_at=row.backed_up_at,
            manifest_id=row.manifest_id,
            hold_at=row.hold_at,
            hold_by=row.hold_by,
            hold_reason=row.hold_reason,
            purged_at=row.purged_at,
        )

    @property
    def playable(self) -> bool:
        """The archived file exists to be played (archived and not purged)."""
        return self.state == "archived" and self.purged_at is None


def archived_recording(sessions: sessionmaker[Session], recording_id: int) -> ArchivedRecording | None:
    """One recording's archive state, or None if no recording has this id."""
    with sessions() as session:
        row = session.get(Recording, recording_id)
        return None if row is None else ArchivedRecording.from_row(row)


def archived_for_call(sessions: sessionmaker[Session], uniqueid: str) -> list[ArchivedRecording]:
    """The archive state of a call's recordings (every leg), in the order they started."""
    with sessions() as session:
        rows = session.scalars(
            select(Recording).where(Recording.uniqueid == uniqueid).order_by(Recording.started_at, Recording.id)
        )
        return [ArchivedRecording.from_row(row) for row in rows]


def archive_file(config: ArchiveConfig, recording: ArchivedRecording) -> Path | None:
    """The archived file on disk to stream (replay API), or None if there is none to play."""
    if not recording.playable or recording.path is None:
        return None
    return config.store / recording.path


def failed_recordings(sessions: sessionmaker[Session]) -> list[ArchivedRecording]:
    """Recordings that could not be archived (the reason in ``error``), oldest first."""
    with sessions() as session:
        rows = session.scalars(
            select(Recording).where(Recording.archive_state == "failed").order_by(Recording.started_at, Recording.id)
        )
        return [ArchivedRecording.from_row(row) for row in rows]


def archive_summary(sessions: sessionmaker[Session]) -> dict[str, int]:
    """How many recordings are in each archive state, for the health page: ``waiting`` (done, not
    taken up yet), pending, written, verified, archived, failed, purged, held."""
    with sessions() as session:
        states = dict(
            session.execute(
                select(Recording.archive_state, func.count())
                .where(Recording.status == "done", Recording.purged_at.is_(None))
                .group_by(Recording.archive_state)
            ).all()
        )
        purged = session.scalar(select(func.count()).select_from(Recording).where(Recording.purged_at.is_not(None)))
        held = session.scalar(select(func.count()).select_from(Recording).where(Recording.hold_at.is_not(None)))
    summary = {"waiting": int(states.pop(None, 0))}
    for state in ("pending", "written", "verified", "archived", "failed"):
        summary[state] = int(states.get(state, 0))
    summary["purged"] = int(purged or 0)
    summary["held"] = int(held or 0)
    return summary

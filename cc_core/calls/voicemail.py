"""Voicemails: messages callers leave in the IVR (outside hours, queue too long).

Like :mod:`cc_core.calls.store`, methods are synchronous and each is one transaction. A
voicemail belongs to a call when that call is known, but outlives it: deleting the call row
only clears ``call_id``.
"""

from __future__ import annotations

import builtins
import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cc_core.calendars.days import require_aware
from cc_core.calls import fields
from cc_core.db.models import Call, Voicemail

# Column widths (see cc_core.db.models); text from the switch is clipped to fit.
_NUMBER_LEN = 32
_NAME_LEN = 64
_FILE_LEN = 255


@dataclass(frozen=True)
class VoicemailView:
    """A read-only snapshot of one voicemail."""

    id: int
    call_id: int | None
    uniqueid: str
    caller_number: str
    flow: str
    node: str
    file: str
    duration_s: float
    created_at: datetime
    listened_at: datetime | None
    listened_by: str | None

    @classmethod
    def from_row(cls, row: Voicemail) -> VoicemailView:
        return cls(
            id=row.id,
            call_id=row.call_id,
            uniqueid=row.uniqueid,
            caller_number=row.caller_number,
            flow=row.flow,
            node=row.node,
            file=row.file,
            duration_s=row.duration_s,
            created_at=row.created_at,
            listened_at=row.listened_at,
            listened_by=row.listened_by,
        )


class VoicemailStore:
    """Reads and writes voicemails through a sessionmaker (see :func:`cc_core.db.session.make_sessionmaker`)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    # Separate so tests can widen the gap between "not there" and the insert.
    def _find_id(self, session: Session, uniqueid: str, file: str) -> int | None:
        return session.scalar(select(Voicemail.id).where(Voicemail.uniqueid == uniqueid, Voicemail.file == file))

    def add(
        self,
        uniqueid: str,
        caller_number: str,
        flow: str,
        node: str,
        file: str,
        duration_s: float,
        at: datetime,
    ) -> int:
        """Record a voicemail left at ``at`` and return its id.

        Linked to the call with this ``uniqueid`` when that call is recorded. Idempotent on
        (``uniqueid``, ``file``): a repeat (or a concurrent duplicate) returns the existing id and
        changes nothing. Raises ValueError for a naive ``at``, an empty or over-long ``uniqueid``,
        an empty ``file`` or a negative or non-finite ``duration_s``.
        """
        uniqueid = fields.key(uniqueid, "uniqueid")
        require_aware(at)
        file = fields.clip(file, _FILE_LEN)
        if not file:
            raise ValueError("file must name the recording, got an empty string")
        duration_s = float(duration_s)
        if not math.isfinite(duration_s) or duration_s < 0:
            raise ValueError(f"duration_s must be a finite number of seconds >= 0, got {duration_s!r}")
        try:
            with self._sessions() as session, session.begin():
                existing = self._find_id(session, uniqueid, file)
                if existing is not None:
                    return existing
                row = Voicemail(
                    call_id=session.scalar(select(Call.id).where(Call.uniqueid == uniqueid)),
                    uniqueid=uniqueid,
                    caller_number=fields.clip(caller_number, _NUMBER_LEN),
                    flow=fields.clip(flow, _NAME_LEN),
                    node=fields.clip(node, _NAME_LEN),
                    file=file,
                    duration_s=duration_s,
                    created_at=at,
                )
                session.add(row)
                session.flush()
                return row.id
        except IntegrityError:
            # Lost the race to another writer between our SELECT and INSERT: its row is
            # committed now. If there is still no row, the error was something else.
            with self._sessions() as session:
                existing = self._find_id(session, uniqueid, file)
            if existing is None:
                raise
            return existing

    def list(self, limit: int = 50, unheard_only: bool = False) -> builtins.list[VoicemailView]:
        """The newest voicemails first; with ``unheard_only`` only those nobody has listened to."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        query = select(Voicemail).order_by(Voicemail.created_at.desc(), Voicemail.id.desc()).limit(limit)
        if unheard_only:
            query = query.where(Voicemail.listened_at.is_(None))
        with self._sessions() as session:
            return [VoicemailView.from_row(row) for row in session.scalars(query)]

    def mark_listened(self, voicemail_id: int, by: str, at: datetime) -> bool:
        """Note that ``by`` (an agent or admin) listened to the voicemail. Returns False if it is unknown.

        The first listen is kept: a repeat (another agent, a second click) changes nothing and
        still returns True.
        """
        require_aware(at)
        by = fields.clip(by, _NAME_LEN)
        with self._sessions() as session, session.begin():
            found = session.scalar(
                update(Voicemail)
                .where(Voicemail.id == voicemail_id, Voicemail.listened_at.is_(None))
                .values(listened_at=at, listened_by=by)
                .returning(Voicemail.id)
                .execution_options(synchronize_session=False)
            )
            if found is not None:
                return True
            return session.scalar(select(Voicemail.id).where(Voicemail.id == voicemail_id)) is not None

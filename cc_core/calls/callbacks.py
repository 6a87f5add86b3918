"""The callback list (T10): every abandoned or unanswered caller is called back, once per day.

The contract counts 95% answered + 5% called back as a 100% acceptance rate, so a citizen who
abandons (or asks for a callback, or is never answered) lands here: one row per number and
Beijing calendar day, however many calls they made, each call linked to it. The controller
takes due rows (:meth:`CallbackStore.due`), claims one so no other worker dials it, and records
each attempt; a reached citizen closes it "done", too many failed attempts close it "failed".

Statuses: "open" (waiting for its next attempt) → "in_progress" (claimed, being dialled) → back
to "open", or closed as "done", "failed" or "cancelled". A closed row stays closed: a later call
from the same number that day is linked to it but does not reopen it.

Like :mod:`cc_core.calls.store`, methods are synchronous and each is one transaction; moments are
aware datetimes (any zone; they come back in UTC). Numbers are personal data: logged masked only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cc_core.calendars.days import local_day, require_aware
from cc_core.calls import fields
from cc_core.calls.fields import is_anonymous
from cc_core.db.models import Call, Callback, CallbackAttempt, CallbackCall
from cc_core.logs import mask_personal_data
from cc_core.switch.numbers import dialable

log = logging.getLogger(__name__)

_NUMBER_LEN = 32
_WHY_LEN = 64

CALLBACK_REASONS = ("abandoned", "requested", "unanswered")
CALLBACK_STATUSES = ("open", "in_progress", "done", "failed", "cancelled")
# Not closed yet: waiting for an attempt, or being dialled.
ACTIVE_STATUSES = ("open", "in_progress")
ATTEMPT_RESULTS = ("agent_no_answer", "citizen_no_answer", "citizen_busy", "reached", "failed")
# Why a callback closed without one of our attempts reaching the citizen.
CALLED_IN_AGAIN = "called in again"


@dataclass(frozen=True)
class CallbackView:
    """A read-only snapshot of one callback."""

    id: int
    number: str
    day: date
    reason: str
    status: str
    created_at: datetime
    updated_at: datetime
    attempts: int
    next_attempt_at: datetime | None
    closed_at: datetime | None
    reached_at: datetime | None
    agent_id: str | None
    close_reason: str | None = None

    @classmethod
    def from_row(cls, row: Callback) -> CallbackView:
        return cls(
            id=row.id,
            number=row.number,
            day=row.day,
            reason=row.reason,
            status=row.status,
            created_at=row.created_at,
            updated_at=row.updated_at,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            closed_at=row.closed_at,
            reached_at=row.reached_at,
            agent_id=row.agent_id,
            close_reason=row.close_reason,
        )


@dataclass(frozen=True)
class AttemptView:
    """A read-only snapshot of one attempt at calling a citizen back."""

    id: int
    callback_id: int
    agent_id: str | None
    started_at: datetime
    ended_at: datetime | None
    result: str | None
    agent_uniqueid: str | None
    citizen_uniqueid: str | None

    @classmethod
    def from_row(cls, row: CallbackAttempt) -> AttemptView:
        return cls(
            id=row.id,
            callback_id=row.callback_id,
            agent_id=row.agent_id,
            started_at=row.started_at,
            ended_at=row.ended_at,
            result=row.result,
            agent_uniqueid=row.agent_uniqueid,
            citizen_uniqueid=row.citizen_uniqueid,
        )


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _number(value: str) -> str:
    number = fields.clip(value.strip(), _NUMBER_LEN)
    if is_anonymous(number):
        raise ValueError("an anonymous caller cannot be called back: there is no number")
    # Only a number the switch may dial is put on the list (issue 11 item 6): it becomes the
    # Exten of an AMI Originate and part of Dial(PJSIP/<number>@trunk). BadNumber is a ValueError.
    return dialable(number)


def _optional_key(value: str | None, name: str) -> str | None:
    return None if value is None else fields.key(value, name)


class CallbackStore:
    """Reads and writes the callback list through a sessionmaker (see :func:`cc_core.db.session.make_sessionmaker`).

    A failed attempt is retried ``retry_after_s`` seconds later, until ``max_attempts`` attempts
    have been made. ``clock`` stamps rows written without a moment of their own
    (:meth:`release_stale`); tests pass a fixed one.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        max_attempts: int = 3,
        retry_after_s: int = 600,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if retry_after_s < 0:
            raise ValueError(f"retry_after_s must be 0 or more, got {retry_after_s}")
        self._sessions = sessions
        self._max_attempts = max_attempts
        self._retry_after = timedelta(seconds=retry_after_s)
        self._clock = clock

    # Separate so tests can widen the gap between "not there" and the insert.
    def _find(self, session: Session, number: str, day: date) -> int | None:
        return session.scalar(select(Callback.id).where(Callback.number == number, Callback.day == day))

    def request(self, number: str, uniqueid: str, reason: str, at: datetime) -> int:
        """Put ``number`` on the callback list because of call ``uniqueid``; returns the callback's id.

        One row per number and Beijing calendar day of ``at`` (23:30 UTC is the next day there).
        The first call creates it "open" and due at once, with its ``reason`` (one of
        :data:`CALLBACK_REASONS`); later calls that day are linked to the same row, which keeps its
        reason, status and schedule: a closed row stays closed. Idempotent, and safe against a
        concurrent request for the same number. Raises ValueError for an anonymous or empty
        number (nothing to call back), an unknown reason, a bad ``uniqueid`` or a naive ``at``.
        """
        number = _number(number)
        uniqueid = fields.key(uniqueid, "uniqueid")
        if reason not in CALLBACK_REASONS:
            raise ValueError(f"reason must be one of {', '.join(CALLBACK_REASONS)}; got {reason!r}")
        day = local_day(at)
        try:
            return self._request(number, uniqueid, reason, at, day)
        except IntegrityError:
            # Lost the race to another writer of the same row or link between our SELECT and
            # INSERT: its writes are committed now, so a second pass finds them. If it fails
            # again, the error was something else.
            return self._request(number, uniqueid, reason, at, day)

    def _request(self, number: str, uniqueid: str, reason: str, at: datetime, day: date) -> int:
        with self._sessions() as session, session.begin():
            callback_id = self._find(session, number, day)
            if callback_id is None:
                row = Callback(
                    number=number,
                    day=day,
                    reason=reason,
                    status="open",
                    created_at=at,
                    updated_at=at,
                    attempts=0,
                    next_attempt_at=at,
                )
                session.add(row)
                session.flush()
                callback_id = row.id
                log.info("callback %d opened for %s (%s)", callback_id, mask_personal_data(number), reason)
            if session.get(CallbackCall, (callback_id, uniqueid)) is None:
                session.add(CallbackCall(callback_id=callback_id, uniqueid=uniqueid))
                session.flush()
            return callback_id

    def due(self, now: datetime, limit: int = 10) -> list[CallbackView]:
        """Open callbacks whose next attempt is due at ``now``, the longest-waiting first."""
        require_aware(now)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._sessions() as session:
            rows = session.scalars(
                select(Callback)
                .where(Callback.status == "open", Callback.next_attempt_at <= now)
                .order_by(Callback.next_attempt_at, Callback.id)
                .limit(limit)
            )
            return [CallbackView.from_row(row) for row in rows]

    def claim(self, callback_id: int, at: datetime) -> bool:
        """Take an open callback to dial it ("in_progress"). False if it is not open (someone else took it).

        One conditional UPDATE: of two workers claiming the same callback exactly one wins.
        """
        require_aware(at)
        with self._sessions() as session, session.begin():
            won = session.scalar(
                update(Callback)
                .where(Callback.id == callback_id, Callback.status == "open")
                .values(status="in_progress", updated_at=at)
                .returning(Callback.id)
                .execution_options(synchronize_session=False)
            )
            return won is not None

    def attempt_started(
        self, callback_id: int, agent_id: str | None, at: datetime, agent_uniqueid: str | None = None
    ) -> int:
        """An attempt began at ``at``: ``agent_id`` is rung first (their leg is ``agent_uniqueid``); returns its id.

        An open callback becomes "in_progress" (an attempt holds it even without a claim); a
        closed one stays closed. Raises ValueError for an unknown callback, a bad ``agent_id`` or
        uniqueid, or a naive ``at``.
        """
        agent = None if agent_id is None else fields.agent_key(agent_id)
        leg = _optional_key(agent_uniqueid, "agent_uniqueid")
        require_aware(at)
        with self._sessions() as session, session.begin():
            found = session.scalar(
                update(Callback)
                .where(Callback.id == callback_id)
                .values(
                    status=case((Callback.status == "open", "in_progress"), else_=Callback.status),
                    updated_at=at,
                )
                .returning(Callback.id)
                .execution_options(synchronize_session=False)
            )
            if found is None:
                raise ValueError(f"there is no callback {callback_id}")
            attempt = CallbackAttempt(callback_id=callback_id, agent_id=agent, started_at=at, agent_uniqueid=leg)
            session.add(attempt)
            session.flush()
            return attempt.id

    def attempt_finished(
        self, attempt_id: int, result: str, at: datetime, citizen_uniqueid: str | None = None
    ) -> CallbackView:
        """The attempt ended at ``at`` with ``result`` (one of :data:`ATTEMPT_RESULTS`); returns the callback.

        Every finished attempt counts. "reached" closes the callback "done" with the attempt's
        agent; any other result puts an open or in-progress callback back to "open", due again
        ``retry_after_s`` later, or closes it "failed" once ``max_attempts`` attempts are made.
        A callback closed meanwhile stays closed, unless this attempt reached the citizen.
        Idempotent: finishing an attempt again changes nothing. Raises ValueError for an unknown
        result or attempt, a bad ``citizen_uniqueid`` or a naive ``at``.
        """
        if result not in ATTEMPT_RESULTS:
            raise ValueError(f"result must be one of {', '.join(ATTEMPT_RESULTS)}; got {result!r}")
        citizen = _optional_key(citizen_uniqueid, "citizen_uniqueid")
        require_aware(at)
        # The view is built from the row as changed here, not read back: make it UTC like a read.
        at = at.astimezone(UTC)
        with self._sessions() as session, session.begin():
            # Written first: this conditional UPDATE decides which of two finishers counts, and
            # takes the write lock before the callback is read (SQLite has no FOR UPDATE).
            ended = session.execute(
                update(CallbackAttempt)
                .where(CallbackAttempt.id == attempt_id, CallbackAttempt.ended_at.is_(None))
                .values(ended_at=at, result=result, citizen_uniqueid=citizen)
                .returning(CallbackAttempt.callback_id, CallbackAttempt.agent_id)
                .execution_options(synchronize_session=False)
            ).one_or_none()
            if ended is None:
                attempt = session.get(CallbackAttempt, attempt_id)
                if attempt is None:
                    raise ValueError(f"there is no callback attempt {attempt_id}")
                return self._view(session, attempt.callback_id)
            callback_id, agent = ended
            row = session.scalars(select(Callback).where(Callback.id == callback_id).with_for_update()).one()
            row.attempts += 1
            row.updated_at = at
            if result == "reached":
                if row.status != "done":
                    row.status, row.reached_at, row.closed_at, row.agent_id = "done", at, at, agent
                    row.next_attempt_at = row.close_reason = None
            elif row.status in ACTIVE_STATUSES:
                if row.attempts >= self._max_attempts:
                    row.status, row.closed_at, row.next_attempt_at = "failed", at, None
                    log.info(
                        "callback %d to %s failed after %d attempts",
                        row.id,
                        mask_personal_data(row.number),
                        row.attempts,
                    )
                else:
                    row.status, row.next_attempt_at = "open", at + self._retry_after
            session.flush()
            return CallbackView.from_row(row)

    @staticmethod
    def _view(session: Session, callback_id: int) -> CallbackView:
        row = session.get(Callback, callback_id)
        if row is None:  # pragma: no cover - the foreign key keeps attempts with their callback
            raise ValueError(f"there is no callback {callback_id}")
        return CallbackView.from_row(row)

    def cancel(self, callback_id: int, at: datetime, why: str) -> bool:
        """Close an open or in-progress callback as "cancelled" (a supervisor's decision), noting ``why``.

        Returns True if this call cancelled it; False if it is unknown or already closed (a
        closed callback keeps its outcome). ``why`` is clipped to 64 characters.
        """
        require_aware(at)
        with self._sessions() as session, session.begin():
            done = session.scalar(
                update(Callback)
                .where(Callback.id == callback_id, Callback.status.in_(ACTIVE_STATUSES))
                .values(
                    status="cancelled",
                    closed_at=at,
                    next_attempt_at=None,
                    close_reason=fields.clip(why, _WHY_LEN) or None,
                    updated_at=at,
                )
                .returning(Callback.id)
                .execution_options(synchronize_session=False)
            )
            return done is not None

    def close_if_reached(self, number: str, at: datetime) -> bool:
        """The citizen called in again and reached an agent at ``at``: close that day's callback as "done".

        The citizen was served, which is what the callback was for, so it counts as called back
        (:meth:`CallStore.day_stats`), with ``reached_at`` = ``at``, no agent (the inbound call
        has it) and ``close_reason`` "called in again". Only an open or in-progress callback of
        the same Beijing day is closed; returns whether one was. An anonymous number has none.
        """
        require_aware(at)
        number = fields.clip(number.strip(), _NUMBER_LEN)
        if is_anonymous(number):
            return False
        with self._sessions() as session, session.begin():
            done = session.scalar(
                update(Callback)
                .where(
                    Callback.number == number,
                    Callback.day == local_day(at),
                    Callback.status.in_(ACTIVE_STATUSES),
                )
                .values(
                    status="done",
                    reached_at=at,
                    closed_at=at,
                    next_attempt_at=None,
                    close_reason=CALLED_IN_AGAIN,
                    updated_at=at,
                )
                .returning(Callback.id)
                .execution_options(synchronize_session=False)
            )
            return done is not None

    def active(self, limit: int = 50) -> list[CallbackView]:
        """Callbacks not closed yet (open or being dialled), the oldest first (the agents' list)."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._sessions() as session:
            rows = session.scalars(
                select(Callback)
                .where(Callback.status.in_(ACTIVE_STATUSES))
                .order_by(Callback.created_at, Callback.id)
                .limit(limit)
            )
            return [CallbackView.from_row(row) for row in rows]

    def get(self, callback_id: int) -> CallbackView | None:
        """The callback, or None."""
        with self._sessions() as session:
            row = session.get(Callback, callback_id)
            return None if row is None else CallbackView.from_row(row)

    def list_day(self, day: date) -> list[CallbackView]:
        """The callbacks of one Beijing calendar day, in the order they were created."""
        if isinstance(day, datetime) or not isinstance(day, date):
            raise ValueError(f"day must be a date, got {day!r}")
        with self._sessions() as session:
            rows = session.scalars(
                select(Callback).where(Callback.day == day).order_by(Callback.created_at, Callback.id)
            )
            return [CallbackView.from_row(row) for row in rows]

    def attempts(self, callback_id: int) -> list[AttemptView]:
        """The callback's attempts, oldest first (empty for an unknown callback)."""
        with self._sessions() as session:
            rows = session.scalars(
                select(CallbackAttempt)
                .where(CallbackAttempt.callback_id == callback_id)
                .order_by(CallbackAttempt.started_at, CallbackAttempt.id)
            )
            return [AttemptView.from_row(row) for row in rows]

    def calls(self, callback_id: int) -> list[str]:
        """Uniqueids of the calls that caused the callback: recorded calls by arrival, then the others."""
        with self._sessions() as session:
            return list(
                session.scalars(
                    select(CallbackCall.uniqueid)
                    .outerjoin(Call, Call.uniqueid == CallbackCall.uniqueid)
                    .where(CallbackCall.callback_id == callback_id)
                    .order_by(Call.arrived_at.is_(None), Call.arrived_at, CallbackCall.uniqueid)
                )
            )

    def release_stale(self, before: datetime) -> int:
        """Put "in_progress" callbacks last written before ``before`` back to "open"; returns how many.

        After a controller crash nobody is dialling them any more. They keep their schedule (due
        at once if they were) and their attempt count: the crash was not the citizen's fault.
        Their unfinished attempts are left as they are, so a late result can still be recorded.
        """
        require_aware(before)
        with self._sessions() as session, session.begin():
            released = session.scalars(
                update(Callback)
                .where(Callback.status == "in_progress", Callback.updated_at < before)
                .values(status="open", updated_at=self._clock())
                .returning(Callback.id)
                .execution_options(synchronize_session=False)
            ).all()
            return len(released)

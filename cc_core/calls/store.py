"""The call record: one row per call plus its timeline, written by the controller.

Methods are synchronous and each is one transaction; the asyncio controller runs them through
``asyncio.to_thread``. Asterisk can repeat or reorder what it tells us (AMI and AGI both report
a call, the controller may restart mid-call), so writes are idempotent where that matters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from cc_core.db.models import Call, CallEvent

# Column widths (see cc_core.db.models): PostgreSQL refuses longer text, so values from the
# switch are clipped rather than letting one odd caller ID fail the call's record.
_NUMBER_LEN = 32
_CHANNEL_LEN = 128
_DIGITS_LEN = 64
_CAUSE_TEXT_LEN = 64
_ID_LEN = 64
_FLOW_LEN = 64
_EXIT_DETAIL_LEN = 64

# How a call can leave the IVR (calls.ivr_exit).
IVR_EXITS = ("queue", "transfer", "hangup", "fallback", "abandoned")
SURVEY_SCORES = range(1, 6)


@dataclass(frozen=True)
class CallView:
    """A read-only snapshot of a call and its timeline (oldest event first)."""

    id: int
    uniqueid: str
    linkedid: str
    caller_number: str
    dialed_number: str
    channel: str
    arrived_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    digits: str
    hangup_cause: int | None
    hangup_cause_text: str | None
    status: str
    fallback: bool
    events: list[tuple[datetime, str, dict[str, Any]]] = field(default_factory=list)
    flow: str | None = None
    flow_version: str | None = None
    survey_score: int | None = None
    ivr_exit: str | None = None
    ivr_exit_detail: str | None = None

    @classmethod
    def from_row(cls, call: Call) -> CallView:
        return cls(
            id=call.id,
            uniqueid=call.uniqueid,
            linkedid=call.linkedid,
            caller_number=call.caller_number,
            dialed_number=call.dialed_number,
            channel=call.channel,
            arrived_at=call.arrived_at,
            answered_at=call.answered_at,
            ended_at=call.ended_at,
            digits=call.digits,
            hangup_cause=call.hangup_cause,
            hangup_cause_text=call.hangup_cause_text,
            status=call.status,
            fallback=call.fallback,
            events=[(e.at, e.kind, dict(e.detail)) for e in call.events],
            flow=call.flow,
            flow_version=call.flow_version,
            survey_score=call.survey_score,
            ivr_exit=call.ivr_exit,
            ivr_exit_detail=call.ivr_exit_detail,
        )


def _text(value: str, limit: int) -> str:
    # PostgreSQL text cannot hold NUL; a garbled caller ID must not lose the call record.
    return value.replace("\x00", "")[:limit]


def _clean(value: Any) -> Any:
    """``value`` with NUL removed from every string in it (PostgreSQL's JSONB cannot hold one)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, Mapping):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _aware(at: datetime) -> None:
    # Checked here so the caller gets a plain ValueError, not one wrapped by SQLAlchemy.
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()}; pass an aware one (datetime.now(UTC))")


def _key(value: str, name: str) -> str:
    if not value or len(value) > _ID_LEN:
        raise ValueError(f"{name} must be 1 to {_ID_LEN} characters, got {value!r}")
    return value


class CallStore:
    """Reads and writes calls through a sessionmaker (see :func:`cc_core.db.session.make_sessionmaker`)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    # Separate so tests can widen the gap between "not there" and the insert.
    def _find_id(self, session: Session, uniqueid: str) -> int | None:
        return session.scalar(select(Call.id).where(Call.uniqueid == uniqueid))

    def _add_event(self, session: Session, call_id: int, at: datetime, kind: str, detail: Mapping[str, Any]) -> None:
        session.add(CallEvent(call_id=call_id, at=at, kind=kind, detail=dict(detail)))

    def _write_once(
        self,
        uniqueid: str,
        unset: ColumnElement[bool],
        values: Mapping[str, Any],
        at: datetime,
        kind: str,
        detail: Mapping[str, Any],
    ) -> bool:
        """Set ``values`` on the call only while ``unset`` holds, and log the event once.

        One conditional UPDATE, so of two racing writers exactly one wins; a repeat changes
        nothing. Returns whether the call is known (True also for a repeat)."""
        with self._sessions() as session, session.begin():
            call_id = session.scalar(
                update(Call)
                .where(Call.uniqueid == uniqueid, unset)
                .values(**values)
                .returning(Call.id)
                .execution_options(synchronize_session=False)
            )
            if call_id is None:
                return self._find_id(session, uniqueid) is not None
            self._add_event(session, call_id, at, kind, detail)
            return True

    def call_arrived(
        self,
        uniqueid: str,
        linkedid: str,
        caller_number: str,
        dialed_number: str,
        channel: str,
        at: datetime,
        *,
        caller_name: str = "",
    ) -> int:
        """Record a new call and return its id.

        Idempotent on ``uniqueid``: a repeat (or a concurrent duplicate from another thread or
        process) returns the existing id and changes nothing. ``caller_name`` (caller ID name)
        goes into the "arrived" event's detail.
        """
        uniqueid = _key(uniqueid, "uniqueid")
        linkedid = _key(linkedid, "linkedid")
        _aware(at)
        try:
            with self._sessions() as session, session.begin():
                existing = self._find_id(session, uniqueid)
                if existing is not None:
                    return existing
                call = Call(
                    uniqueid=uniqueid,
                    linkedid=linkedid,
                    caller_number=_text(caller_number, _NUMBER_LEN),
                    dialed_number=_text(dialed_number, _NUMBER_LEN),
                    channel=_text(channel, _CHANNEL_LEN),
                    arrived_at=at,
                )
                session.add(call)
                session.flush()
                detail: dict[str, Any] = {
                    "caller_number": call.caller_number,
                    "dialed_number": call.dialed_number,
                    "channel": call.channel,
                }
                if caller_name:
                    detail["caller_name"] = caller_name.replace("\x00", "")
                self._add_event(session, call.id, at, "arrived", detail)
                return call.id
        except IntegrityError:
            # Lost the race to another writer between our SELECT and INSERT: its row is
            # committed now. If there is still no row, the error was something else.
            with self._sessions() as session:
                existing = self._find_id(session, uniqueid)
            if existing is None:
                raise
            return existing

    def add_digits(self, uniqueid: str, digits: str, at: datetime) -> bool:
        """Append DTMF digits the caller entered. Returns False if the call is unknown."""
        _aware(at)
        digits = _text(digits, _DIGITS_LEN)
        with self._sessions() as session, session.begin():
            # Appended in SQL so two writers cannot lose each other's digits.
            call_id = session.scalar(
                update(Call)
                .where(Call.uniqueid == uniqueid)
                .values(digits=func.substr(Call.digits + digits, 1, _DIGITS_LEN))
                .returning(Call.id)
                .execution_options(synchronize_session=False)
            )
            if call_id is None:
                return False
            self._add_event(session, call_id, at, "digits", {"digits": digits})
            return True

    def mark_fallback(self, uniqueid: str, at: datetime) -> bool:
        """Note that the call reached the dialplan safety net. Returns False if the call is unknown.

        Idempotent: the flag and its event are written once.
        """
        _aware(at)
        return self._write_once(uniqueid, Call.fallback.is_(False), {"fallback": True}, at, "fallback", {})

    def call_ended(self, uniqueid: str, cause: int | None, cause_text: str | None, at: datetime) -> bool:
        """Record the hangup. Returns False if the call is unknown (e.g. the controller started
        mid-call, or the hangup overtook the arrival), True otherwise.

        Idempotent: AMI may report a hangup more than once; only the first is recorded, later
        ones change nothing and still return True.
        """
        _aware(at)
        text = None if cause_text is None else _text(cause_text, _CAUSE_TEXT_LEN)
        return self._write_once(
            uniqueid,
            Call.ended_at.is_(None),
            {"ended_at": at, "hangup_cause": cause, "hangup_cause_text": text, "status": "ended"},
            at,
            "hangup",
            {"cause": cause, "cause_text": text},
        )

    def set_flow(self, uniqueid: str, flow: str, version: str, at: datetime) -> bool:
        """Record the IVR flow the call started in and its version (the flow file's sha256).

        Returns False if the call is unknown. The first flow is kept: a repeat (a restarted
        controller running the flow again, or a later jump to another flow, which the IVR path
        shows) changes nothing and still returns True.
        """
        _aware(at)
        flow = _text(flow, _FLOW_LEN)
        version = _text(version, _FLOW_LEN)
        return self._write_once(
            uniqueid,
            Call.flow.is_(None),
            {"flow": flow, "flow_version": version},
            at,
            "flow",
            {"flow": flow, "version": version},
        )

    def add_step(
        self,
        uniqueid: str,
        at: datetime,
        flow: str,
        node: str,
        kind: str,
        detail: Mapping[str, Any] | None = None,
    ) -> bool:
        """Append one step of the IVR path: the call reached ``node`` (of kind ``kind``) in ``flow``.

        ``detail`` (JSON-serialisable) is stored alongside; its keys "flow", "node" and
        "node_kind" are taken by the step itself. Returns False if the call is unknown.
        Not idempotent: a caller may legitimately pass the same node twice (menu retries).
        """
        _aware(at)
        step: dict[str, Any] = _clean(dict(detail or {}))
        step.update(flow=_text(flow, _FLOW_LEN), node=_text(node, _FLOW_LEN), node_kind=_text(kind, _FLOW_LEN))
        with self._sessions() as session, session.begin():
            call_id = self._find_id(session, uniqueid)
            if call_id is None:
                return False
            self._add_event(session, call_id, at, "ivr", step)
            return True

    def set_survey(self, uniqueid: str, score: int, at: datetime) -> bool:
        """Record the caller's satisfaction score, 1 (非常满意) to 5 (非常不满意).

        Raises ValueError for any other score. Returns False if the call is unknown. The first
        score is kept: a repeat changes nothing and still returns True.
        """
        if isinstance(score, bool) or not isinstance(score, int) or score not in SURVEY_SCORES:
            raise ValueError(f"survey score must be an integer from 1 to 5, got {score!r}")
        _aware(at)
        return self._write_once(
            uniqueid, Call.survey_score.is_(None), {"survey_score": score}, at, "survey", {"score": score}
        )

    def set_ivr_exit(self, uniqueid: str, exit: str, detail: str, at: datetime) -> bool:
        """Record how the call left the IVR (one of :data:`IVR_EXITS`) and e.g. the queue or number.

        Raises ValueError for an unknown ``exit``. Returns False if the call is unknown. A call
        leaves the IVR once: the first exit is kept and later ones (e.g. "abandoned" reported at
        hangup after the call went to a queue) change nothing and still return True.
        """
        if exit not in IVR_EXITS:
            raise ValueError(f"IVR exit must be one of {', '.join(IVR_EXITS)}; got {exit!r}")
        _aware(at)
        detail = _text(detail, _EXIT_DETAIL_LEN)
        return self._write_once(
            uniqueid,
            Call.ivr_exit.is_(None),
            {"ivr_exit": exit, "ivr_exit_detail": detail},
            at,
            "ivr_exit",
            {"exit": exit, "detail": detail},
        )

    def ivr_path(self, uniqueid: str) -> list[tuple[datetime, str, str, str]]:
        """The call's IVR steps in order as (at, flow, node, node_kind); empty for an unknown call."""
        with self._sessions() as session:
            rows = session.execute(
                select(CallEvent.at, CallEvent.detail)
                .join(Call, Call.id == CallEvent.call_id)
                .where(Call.uniqueid == uniqueid, CallEvent.kind == "ivr")
                .order_by(CallEvent.at, CallEvent.id)
            )
            return [
                (at, str(detail.get("flow", "")), str(detail.get("node", "")), str(detail.get("node_kind", "")))
                for at, detail in rows
            ]

    def get(self, uniqueid: str) -> CallView | None:
        """The call with its timeline, or None."""
        with self._sessions() as session:
            call = session.scalar(select(Call).where(Call.uniqueid == uniqueid).options(selectinload(Call.events)))
            return None if call is None else CallView.from_row(call)

    def recent(self, limit: int = 50) -> list[CallView]:
        """The newest calls first, with their timelines."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._sessions() as session:
            calls = session.scalars(
                select(Call)
                .order_by(Call.arrived_at.desc(), Call.id.desc())
                .limit(limit)
                .options(selectinload(Call.events))
            )
            return [CallView.from_row(call) for call in calls]

    def open_calls(self) -> list[str]:
        """Uniqueids of calls not yet ended, oldest first (to reconcile with the switch after a restart)."""
        with self._sessions() as session:
            return list(
                session.scalars(select(Call.uniqueid).where(Call.ended_at.is_(None)).order_by(Call.arrived_at, Call.id))
            )

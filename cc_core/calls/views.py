"""Read views of the call record: one call with its timeline, a caller's earlier calls, the IVR
path, the calls still open, who served a call, the returning caller's agent.

Split out of ``calls/store.py`` (issue 12 item 6) so the write path, the read views and the
report queries are each one file; :class:`~cc_core.calls.store.CallStore` still offers all of
them (it inherits :class:`CallReads`), so callers keep one object per database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from cc_core.calendars.days import require_aware
from cc_core.calls.fields import NUMBER_LEN, clip, is_anonymous
from cc_core.contacts.identity import phone
from cc_core.contacts.store import ContactStore
from cc_core.db.models import Call, CallEvent

__all__ = ["CallReads", "CallView", "served_in"]


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
    queue: str | None = None
    skill: str | None = None
    priority: int | None = None
    queued_at: datetime | None = None
    connected_at: datetime | None = None
    agent_id: str | None = None
    wrapup_ended_at: datetime | None = None
    summary: str | None = None
    survey_agent_id: str | None = None

    @classmethod
    def from_row(cls, call: Call, *, events: bool = True) -> CallView:
        """The view of a row; ``events=False`` leaves the timeline out (and never loads it)."""
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
            events=[(e.at, e.kind, dict(e.detail)) for e in call.events] if events else [],
            flow=call.flow,
            flow_version=call.flow_version,
            survey_score=call.survey_score,
            ivr_exit=call.ivr_exit,
            ivr_exit_detail=call.ivr_exit_detail,
            queue=call.queue,
            skill=call.skill,
            priority=call.priority,
            queued_at=call.queued_at,
            connected_at=call.connected_at,
            agent_id=call.agent_id,
            wrapup_ended_at=call.wrapup_ended_at,
            summary=call.summary,
            survey_agent_id=call.survey_agent_id,
        )


def served_in(session: Session, uniqueid: str, agent_id: str) -> bool | None:
    """Whether ``agent_id`` served the call: it is the call's agent (the one who had the
    caller last), or answered one of its legs before a transfer ("agent_answered" or
    "adopted" on its timeline). None if the call is unknown."""
    row = session.execute(select(Call.id, Call.agent_id).where(Call.uniqueid == uniqueid)).first()
    if row is None:
        return None
    if row.agent_id == agent_id:
        return True
    details = session.scalars(
        select(CallEvent.detail).where(CallEvent.call_id == row.id, CallEvent.kind.in_(("agent_answered", "adopted")))
    )
    return any(isinstance(d, Mapping) and d.get("agent") == agent_id for d in details)


class CallReads:
    """The read views of :class:`~cc_core.calls.store.CallStore` (which sets both attributes)."""

    _sessions: sessionmaker[Session]
    contacts: ContactStore

    def served_by(self, uniqueid: str, agent_id: str) -> bool | None:
        """Whether ``agent_id`` served the call (None: no such call); see :func:`served_in`."""
        with self._sessions() as session:
            return served_in(session, uniqueid, agent_id)

    def last_agent(self, caller_number: str, since: datetime) -> str | None:
        """The agent who served this number last, on a call answered at or after ``since``; else None.

        For "returning caller" routing (T9, 熟客优先): the agent of the most recent such call
        (the one who had the caller last on it). An anonymous number (see :func:`is_anonymous`)
        has no history: strangers must not share one agent. Raises ValueError for a naive ``since``.
        """
        require_aware(since)
        number = clip(caller_number, NUMBER_LEN)
        if is_anonymous(number):
            return None
        # Through the caller's contact (issue 12 item 4): its interactions of every channel, so
        # a citizen who wrote on chat is a returning caller too, and +86… and 1… are one number.
        return self.contacts.last_agent_for(phone(number), since)

    def history(self, caller_number: str, *, exclude: str | None = None, limit: int = 10) -> list[CallView]:
        """Earlier calls from this number, newest first, without their timelines (the agent's
        pop-up, T1). An anonymous number has no history: strangers are not one caller."""
        number = clip(caller_number, NUMBER_LEN)
        if is_anonymous(number) or limit < 1:
            return []
        stmt = select(Call).where(Call.caller_number == number)
        if exclude:
            stmt = stmt.where(Call.uniqueid != exclude)
        with self._sessions() as session:
            rows = session.scalars(stmt.order_by(Call.arrived_at.desc(), Call.id.desc()).limit(limit))
            return [CallView.from_row(row, events=False) for row in rows]

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

"""The call record: one row per call plus its timeline, written by the controller.

Methods are synchronous and each is one transaction; the asyncio controller runs them through
``asyncio.to_thread``. Asterisk can repeat or reorder what it tells us (AMI and AGI both report
a call, the controller may restart mid-call), so writes are idempotent where that matters.

Issue 4 adds the ACD's part of the record: the queue a call waited in, the agent who answered,
the wrap-up summary (T4), the agent a survey score is about (T7), the "returning caller" look-up
(T9) and the day's acceptance rate (T10, :meth:`CallStore.day_stats`).

Issue 12 splits the module (item 6): this file is the write path; the read views are in
:mod:`cc_core.calls.views`, the report queries in :mod:`cc_core.calls.reports`, the field
rules every writer of call rows shares in :mod:`cc_core.calls.fields`. Issue 12 also links
each call to its caller's contact as it is recorded (cc_core/contacts, decision 0016): the
returning-caller look-up goes through the contact's interactions of every channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, bindparam, case, func, insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cc_core.calendars.days import require_aware
from cc_core.calls.fields import (
    CALL_ID_BY_UNIQUEID,
    CAUSE_TEXT_LEN,
    CHANNEL_LEN,
    DIGITS_LEN,
    EXIT_DETAIL_LEN,
    FLOW_LEN,
    KIND_LEN,
    NUMBER_LEN,
    QUEUE_LEN,
    SUMMARY_LEN,
    agent_key,
    clean,
    clip,
    key,
)
from cc_core.calls.reports import CallReports
from cc_core.calls.views import CallReads, served_in
from cc_core.contacts.store import ContactStore, call_answered, link_call
from cc_core.db.models import Call, CallEvent, UTCDateTime, table_of
from cc_core.db.writer import Prepared, in_batch, insert_later, transaction

# How a call can leave the IVR (calls.ivr_exit).
IVR_EXITS = ("queue", "transfer", "hangup", "fallback", "abandoned")
SURVEY_SCORES = range(1, 6)


class NotServedError(Exception):
    """The agent did not serve this call, so may not write its summary (issue 11 item 4)."""


# Built once: SQLAlchemy computes a statement's cache key on every execution of a new statement
# object, which costs more than the INSERT itself; the values come as parameters.
# Table-level (Core) statements: an ORM-enabled one goes through the ORM's bulk persistence on
# every execution, several times the cost of the statement itself (docs/PERFORMANCE.md).
_CALLS = table_of(Call)
_C = _CALLS.c
_INSERT_EVENT = Prepared(insert(table_of(CallEvent)))
_INSERT_CALL = insert(_CALLS).returning(_C.id)
_FIND_CALL = Prepared(CALL_ID_BY_UNIQUEID)
_BY_UID = _C.uniqueid == bindparam("p_uid")
_AT = bindparam("p_at", type_=UTCDateTime())


def _unless_ended(status: str) -> ColumnElement[str]:
    # A late event (written after the hangup's) must not bring an ended call back to life.
    return case((_C.ended_at.is_(None), status), else_=_C.status)


@cache
def _set_once(guard: str, columns: tuple[str, ...]) -> Prepared:
    """UPDATE the call's ``columns`` while ``guard`` is unset (NULL; false for the flag "fallback")."""
    unset = _C.fallback.is_(False) if guard == "fallback" else _C[guard].is_(None)
    values = {name: bindparam("p_" + name, type_=_C[name].type) for name in columns}
    return Prepared(update(_CALLS).where(_BY_UID, unset).values(values).returning(_C.id))


_ADD_DIGITS = Prepared(
    update(_CALLS)
    .where(_BY_UID)
    .values(digits=func.substr(_C.digits + bindparam("p_digits"), 1, DIGITS_LEN))
    .returning(_C.id)
)
# queued_at and connected_at keep the first moment: waiting time and the day's figures count from it.
_QUEUE_ENTERED = Prepared(
    update(_CALLS)
    .where(_BY_UID)
    .values(
        queue=bindparam("p_queue"),
        skill=bindparam("p_skill"),
        priority=bindparam("p_priority"),
        queued_at=func.coalesce(_C.queued_at, _AT),
        status=_unless_ended("queued"),
    )
    .returning(_C.id)
)
# answered_at is the call record's "answered" (接通): the first time a person of the hotline, an
# agent, took the caller; NULL for calls that ended in the IVR or were abandoned. It is the same
# moment as connected_at, the ACD's column, so that any report reading either one counts the
# same calls as answered as day_stats and T10 do (issue 11: it was never written).
_AGENT_ANSWERED = Prepared(
    update(_CALLS)
    .where(_BY_UID)
    .values(
        answered_at=func.coalesce(_C.answered_at, _AT),
        connected_at=func.coalesce(_C.connected_at, _AT),
        agent_id=bindparam("p_agent"),
        status=_unless_ended("connected"),
    )
    .returning(_C.id)
)
_EDIT_SUMMARY = Prepared(
    update(_CALLS)
    .where(_BY_UID, or_(_C.summary.is_(None), _C.summary != bindparam("p_summary")))
    .values(summary=bindparam("p_summary"))
    .returning(_C.id)
)
# How many calls' ids are kept in memory for appending events without a lookup.
_ID_CACHE_SIZE = 20_000


class CallStore(CallReads, CallReports):
    """Reads and writes calls through a sessionmaker (see :func:`cc_core.db.session.make_sessionmaker`).

    The write path is here; the read views (:class:`~cc_core.calls.views.CallReads`) and the
    report queries (:class:`~cc_core.calls.reports.CallReports`) are inherited from their own
    modules, so one object per database still answers all three."""

    def __init__(self, sessions: sessionmaker[Session], *, contacts: ContactStore | None = None) -> None:
        self._sessions = sessions
        self._ids: dict[str, int] = {}
        # Every call is linked to its caller's contact as it is recorded (issue 12 item 4).
        self.contacts = contacts if contacts is not None else ContactStore(sessions)

    def forget_ids(self) -> None:
        """Forget the remembered row ids (a writer's batch that may have read them was rolled back)."""
        self._ids.clear()

    def _known_id(self, session: Session, uniqueid: str) -> int | None:
        """The call's row id, remembered once found (appending to a call needs no lookup)."""
        call_id = self._ids.get(uniqueid)
        if call_id is None:
            call_id = _FIND_CALL.scalar(session, {"uniqueid": uniqueid})
            if call_id is not None:
                if len(self._ids) >= _ID_CACHE_SIZE:
                    self._ids.clear()
                self._ids[uniqueid] = call_id
        return call_id

    def _append(self, uniqueid: str, at: datetime, kind: str, detail: Mapping[str, Any]) -> bool:
        """Append one event to a known call; False if the call is unknown. A remembered id whose
        row was deleted meanwhile fails the foreign key: forgotten, and looked up again."""
        for _attempt in range(2):
            try:
                with transaction(self._sessions) as session:
                    call_id = self._known_id(session, uniqueid)
                    if call_id is None:
                        return False
                    self._add_event(session, call_id, at, kind, detail)
                    return True
            except IntegrityError:
                if in_batch() or self._ids.pop(uniqueid, None) is None:
                    raise
        return False

    # Separate so tests can widen the gap between "not there" and the insert.
    def _find_id(self, session: Session, uniqueid: str) -> int | None:
        found: int | None = _FIND_CALL.scalar(session, {"uniqueid": uniqueid})
        return found

    def _add_event(self, session: Session, call_id: int, at: datetime, kind: str, detail: Mapping[str, Any]) -> None:
        # A Core INSERT, not session.add(): the ORM's unit of work costs several times more CPU
        # per event, and events are the most frequent write of a busy day (docs/PERFORMANCE.md).
        # Held to the end of the writer's batch and sent with the batch's other events at once.
        insert_later(session, _INSERT_EVENT, {"call_id": call_id, "at": at, "kind": kind, "detail": dict(detail)})

    def _write_once(
        self,
        uniqueid: str,
        guard: str,
        values: Mapping[str, Any],
        at: datetime,
        kind: str,
        detail: Mapping[str, Any],
    ) -> bool:
        """Set ``values`` on the call only while its column ``guard`` is unset, and log the event once.

        One conditional UPDATE, so of two racing writers exactly one wins; a repeat changes
        nothing. Returns whether the call is known (True also for a repeat)."""
        params = {"p_uid": uniqueid, **{"p_" + name: value for name, value in values.items()}}
        with transaction(self._sessions) as session:
            call_id = _set_once(guard, tuple(values)).scalar(session, params)
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
        uniqueid = key(uniqueid, "uniqueid")
        linkedid = key(linkedid, "linkedid")
        require_aware(at)
        for attempt in range(2):
            found = self._arrive(uniqueid, linkedid, caller_number, dialed_number, channel, at, caller_name, attempt)
            if found is not None:
                return found
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _arrive(
        self,
        uniqueid: str,
        linkedid: str,
        caller_number: str,
        dialed_number: str,
        channel: str,
        at: datetime,
        caller_name: str,
        attempt: int,
    ) -> int | None:
        """One try of :meth:`call_arrived`; None when a new caller's contact lost a race to
        another writer's (the first try only): the next try finds that contact."""
        try:
            with transaction(self._sessions) as session:
                existing = self._find_id(session, uniqueid)
                if existing is not None:
                    return existing
                row = {
                    "uniqueid": uniqueid,
                    "linkedid": linkedid,
                    "caller_number": clip(caller_number, NUMBER_LEN),
                    "dialed_number": clip(dialed_number, NUMBER_LEN),
                    "channel": clip(channel, CHANNEL_LEN),
                    "arrived_at": at,
                }
                call_id: int = session.execute(_INSERT_CALL, row).scalar_one()
                detail: dict[str, Any] = {
                    "caller_number": row["caller_number"],
                    "dialed_number": row["dialed_number"],
                    "channel": row["channel"],
                }
                if caller_name:
                    detail["caller_name"] = caller_name.replace("\x00", "")
                self._add_event(session, call_id, at, "arrived", detail)
                # The call is one interaction of its caller's contact (issue 12 item 4): one
                # statement for a known number, in this transaction.
                link_call(session, uniqueid, detail["caller_number"], at)
                return call_id
        except IntegrityError:
            if in_batch():
                raise
            # Lost the race to another writer between our SELECT and INSERT: its row is
            # committed now. If there is still no row, the error was something else, or (once)
            # a new caller's identity another writer made at the same time.
            with self._sessions() as session:
                existing = self._find_id(session, uniqueid)
            if existing is None:
                if attempt == 0:
                    return None
                raise
            return existing

    def add_digits(self, uniqueid: str, digits: str, at: datetime) -> bool:
        """Append DTMF digits the caller entered. Returns False if the call is unknown."""
        require_aware(at)
        digits = clip(digits, DIGITS_LEN)
        with transaction(self._sessions) as session:
            # Appended in SQL so two writers cannot lose each other's digits.
            call_id = _ADD_DIGITS.scalar(session, {"p_uid": uniqueid, "p_digits": digits})
            if call_id is None:
                return False
            self._add_event(session, call_id, at, "digits", {"digits": digits})
            return True

    def mark_fallback(self, uniqueid: str, at: datetime) -> bool:
        """Note that the call reached the dialplan safety net. Returns False if the call is unknown.

        Idempotent: the flag and its event are written once.
        """
        require_aware(at)
        return self._write_once(uniqueid, "fallback", {"fallback": True}, at, "fallback", {})

    def call_ended(self, uniqueid: str, cause: int | None, cause_text: str | None, at: datetime) -> bool:
        """Record the hangup. Returns False if the call is unknown (e.g. the controller started
        mid-call, or the hangup overtook the arrival), True otherwise.

        Idempotent: AMI may report a hangup more than once; only the first is recorded, later
        ones change nothing and still return True.
        """
        require_aware(at)
        text = None if cause_text is None else clip(cause_text, CAUSE_TEXT_LEN)
        return self._write_once(
            uniqueid,
            "ended_at",
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
        require_aware(at)
        flow = clip(flow, FLOW_LEN)
        version = clip(version, FLOW_LEN)
        return self._write_once(
            uniqueid,
            "flow",
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
        require_aware(at)
        step: dict[str, Any] = clean(dict(detail or {}))
        step.update(flow=clip(flow, FLOW_LEN), node=clip(node, FLOW_LEN), node_kind=clip(kind, FLOW_LEN))
        return self._append(uniqueid, at, "ivr", step)

    def set_survey(self, uniqueid: str, score: int, at: datetime, agent_id: str | None = None) -> bool:
        """Record the caller's satisfaction score, 1 (非常满意) to 5 (非常不满意), about ``agent_id``.

        ``agent_id`` is the agent the caller rated (T7: the survey runs after the agent hangs up);
        None when the IVR cannot tell. Raises ValueError for any other score or an empty or
        over-long ``agent_id``. Returns False if the call is unknown. The first score is kept: a
        repeat changes nothing (its agent neither) and still returns True.
        """
        if isinstance(score, bool) or not isinstance(score, int) or score not in SURVEY_SCORES:
            raise ValueError(f"survey score must be an integer from 1 to 5, got {score!r}")
        require_aware(at)
        detail: dict[str, Any] = {"score": score}
        if agent_id is not None:
            detail["agent"] = agent_key(agent_id)
        return self._write_once(
            uniqueid,
            "survey_score",
            {"survey_score": score, "survey_agent_id": agent_id},
            at,
            "survey",
            detail,
        )

    def set_ivr_exit(self, uniqueid: str, exit: str, detail: str, at: datetime) -> bool:
        """Record how the call left the IVR (one of :data:`IVR_EXITS`) and e.g. the queue or number.

        Raises ValueError for an unknown ``exit``. Returns False if the call is unknown. A call
        leaves the IVR once: the first exit is kept and later ones (e.g. "abandoned" reported at
        hangup after the call went to a queue) change nothing and still return True.
        """
        if exit not in IVR_EXITS:
            raise ValueError(f"IVR exit must be one of {', '.join(IVR_EXITS)}; got {exit!r}")
        require_aware(at)
        detail = clip(detail, EXIT_DETAIL_LEN)
        return self._write_once(
            uniqueid,
            "ivr_exit",
            {"ivr_exit": exit, "ivr_exit_detail": detail},
            at,
            "ivr_exit",
            {"exit": exit, "detail": detail},
        )

    # --- ACD: queue, agent, wrap-up (issue 4) ----------------------------------------------------

    def _update(
        self, statement: Prepared, params: dict[str, Any], at: datetime, kind: str, detail: Mapping[str, Any]
    ) -> bool:
        """Run the call's UPDATE and log the event, in one transaction. False if the call is unknown."""
        with transaction(self._sessions) as session:
            call_id = statement.scalar(session, params)
            if call_id is None:
                return False
            self._add_event(session, call_id, at, kind, detail)
            return True

    def add_event(self, uniqueid: str, kind: str, detail: Mapping[str, Any], at: datetime) -> bool:
        """Append one step to the call's timeline: ring, ring_result, transfer, hold, callback_offer ….

        ``kind`` is clipped to 32 characters; ``detail`` must be JSON-serialisable (NUL is removed
        from its strings). Not idempotent: the same step may happen twice. Returns False if the
        call is unknown; raises ValueError for an empty ``kind`` or a naive ``at``.
        """
        require_aware(at)
        kind = clip(kind, KIND_LEN)
        if not kind:
            raise ValueError("an event needs a kind, got an empty string")
        cleaned: dict[str, Any] = clean(dict(detail))
        return self._append(uniqueid, at, kind, cleaned)

    def queue_entered(self, uniqueid: str, queue: str, skill: str | None, priority: int, at: datetime) -> bool:
        """The call entered ``queue`` asking for ``skill`` (None: any agent of the queue) at ``priority``.

        Queue, skill and priority are replaced by each entry (a transfer to another queue), but
        ``queued_at`` keeps the first: waiting time and the day's offered calls
        (:meth:`day_stats`) count from when the caller first queued. The status becomes "queued"
        unless the call has ended. Not idempotent: each entry is a step of the timeline.
        Returns False if the call is unknown; raises ValueError for an empty queue name, a
        priority that is not an integer or a naive ``at``.
        """
        require_aware(at)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ValueError(f"priority must be an integer, got {priority!r}")
        queue = clip(queue, QUEUE_LEN)
        if not queue:
            raise ValueError("queue must be named, got an empty string")
        skill = None if skill is None else (clip(skill, QUEUE_LEN) or None)
        return self._update(
            _QUEUE_ENTERED,
            {"p_uid": uniqueid, "p_queue": queue, "p_skill": skill, "p_priority": priority, "p_at": at},
            at,
            "queued",
            {"queue": queue, "skill": skill, "priority": priority},
        )

    def agent_answered(self, uniqueid: str, agent_id: str, at: datetime) -> bool:
        """``agent_id`` answered the call (also after a transfer to them).

        ``connected_at`` and ``answered_at`` keep the first answer (the call counts as answered
        from then on; an IVR self-service call is never "answered");
        ``agent_id`` always becomes this agent, the one who has the caller last. The status becomes
        "connected" unless the call has ended. Returns False if the call is unknown; raises
        ValueError for an empty or over-long ``agent_id`` or a naive ``at``.
        """
        agent = agent_key(agent_id)
        require_aware(at)
        with transaction(self._sessions) as session:
            call_id = _AGENT_ANSWERED.scalar(session, {"p_uid": uniqueid, "p_agent": agent, "p_at": at})
            if call_id is None:
                return False
            self._add_event(session, call_id, at, "agent_answered", {"agent": agent})
            # The contact's interaction says the same: its last agent is the returning caller's (T9).
            call_answered(session, uniqueid, agent, at)
            return True

    def _check_served(self, session: Session, uniqueid: str, agent_id: str, served: bool) -> None:
        if not served and served_in(session, uniqueid, agent_id) is False:
            raise NotServedError(f"agent {agent_id} did not serve call {uniqueid}")

    def set_wrapup(
        self, uniqueid: str, agent_id: str, ended_at: datetime, summary: str | None, *, served: bool = False
    ) -> bool:
        """``agent_id`` ended the wrap-up (T4) at ``ended_at``, with the call summary they wrote.

        The first call records the end (event "wrapup_ended") and the summary, unless None. A later
        call keeps that end and replaces the summary like :meth:`set_summary` (an agent's later
        edit, at ``ended_at``); repeating the same summary, or None, changes nothing. The summary is
        clipped to 4000 characters. Returns False if the call is unknown; raises ValueError for an
        empty or over-long ``agent_id`` or a naive ``ended_at``, and NotServedError, writing
        nothing, for a summary by an agent who did not serve the call (see :meth:`set_summary`).
        """
        agent = agent_key(agent_id)
        require_aware(ended_at)
        text = None if summary is None else clip(summary, SUMMARY_LEN)
        values: dict[str, Any] = {"wrapup_ended_at": ended_at}
        if text is not None:
            values["summary"] = text
        params = {"p_uid": uniqueid, **{"p_" + name: value for name, value in values.items()}}
        with transaction(self._sessions) as session:
            if text is not None:
                self._check_served(session, uniqueid, agent, served)
            # Conditional UPDATEs: of two racing writers one ends the wrap-up, the other edits.
            call_id = _set_once("wrapup_ended_at", tuple(values)).scalar(session, params)
            if call_id is not None:
                self._add_event(session, call_id, ended_at, "wrapup_ended", {"agent": agent})
                return True
            if text is not None and self._edit_summary(session, uniqueid, agent, text, ended_at):
                return True
            return self._find_id(session, uniqueid) is not None

    def set_summary(self, uniqueid: str, agent_id: str, summary: str, at: datetime, *, served: bool = False) -> bool:
        """``agent_id`` wrote or edited the call's summary (T4) at ``at``, during the wrap-up or later.

        Only an agent who served the call may (issue 11 item 4): the call's agent, or one who
        answered a leg of it before a transfer (:meth:`_served`); ``served=True`` is the
        controller vouching from memory for a leg the record does not name (a consulted agent
        who took the call over). Anyone else gets NotServedError and the summary is unchanged.
        Leaves the wrap-up's end alone (see :meth:`set_wrapup`). Logs a "summary" event when the
        text changes; the same text again changes nothing. Clipped to 4000 characters. Returns
        False if the call is unknown; raises ValueError for an empty or over-long ``agent_id`` or
        a naive ``at``.
        """
        agent = agent_key(agent_id)
        require_aware(at)
        text = clip(summary, SUMMARY_LEN)
        with transaction(self._sessions) as session:
            self._check_served(session, uniqueid, agent, served)
            if self._edit_summary(session, uniqueid, agent, text, at):
                return True
            return self._find_id(session, uniqueid) is not None

    def _edit_summary(self, session: Session, uniqueid: str, agent: str, text: str, at: datetime) -> bool:
        """Replace the summary if it differs, with a "summary" event; whether it was replaced."""
        call_id = _EDIT_SUMMARY.scalar(session, {"p_uid": uniqueid, "p_summary": text})
        if call_id is None:
            return False
        self._add_event(session, call_id, at, "summary", {"agent": agent})
        return True

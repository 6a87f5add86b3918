"""Agents' states in the database: where each agent stands now, and every change with its moment.

Issue 4 item 1: state changes are stored with timestamps; they feed the per-agent reports (A2)
through :meth:`AgentStore.time_in_states`, and :meth:`AgentStore.current` restores the agents
after a controller restart. The state machine itself (:mod:`cc_core.acd.agent_state`) stays pure:
the controller records what it decided here.

Like :mod:`cc_core.calls.store`, methods are synchronous and each is one transaction; the asyncio
controller runs them through ``asyncio.to_thread``. Text is clipped to the column widths, moments
are aware datetimes (any zone; they come back in UTC), and a repeated change is recorded once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, case, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cc_core.acd.model import AgentState
from cc_core.calendars.days import require_aware
from cc_core.calls import fields
from cc_core.db.models import AgentStateChange, CurrentAgentState, UTCDateTime, table_of
from cc_core.db.writer import Prepared, in_batch, transaction

# Column widths (see cc_core.db.models). The agent id is a key: refused when too long, never
# clipped (two agents must not become one); the rest is clipped to fit.
_AGENT_ID_LEN = 16
_REASON_LEN = 64
_UNIQUEID_LEN = 64
_EXTENSION_LEN = 32

_STATES = frozenset(state.value for state in AgentState)


@dataclass(frozen=True)
class AgentRow:
    """A read-only snapshot of one agent's current state (the ``agent_states`` row)."""

    agent_id: str
    state: AgentState
    state_since: datetime
    pause_reason: str | None
    wrapup_until: datetime | None
    extension: str | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: CurrentAgentState) -> AgentRow:
        return cls(
            agent_id=row.agent_id,
            state=AgentState(row.state),
            state_since=row.state_since,
            pause_reason=row.pause_reason,
            wrapup_until=row.wrapup_until,
            extension=row.extension,
            updated_at=row.updated_at,
        )


@dataclass(frozen=True)
class StateChange:
    """One recorded change of an agent's state."""

    agent_id: str
    at: datetime
    from_state: AgentState
    to_state: AgentState
    reason: str | None = None
    call_uniqueid: str | None = None

    @classmethod
    def from_row(cls, row: AgentStateChange) -> StateChange:
        return cls(
            agent_id=row.agent_id,
            at=row.at,
            from_state=AgentState(row.from_state),
            to_state=AgentState(row.to_state),
            reason=row.reason,
            call_uniqueid=row.call_uniqueid,
        )


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _agent_id(value: str) -> str:
    if not value or len(value) > _AGENT_ID_LEN or "\x00" in value:
        raise ValueError(f"agent_id must be 1 to {_AGENT_ID_LEN} characters without NUL, got {value!r}")
    return value


def _state(value: str, name: str) -> str:
    if value not in _STATES:
        known = ", ".join(state.value for state in AgentState)
        raise ValueError(f"{name} must be one of {known}; got {value!r}")
    return str(AgentState(value).value)


def _optional(value: str | None, limit: int) -> str | None:
    """Clipped text, or None for no text (None, or nothing left after removing NUL)."""
    if value is None:
        return None
    return fields.clip(value, limit) or None


def _window(since: datetime, until: datetime) -> None:
    require_aware(since)
    require_aware(until)
    if until < since:
        raise ValueError(f"the window ends ({until.isoformat()}) before it starts ({since.isoformat()})")


# Built once (SQLAlchemy computes the cache key of every new statement object, which costs more
# than the statement itself); the values come as parameters.
# Table-level (Core) statements: an ORM-enabled statement goes through the ORM's bulk
# persistence on every execution, several times the cost of the INSERT itself.
_CHANGES = table_of(AgentStateChange)
_CURRENT = table_of(CurrentAgentState)
_FIND_CHANGE = Prepared(
    select(_CHANGES.c.id).where(
        _CHANGES.c.agent_id == bindparam("agent_id"),
        _CHANGES.c.at == bindparam("at", type_=UTCDateTime()),
        _CHANGES.c.to_state == bindparam("to_state"),
    )
)
_INSERT_CHANGE = Prepared(insert(_CHANGES))
_UPSERTS: dict[tuple[str, bool], Prepared] = {}


def _upsert_statement(dialect: str, keep_extension: bool) -> Any:
    statement: postgresql.Insert | sqlite.Insert
    statement = postgresql.insert(_CURRENT) if dialect == "postgresql" else sqlite.insert(_CURRENT)
    new = statement.excluded
    row = _CURRENT.c
    extension: ColumnElement[Any] = func.coalesce(new.extension, row.extension) if keep_extension else new.extension
    return statement.on_conflict_do_update(
        index_elements=[row.agent_id],
        set_={
            "state": new.state,
            "state_since": case((row.state == new.state, row.state_since), else_=new.state_since),
            "pause_reason": new.pause_reason,
            "wrapup_until": new.wrapup_until,
            "extension": extension,
            "updated_at": new.updated_at,
        },
        where=row.state_since <= new.state_since,
    )


class AgentStore:
    """Reads and writes agents' states through a sessionmaker (see :func:`cc_core.db.session.make_sessionmaker`).

    ``clock`` gives ``updated_at`` (when a row was written); tests pass a fixed one.
    """

    def __init__(self, sessions: sessionmaker[Session], *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._sessions = sessions
        self._clock = clock

    # Separate so tests can widen the gap between "not there" and the insert.
    def _find_change(self, session: Session, agent_id: str, at: datetime, to_state: str) -> int | None:
        found: int | None = _FIND_CHANGE.scalar(session, {"agent_id": agent_id, "at": at, "to_state": to_state})
        return found

    def record(
        self,
        agent_id: str,
        at: datetime,
        from_state: str,
        to_state: str,
        *,
        reason: str | None = None,
        call_uniqueid: str | None = None,
        pause_reason: str | None = None,
        wrapup_until: datetime | None = None,
        extension: str | None = None,
    ) -> None:
        """Record that the agent went from ``from_state`` to ``to_state`` at ``at``.

        One transaction: the change is appended to the history and the agent's current row is
        created or updated. States are :class:`~cc_core.acd.model.AgentState` values (the enum or
        its strings); ``reason`` is why (a pause's reason, 未接听 …) and ``call_uniqueid`` the call
        the change is about. On the current row ``pause_reason`` and ``wrapup_until`` are set as
        given (None clears them); ``extension`` (where the agent is logged in) is kept when None
        is given, and cleared when the agent goes offline without one.

        The current row only moves forward: a change older than the row's ``state_since`` (two
        writes that finished out of order) goes into the history but leaves the row alone. A
        change to the state the agent is already in (wrap-up extended) keeps ``state_since``.

        Idempotent on (``agent_id``, ``at``, ``to_state``): a repeat, or a concurrent duplicate
        from another thread or process, changes nothing. Raises ValueError for an empty or
        over-long ``agent_id``, an unknown state, or a naive ``at`` or ``wrapup_until``.
        """
        agent_id = _agent_id(agent_id)
        from_state = _state(from_state, "from_state")
        to_state = _state(to_state, "to_state")
        require_aware(at)
        if wrapup_until is not None:
            require_aware(wrapup_until)
        change = {
            "agent_id": agent_id,
            "at": at,
            "from_state": from_state,
            "to_state": to_state,
            "reason": _optional(reason, _REASON_LEN),
            "call_uniqueid": _optional(call_uniqueid, _UNIQUEID_LEN),
        }
        current: dict[str, Any] = {
            "agent_id": agent_id,
            "state": to_state,
            "state_since": at,
            "pause_reason": _optional(pause_reason, _REASON_LEN),
            "wrapup_until": wrapup_until,
            "extension": _optional(extension, _EXTENSION_LEN),
            "updated_at": self._clock(),
        }
        try:
            with transaction(self._sessions) as session:
                if self._find_change(session, agent_id, at, to_state) is not None:
                    return
                # Core INSERT: the ORM's unit of work costs several times more CPU per change.
                _INSERT_CHANGE.run(session, change)
                self._upsert(session, current, keep_extension=to_state != AgentState.OFFLINE)
        except IntegrityError:
            if in_batch():
                raise
            # Lost the race to another writer of the same change between our SELECT and INSERT:
            # its change and row are committed now. If there is still no change, the error was
            # something else.
            with self._sessions() as session:
                found = self._find_change(session, agent_id, at, to_state)
            if found is None:
                raise

    @staticmethod
    def _upsert(session: Session, values: dict[str, Any], *, keep_extension: bool) -> None:
        """Create the agent's row or move it forward, in one statement (safe against a concurrent writer)."""
        dialect = session.get_bind().dialect.name
        statement = _UPSERTS.get((dialect, keep_extension))
        if statement is None:
            statement = _UPSERTS[(dialect, keep_extension)] = Prepared(_upsert_statement(dialect, keep_extension))
        statement.run(session, values)

    def current(self) -> dict[str, AgentRow]:
        """Every agent's current state by agent id (in id order), offline agents included."""
        with self._sessions() as session:
            rows = session.scalars(select(CurrentAgentState).order_by(CurrentAgentState.agent_id))
            return {row.agent_id: AgentRow.from_row(row) for row in rows}

    def changes(self, agent_id: str | None, since: datetime, until: datetime) -> list[StateChange]:
        """The changes with ``since <= at < until``, oldest first, of one agent or (None) of all.

        Changes at the same moment come in the order they were recorded. Raises ValueError for a
        naive bound or a window that ends before it starts.
        """
        _window(since, until)
        query = (
            select(AgentStateChange)
            .where(AgentStateChange.at >= since, AgentStateChange.at < until)
            .order_by(AgentStateChange.at, AgentStateChange.id)
        )
        if agent_id is not None:
            query = query.where(AgentStateChange.agent_id == agent_id)
        with self._sessions() as session:
            return [StateChange.from_row(row) for row in session.scalars(query)]

    def time_in_states(self, agent_id: str, since: datetime, until: datetime) -> dict[str, float]:
        """Seconds the agent spent in each state between ``since`` and ``until`` (every state a key).

        The state at ``since`` is the one of the last change at or before it; without one, the
        ``from_state`` of the first change in the window. Intervals are clipped at both edges and
        the last state runs until ``until``. An agent with no changes at all has zero everywhere.
        Raises ValueError for a naive bound or a window that ends before it starts.
        """
        _window(since, until)
        changes = AgentStateChange
        with self._sessions() as session:
            before = session.scalar(
                select(changes.to_state)
                .where(changes.agent_id == agent_id, changes.at <= since)
                .order_by(changes.at.desc(), changes.id.desc())
                .limit(1)
            )
            inside = session.execute(
                select(changes.at, changes.from_state, changes.to_state)
                .where(changes.agent_id == agent_id, changes.at > since, changes.at < until)
                .order_by(changes.at, changes.id)
            ).all()
        totals = dict.fromkeys((state.value for state in AgentState), 0.0)
        state = before if before is not None else (inside[0].from_state if inside else None)
        start = since
        for at, _, to_state in inside:
            if state is not None:
                totals[state] = totals.get(state, 0.0) + (at - start).total_seconds()
            state, start = to_state, at
        if state is not None:
            totals[state] = totals.get(state, 0.0) + (until - start).total_seconds()
        return totals

"""AgentStore on SQLite and PostgreSQL: current states, the change history, time per state, races."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cc_core.acd.agent_state import answered, call_ended, offer
from cc_core.acd.model import PAUSE_NO_ANSWER, Agent, AgentState, QueueConfig
from cc_core.acd.store import AgentRow, AgentStore, StateChange
from cc_core.calls.store import CallStore
from cc_core.db.models import AgentStateChange, CurrentAgentState
from cc_core.db.session import make_engine, make_sessionmaker

T0 = datetime(2024, 5, 1, 8, 0, 0, 250000, tzinfo=UTC)
WRITTEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BEIJING = timezone(timedelta(hours=8))
ALL_STATES = {state.value for state in AgentState}


def _s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


@pytest.fixture
def agents(store: CallStore) -> AgentStore:
    return AgentStore(store._sessions, clock=lambda: WRITTEN)


def _count(agents: AgentStore, model: type[AgentStateChange] | type[CurrentAgentState] = AgentStateChange) -> int:
    with agents._sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _day(agents: AgentStore, agent_id: str = "1001") -> None:
    """Log in at T0, a call 10:00–10:05 after ringing 20 s, 30 s wrap-up, a break 小休, log out."""
    agents.record(agent_id, T0, "offline", "available", reason="登录", extension="PJSIP/1001")
    agents.record(agent_id, T0 + _s(60), "available", "ringing", call_uniqueid="1714550460.1")
    agents.record(agent_id, T0 + _s(80), "ringing", "on_call", call_uniqueid="1714550460.1")
    agents.record(agent_id, T0 + _s(380), "on_call", "wrap_up", call_uniqueid="1714550460.1", wrapup_until=T0 + _s(410))
    agents.record(agent_id, T0 + _s(410), "wrap_up", "available", reason="话后处理结束")
    agents.record(agent_id, T0 + _s(500), "available", "paused", reason="小休", pause_reason="小休")
    agents.record(agent_id, T0 + _s(1400), "paused", "available")
    agents.record(agent_id, T0 + _s(1500), "available", "offline", reason="下班")


# --- round trips and restore ------------------------------------------------------------------


def test_round_trip_with_chinese_reasons(agents: AgentStore) -> None:
    agents.record("1001", T0, "offline", "available", reason="登录", extension="13800138000")
    agents.record("1001", T0 + _s(60), "available", "ringing", call_uniqueid="1714550460.1")
    agents.record(
        "1001", T0 + _s(80), AgentState.RINGING, AgentState.PAUSED, reason="未接听", pause_reason=PAUSE_NO_ANSWER
    )
    assert agents.changes("1001", T0, T0 + _s(3600)) == [
        StateChange("1001", T0, AgentState.OFFLINE, AgentState.AVAILABLE, "登录", None),
        StateChange("1001", T0 + _s(60), AgentState.AVAILABLE, AgentState.RINGING, None, "1714550460.1"),
        StateChange("1001", T0 + _s(80), AgentState.RINGING, AgentState.PAUSED, "未接听", None),
    ]
    assert agents.current() == {
        "1001": AgentRow(
            agent_id="1001",
            state=AgentState.PAUSED,
            state_since=T0 + _s(80),
            pause_reason="no answer",
            wrapup_until=None,
            extension="13800138000",
            updated_at=WRITTEN,
        )
    }
    [change] = agents.changes("1001", T0 + _s(80), T0 + _s(81))
    assert isinstance(change.to_state, AgentState) and change.to_state == "paused"


def test_current_restores_agents_after_a_restart(agents: AgentStore, db_url: str) -> None:
    agents.record("1001", T0, "offline", "available", extension="PJSIP/1001")
    agents.record("1001", T0 + _s(10), "available", "paused", reason="小休", pause_reason="小休")
    agents.record("1002", T0, "offline", "available", extension="13900139000")
    agents.record("1002", T0 + _s(5), "available", "ringing", call_uniqueid="u.1")
    agents.record("1002", T0 + _s(9), "ringing", "on_call", call_uniqueid="u.1")
    agents.record("1002", T0 + _s(99), "on_call", "wrap_up", call_uniqueid="u.1", wrapup_until=T0 + _s(129))
    agents.record("1003", T0, "offline", "available", extension="PJSIP/1003")
    agents.record("1003", T0 + _s(20), "available", "offline", reason="下班")

    # A new engine and store, as a restarted controller would have.
    engine = make_engine(db_url)
    try:
        restored = AgentStore(make_sessionmaker(engine)).current()
    finally:
        engine.dispose()
    assert list(restored) == ["1001", "1002", "1003"]
    assert restored["1001"] == AgentRow("1001", AgentState.PAUSED, T0 + _s(10), "小休", None, "PJSIP/1001", WRITTEN)
    assert restored["1002"] == AgentRow(
        "1002", AgentState.WRAP_UP, T0 + _s(99), None, T0 + _s(129), "13900139000", WRITTEN
    )
    # Logging out clears where the agent was logged in.
    assert restored["1003"] == AgentRow("1003", AgentState.OFFLINE, T0 + _s(20), None, None, None, WRITTEN)

    # The rows rebuild the pure model's agents.
    row = restored["1002"]
    agent = Agent(
        id=row.agent_id,
        name="王芳",
        state=row.state,
        state_since=row.state_since,
        wrapup_until=row.wrapup_until,
        pause_reason=row.pause_reason,
    )
    assert agent.state is AgentState.WRAP_UP and agent.wrapup_until == T0 + _s(129)


def test_records_what_the_state_machine_decides(agents: AgentStore) -> None:
    queue = QueueConfig(name="consult", wrapup_s=30)
    agent = Agent(id="1001", name="李娜", state=AgentState.AVAILABLE, state_since=T0)
    agents.record(agent.id, T0, "offline", agent.state, extension="PJSIP/1001")
    for step in (lambda a: offer(a, T0 + _s(1)), lambda a: answered(a, T0 + _s(6))):
        before, agent = agent, step(agent)
        agents.record(agent.id, agent.state_since, before.state, agent.state, call_uniqueid="u.9")
    before, agent = agent, call_ended(agent, T0 + _s(66), queue)
    agents.record(
        agent.id, agent.state_since, before.state, agent.state, call_uniqueid="u.9", wrapup_until=agent.wrapup_until
    )
    row = agents.current()["1001"]
    assert (row.state, row.state_since, row.wrapup_until) == (agent.state, agent.state_since, agent.wrapup_until)
    assert [c.to_state for c in agents.changes("1001", T0, T0 + _s(3600))] == [
        "available",
        "ringing",
        "on_call",
        "wrap_up",
    ]


def test_extension_is_kept_until_given_again_or_logged_out(agents: AgentStore) -> None:
    agents.record("1001", T0, "offline", "available", extension="PJSIP/1001")
    agents.record("1001", T0 + _s(1), "available", "ringing")
    assert agents.current()["1001"].extension == "PJSIP/1001"
    agents.record("1001", T0 + _s(2), "ringing", "available", extension="13800138000")
    assert agents.current()["1001"].extension == "13800138000"
    agents.record("1001", T0 + _s(3), "available", "offline")
    assert agents.current()["1001"].extension is None
    agents.record("1001", T0 + _s(4), "offline", "available", extension="PJSIP/1001")
    assert agents.current()["1001"].extension == "PJSIP/1001"


def test_pause_reason_and_wrapup_are_set_and_cleared(agents: AgentStore) -> None:
    agents.record("1001", T0, "on_call", "wrap_up", wrapup_until=T0 + _s(30))
    agents.record("1001", T0 + _s(10), "wrap_up", "paused", reason="小休", pause_reason="小休")
    row = agents.current()["1001"]
    assert (row.state, row.pause_reason, row.wrapup_until) == ("paused", "小休", None)
    agents.record("1001", T0 + _s(20), "paused", "available")
    row = agents.current()["1001"]
    assert (row.state, row.pause_reason, row.wrapup_until) == ("available", None, None)


def test_a_change_to_the_same_state_keeps_state_since(agents: AgentStore) -> None:
    """Wrap-up extended: recorded in the history, the wrap-up's end moves, its start does not."""
    agents.record("1001", T0, "on_call", "wrap_up", wrapup_until=T0 + _s(30))
    agents.record("1001", T0 + _s(25), "wrap_up", "wrap_up", reason="延长话后处理", wrapup_until=T0 + _s(90))
    row = agents.current()["1001"]
    assert (row.state, row.state_since, row.wrapup_until) == ("wrap_up", T0, T0 + _s(90))
    assert len(agents.changes("1001", T0, T0 + _s(100))) == 2
    assert agents.time_in_states("1001", T0, T0 + _s(90))["wrap_up"] == 90.0


def test_an_older_change_does_not_move_the_current_row_back(agents: AgentStore) -> None:
    """Two writes finishing out of order: the history has both, the row keeps the newer one."""
    agents.record("1001", T0 + _s(10), "ringing", "on_call", call_uniqueid="u.1")
    agents.record("1001", T0, "available", "ringing", call_uniqueid="u.1")
    row = agents.current()["1001"]
    assert (row.state, row.state_since) == ("on_call", T0 + _s(10))
    assert [c.to_state for c in agents.changes("1001", T0, T0 + _s(60))] == ["ringing", "on_call"]


def test_times_come_back_as_aware_utc(agents: AgentStore) -> None:
    local = datetime(2024, 5, 1, 16, 0, tzinfo=BEIJING)  # 08:00 UTC
    agents.record("1001", local, "on_call", "wrap_up", wrapup_until=local + _s(30))
    row = agents.current()["1001"]
    [change] = agents.changes("1001", local, local + _s(1))
    for value in (row.state_since, row.wrapup_until, row.updated_at, change.at):
        assert value is not None
        assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
    assert row.state_since == local and row.state_since.hour == 8
    assert row.wrapup_until == datetime(2024, 5, 1, 8, 0, 30, tzinfo=UTC)


def test_updated_at_comes_from_the_clock(store: CallStore) -> None:
    before = datetime.now(UTC)
    AgentStore(store._sessions).record("1001", T0, "offline", "available")
    assert before <= AgentStore(store._sessions).current()["1001"].updated_at <= datetime.now(UTC)


# --- the history ------------------------------------------------------------------------------


def test_changes_are_oldest_first_then_in_recording_order(agents: AgentStore) -> None:
    agents.record("1002", T0 + _s(30), "available", "ringing")
    agents.record("1001", T0 + _s(10), "available", "ringing")
    agents.record("1001", T0, "offline", "available")
    # Two changes at the same moment (an offer that failed at once): recording order.
    agents.record("1001", T0 + _s(20), "ringing", "available", reason="未接听")
    agents.record("1001", T0 + _s(20), "available", "paused", reason="设备不可达")
    agents.record("1002", T0, "offline", "available")
    moments = [(c.agent_id, c.at, c.to_state) for c in agents.changes(None, T0, T0 + _s(60))]
    assert moments == [
        ("1001", T0, "available"),
        ("1002", T0, "available"),
        ("1001", T0 + _s(10), "ringing"),
        ("1001", T0 + _s(20), "available"),
        ("1001", T0 + _s(20), "paused"),
        ("1002", T0 + _s(30), "ringing"),
    ]
    assert [c.to_state for c in agents.changes("1002", T0, T0 + _s(60))] == ["available", "ringing"]
    assert agents.changes("9999", T0, T0 + _s(60)) == []


def test_changes_window_includes_since_and_excludes_until(agents: AgentStore) -> None:
    _day(agents)
    window = [c.at for c in agents.changes("1001", T0 + _s(60), T0 + _s(410))]
    assert window == [T0 + _s(60), T0 + _s(80), T0 + _s(380)]
    assert agents.changes("1001", T0 + _s(61), T0 + _s(79)) == []
    assert agents.changes("1001", T0 + _s(60), T0 + _s(60)) == []
    # The bounds may be in any zone.
    assert [c.at for c in agents.changes(None, (T0 + _s(60)).astimezone(BEIJING), T0 + _s(81))] == [
        T0 + _s(60),
        T0 + _s(80),
    ]
    assert len(agents.changes(None, T0 - timedelta(days=1), T0 + timedelta(days=1))) == 8


# --- time in states (per-agent reports) -------------------------------------------------------


def test_time_in_states_over_a_whole_day(agents: AgentStore) -> None:
    _day(agents)
    times = agents.time_in_states("1001", T0 - _s(100), T0 + _s(1600))
    assert times == {
        "offline": 100.0 + 100.0,  # before logging in (the first change's from_state) and after logout
        "available": 60.0 + 90.0 + 100.0,
        "ringing": 20.0,
        "on_call": 300.0,
        "wrap_up": 30.0,
        "paused": 900.0,
    }
    assert sum(times.values()) == 1700.0


def test_time_in_states_clips_intervals_at_the_window_edges(agents: AgentStore) -> None:
    _day(agents)
    # 09:01:30 – 09:20: inside the call (started at +80), through wrap-up, into the break.
    times = agents.time_in_states("1001", T0 + _s(90), T0 + _s(1000))
    assert times == {
        "offline": 0.0,
        "available": 90.0,
        "ringing": 0.0,
        "on_call": 290.0,
        "wrap_up": 30.0,
        "paused": 500.0,
    }
    # A window inside one interval: all of it in that state.
    assert agents.time_in_states("1001", T0 + _s(600), T0 + _s(700.5))["paused"] == 100.5
    # A change exactly at the window's start sets the state from there.
    times = agents.time_in_states("1001", T0 + _s(80), T0 + _s(100))
    assert (times["on_call"], times["ringing"]) == (20.0, 0.0)
    # The last state runs until the window's end, long after the last change.
    assert agents.time_in_states("1001", T0 + _s(1500), T0 + _s(5100))["offline"] == 3600.0


def test_time_in_states_of_an_agent_without_changes(agents: AgentStore) -> None:
    _day(agents, "1001")
    times = agents.time_in_states("1002", T0, T0 + _s(60))
    assert times == dict.fromkeys(ALL_STATES, 0.0)
    assert agents.time_in_states("1001", T0, T0) == dict.fromkeys(ALL_STATES, 0.0)


def test_time_in_states_keeps_agents_apart_and_takes_any_zone(agents: AgentStore) -> None:
    _day(agents, "1001")
    agents.record("1002", T0 + _s(30), "offline", "available")
    agents.record("1002", T0 + _s(90), "available", "paused", reason="培训", pause_reason="培训")
    since = (T0 + _s(0)).astimezone(BEIJING)
    times = agents.time_in_states("1002", since, T0 + _s(120))
    assert (times["offline"], times["available"], times["paused"]) == (30.0, 60.0, 30.0)
    assert set(times) == ALL_STATES


# --- idempotency and races --------------------------------------------------------------------


def test_a_repeated_change_is_recorded_once(agents: AgentStore) -> None:
    agents.record("1001", T0, "offline", "available", reason="登录", extension="PJSIP/1001")
    agents.record("1001", T0 + _s(5), "available", "paused", reason="小休", pause_reason="小休")
    # A repeat of the older change, with other details: nothing moves, not even the current row.
    agents.record("1001", T0, "offline", "available", reason="再次", extension="13800138000")
    agents.record("1001", T0 + _s(5), "available", "paused", reason="again", pause_reason="again")
    assert _count(agents) == 2
    assert [c.reason for c in agents.changes("1001", T0, T0 + _s(10))] == ["登录", "小休"]
    assert agents.current()["1001"] == AgentRow(
        "1001", AgentState.PAUSED, T0 + _s(5), "小休", None, "PJSIP/1001", WRITTEN
    )
    # The same moment in another zone is the same change; another state at that moment is not.
    agents.record("1001", (T0 + _s(5)).astimezone(BEIJING), "available", "paused", reason="小休")
    agents.record("1001", T0 + _s(5), "paused", "available")
    assert _count(agents) == 3


class _RacingAgents(AgentStore):
    """Both threads look the change up, find nothing, and only then insert."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.barrier = threading.Barrier(2, timeout=10)
        self.lookups = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    def _find_change(self, session: Session, agent_id: str, at: datetime, to_state: str) -> int | None:
        found = super()._find_change(session, agent_id, at, to_state)
        with self._lock:
            self.lookups += 1
        if not getattr(self._local, "waited", False):
            self._local.waited = True
            self.barrier.wait()
        return found


def test_concurrent_repeats_make_one_change(agents: AgentStore) -> None:
    racing = _RacingAgents(agents._sessions, clock=lambda: WRITTEN)

    def record(_: int) -> None:
        racing.record("1001", T0, "available", "paused", reason="小休", pause_reason="小休", extension="PJSIP/1001")

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(record, range(2)))
    # Two lookups before the inserts, one more by the loser after its IntegrityError.
    assert racing.lookups == 3
    assert _count(agents) == 1
    assert agents.current() == {"1001": AgentRow("1001", AgentState.PAUSED, T0, "小休", None, "PJSIP/1001", WRITTEN)}


def test_many_threads_same_and_different_changes(agents: AgentStore) -> None:
    barrier = threading.Barrier(8, timeout=10)

    def work(n: int) -> None:
        if n < 8:
            barrier.wait()
        # Four agents, each going available → paused at one moment, sent four times over.
        agents.record(f"100{n % 4}", T0 + _s(n % 4), "available", "paused", reason="小休", pause_reason="小休")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(32)))
    assert _count(agents) == 4
    assert _count(agents, CurrentAgentState) == 4
    current = agents.current()
    assert {agent_id: row.state_since for agent_id, row in current.items()} == {f"100{n}": T0 + _s(n) for n in range(4)}


def test_concurrent_different_changes_of_one_agent_keep_the_newest(agents: AgentStore) -> None:
    barrier = threading.Barrier(6, timeout=10)
    states = ["available", "ringing", "on_call", "wrap_up", "available", "paused"]

    def work(n: int) -> None:
        barrier.wait()
        agents.record("1001", T0 + _s(n), states[n - 1] if n else "offline", states[n])

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(work, range(6)))
    assert _count(agents) == 6
    row = agents.current()["1001"]
    assert (row.state, row.state_since) == ("paused", T0 + _s(5))
    assert [c.to_state for c in agents.changes("1001", T0, T0 + _s(6))] == states


# --- what is refused or clipped ---------------------------------------------------------------


def test_naive_datetimes_are_refused(agents: AgentStore) -> None:
    naive = datetime(2024, 5, 1, 8, 0)
    with pytest.raises(ValueError, match="naive"):
        agents.record("1001", naive, "offline", "available")
    with pytest.raises(ValueError, match="naive"):
        agents.record("1001", T0, "on_call", "wrap_up", wrapup_until=naive)
    assert _count(agents) == 0 and _count(agents, CurrentAgentState) == 0
    with pytest.raises(ValueError, match="naive"):
        agents.changes(None, naive, T0)
    with pytest.raises(ValueError, match="naive"):
        agents.changes("1001", T0, naive)
    with pytest.raises(ValueError, match="naive"):
        agents.time_in_states("1001", naive, T0)
    with pytest.raises(ValueError, match="naive"):
        agents.time_in_states("1001", T0, naive)


def test_a_window_that_ends_before_it_starts_is_refused(agents: AgentStore) -> None:
    with pytest.raises(ValueError, match="before it starts"):
        agents.changes(None, T0, T0 - _s(1))
    with pytest.raises(ValueError, match="before it starts"):
        agents.time_in_states("1001", T0, T0 - _s(1))


@pytest.mark.parametrize(
    ("from_state", "to_state", "message"),
    [
        ("offline", "busy", "to_state"),
        ("logged_in", "available", "from_state"),
        ("Offline", "available", "from_state"),
        ("offline", "", "to_state"),
        ("offline", "on call", "to_state"),
    ],
)
def test_unknown_states_are_refused(agents: AgentStore, from_state: str, to_state: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        agents.record("1001", T0, from_state, to_state)
    assert _count(agents) == 0 and _count(agents, CurrentAgentState) == 0


@pytest.mark.parametrize("agent_id", ["", "1" * 17, "10\x0001"])
def test_agent_id_must_fit(agents: AgentStore, agent_id: str) -> None:
    with pytest.raises(ValueError, match="agent_id"):
        agents.record(agent_id, T0, "offline", "available")
    assert _count(agents) == 0


def test_every_state_round_trips(agents: AgentStore) -> None:
    previous = AgentState.OFFLINE
    for n, state in enumerate([*AgentState, AgentState.OFFLINE]):
        agents.record("1001", T0 + _s(n), previous, state)
        previous = state
    assert [c.to_state for c in agents.changes("1001", T0, T0 + _s(60))] == [*AgentState, AgentState.OFFLINE]


def test_long_and_odd_values_are_clipped(agents: AgentStore) -> None:
    agents.record(
        "1" * 16,
        T0,
        "available",
        "paused",
        reason="很长的暂停原因" * 20 + "\x00",
        call_uniqueid="9" * 80,
        pause_reason="小休\x00" * 40,
        extension="PJSIP/" + "x" * 40,
    )
    [change] = agents.changes("1" * 16, T0, T0 + _s(1))
    assert change.reason == ("很长的暂停原因" * 20)[:64]
    assert change.call_uniqueid == "9" * 64
    row = agents.current()["1" * 16]
    assert row.pause_reason == ("小休" * 40)[:64]
    assert row.extension == ("PJSIP/" + "x" * 40)[:32]
    # Nothing left after removing NUL is no text at all.
    agents.record("1002", T0, "available", "paused", reason="\x00", pause_reason="", extension="\x00")
    [change] = agents.changes("1002", T0, T0 + _s(1))
    row = agents.current()["1002"]
    assert (change.reason, row.pause_reason, row.extension) == (None, None, None)

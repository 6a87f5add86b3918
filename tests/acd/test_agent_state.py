"""The agent state machine (issue 4 items 1, 4, 5, 11; T4): every transition, valid and refused.

Every moment is passed in; nothing reads the clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from cc_core.acd import agent_state as sm
from cc_core.acd.agent_state import AgentStateError
from cc_core.acd.model import PAUSE_NO_ANSWER, PAUSE_UNREACHABLE, Agent, AgentState, QueueConfig
from cc_core.errors import HotlineError

T0 = datetime(2026, 6, 8, 1, 0, tzinfo=UTC)  # 09:00 in Beijing
LATER = T0 + timedelta(minutes=5)
QUEUE = QueueConfig(name="general", wrapup_s=30, max_missed_before_pause=2)

OFFLINE = AgentState.OFFLINE
AVAILABLE = AgentState.AVAILABLE
RINGING = AgentState.RINGING
ON_CALL = AgentState.ON_CALL
WRAP_UP = AgentState.WRAP_UP
PAUSED = AgentState.PAUSED


def agent(state: AgentState = AVAILABLE, **changes: object) -> Agent:
    """An agent in ``state``, consistent with it (a call counted on call, a wrap-up end in wrap-up)."""
    fields: dict[str, object] = {
        "id": "1001",
        "name": "张伟",
        "state": state,
        "state_since": T0,
        "skills": {"pension": 3},
        "queues": frozenset({"general"}),
        "chat_capacity": 2,
    }
    if state is ON_CALL:
        fields["active_voice"] = 1
    if state is WRAP_UP:
        fields["wrapup_until"] = T0 + timedelta(seconds=30)
    if state is PAUSED:
        fields["pause_reason"] = "break"
    fields.update(changes)
    return Agent(**fields)  # type: ignore[arg-type]


# ---- which events each state accepts ----------------------------------------------------------

Event = Callable[[Agent], Agent]
EVENTS: dict[str, tuple[Event, set[AgentState]]] = {
    "login": (lambda a: sm.login(a, LATER), {OFFLINE}),
    "logout": (lambda a: sm.logout(a, LATER), {AVAILABLE, PAUSED, WRAP_UP}),
    "pause": (lambda a: sm.pause(a, LATER, "lunch"), {AVAILABLE, WRAP_UP}),
    "resume": (lambda a: sm.resume(a, LATER), {PAUSED}),
    "offer": (lambda a: sm.offer(a, LATER), {AVAILABLE}),
    "answered": (lambda a: sm.answered(a, LATER), {RINGING}),
    "not_answered": (lambda a: sm.not_answered(a, LATER, QUEUE), {RINGING}),
    "ring_cancelled": (lambda a: sm.ring_cancelled(a, LATER), {RINGING}),
    "call_ended": (lambda a: sm.call_ended(a, LATER, QUEUE), {ON_CALL}),
    "end_wrapup_early": (lambda a: sm.end_wrapup_early(a, LATER), {WRAP_UP}),
    "extend_wrapup": (lambda a: sm.extend_wrapup(a, T0, 60), {WRAP_UP}),
    "unreachable": (lambda a: sm.unreachable(a, LATER), set(AgentState) - {OFFLINE}),
    "reachable": (lambda a: sm.reachable(a, LATER), set(AgentState) - {OFFLINE}),
    "chat_started": (lambda a: sm.chat_started(a, LATER), set(AgentState) - {OFFLINE}),
}
PAIRS = [(name, state) for name in EVENTS for state in AgentState]


@pytest.mark.parametrize(("event", "state"), PAIRS, ids=[f"{e}-{s.value}" for e, s in PAIRS])
def test_each_event_is_accepted_exactly_in_its_states(event: str, state: AgentState) -> None:
    apply, allowed = EVENTS[event]
    before = agent(state)
    if state in allowed:
        after = apply(before)
        assert isinstance(after, Agent)
        assert before == agent(state)  # the old value is untouched: transitions return a new agent
    else:
        with pytest.raises(AgentStateError, match=r"agent 1001: cannot .* while"):
            apply(before)


def test_agent_state_error_is_a_hotline_error_with_a_clear_message() -> None:
    with pytest.raises(HotlineError) as caught:
        sm.answered(agent(AVAILABLE), LATER)
    assert str(caught.value) == "agent 1001: cannot answer while available: only when ringing"


@pytest.mark.parametrize(
    ("start", "event"),
    [
        (OFFLINE, lambda a: sm.login(a, LATER)),
        (AVAILABLE, lambda a: sm.logout(a, LATER)),
        (AVAILABLE, lambda a: sm.pause(a, LATER, "lunch")),
        (PAUSED, lambda a: sm.resume(a, LATER)),
        (AVAILABLE, lambda a: sm.offer(a, LATER)),
        (RINGING, lambda a: sm.answered(a, LATER)),
        (RINGING, lambda a: sm.not_answered(a, LATER, QUEUE)),
        (RINGING, lambda a: sm.ring_cancelled(a, LATER)),
        (ON_CALL, lambda a: sm.call_ended(a, LATER, QUEUE)),
        (WRAP_UP, lambda a: sm.end_wrapup_early(a, LATER)),
        (AVAILABLE, lambda a: sm.unreachable(a, LATER)),
    ],
)
def test_every_change_of_state_sets_state_since(start: AgentState, event: Event) -> None:
    after = event(agent(start))
    assert after.state is not start
    assert after.state_since == LATER


# ---- logging in and out -------------------------------------------------------------------------


def test_login_makes_the_agent_available_and_restarts_the_idle_clock() -> None:
    before = agent(OFFLINE, last_ended_at=T0 - timedelta(days=1), missed_in_row=1, device_reachable=False)
    after = sm.login(before, LATER)
    assert after.state is AVAILABLE
    assert after.state_since == LATER
    assert after.last_ended_at is None
    assert after.idle_since == LATER  # yesterday's last call does not make them the longest idle
    assert after.missed_in_row == 0
    assert after.device_reachable


def test_login_with_an_unregistered_phone_pauses_the_agent_at_once() -> None:
    after = sm.login(agent(OFFLINE), LATER, reachable=False)
    assert after.state is PAUSED
    assert after.pause_reason == PAUSE_UNREACHABLE
    assert not after.device_reachable


@pytest.mark.parametrize("state", [AVAILABLE, PAUSED, WRAP_UP])
def test_logout_goes_offline_and_clears_pause_and_wrapup(state: AgentState) -> None:
    after = sm.logout(agent(state), LATER)
    assert after.state is OFFLINE
    assert after.state_since == LATER
    assert after.pause_reason is None
    assert after.wrapup_until is None


def test_logout_is_refused_with_chats_open() -> None:
    with pytest.raises(AgentStateError, match="1 chat"):
        sm.logout(agent(AVAILABLE, active_chat=1), LATER)


def test_logout_is_refused_during_a_call_or_a_ring() -> None:
    for state in (RINGING, ON_CALL):
        with pytest.raises(AgentStateError, match="cannot log out while"):
            sm.logout(agent(state), LATER)


# ---- pause and resume -----------------------------------------------------------------------


def test_pause_keeps_the_reason() -> None:
    after = sm.pause(agent(AVAILABLE), LATER, "  培训  ")
    assert after.state is PAUSED
    assert after.pause_reason == "培训"


def test_pause_during_wrapup_replaces_the_rest_of_it() -> None:
    after = sm.pause(agent(WRAP_UP, wrapup_extended=True), LATER, "break")
    assert after.state is PAUSED
    assert after.wrapup_until is None
    assert not after.wrapup_extended


def test_pause_needs_a_reason() -> None:
    with pytest.raises(AgentStateError, match="needs a reason"):
        sm.pause(agent(AVAILABLE), LATER, "  ")


def test_resume_makes_available_and_forgets_missed_offers() -> None:
    after = sm.resume(agent(PAUSED, pause_reason=PAUSE_NO_ANSWER, missed_in_row=2), LATER)
    assert after.state is AVAILABLE
    assert after.pause_reason is None
    assert after.missed_in_row == 0
    assert after.state_since == LATER


def test_resume_is_refused_while_the_phone_is_unreachable() -> None:
    paused = agent(PAUSED, pause_reason=PAUSE_UNREACHABLE, device_reachable=False)
    with pytest.raises(AgentStateError, match="unreachable"):
        sm.resume(paused, LATER)
    assert sm.resume(sm.reachable(paused, LATER), LATER).state is AVAILABLE


# ---- the phone ------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [AVAILABLE, RINGING])
def test_an_unreachable_phone_pauses_an_available_or_ringing_agent_at_once(state: AgentState) -> None:
    after = sm.unreachable(agent(state), LATER)
    assert after.state is PAUSED
    assert after.pause_reason == PAUSE_UNREACHABLE
    assert after.state_since == LATER
    assert not after.device_reachable


@pytest.mark.parametrize("state", [ON_CALL, WRAP_UP, PAUSED])
def test_an_unreachable_phone_is_only_noted_while_busy_or_paused(state: AgentState) -> None:
    before = agent(state)
    after = sm.unreachable(before, LATER)
    assert after.state is state
    assert after.state_since == before.state_since
    assert not after.device_reachable


def test_after_wrapup_an_agent_with_an_unreachable_phone_is_paused_not_available() -> None:
    down = sm.unreachable(agent(WRAP_UP), LATER)
    for back in (sm.tick(down, T0 + timedelta(minutes=10)), sm.end_wrapup_early(down, LATER)):
        assert back.state is PAUSED
        assert back.pause_reason == PAUSE_UNREACHABLE


def test_reachable_again_keeps_the_state() -> None:
    paused = sm.unreachable(agent(AVAILABLE), LATER)
    after = sm.reachable(paused, LATER + timedelta(seconds=5))
    assert after.device_reachable
    assert after.state is PAUSED  # the agent resumes themselves
    assert after.state_since == LATER


# ---- a call ---------------------------------------------------------------------------------------


def test_offer_rings_the_agent() -> None:
    after = sm.offer(agent(AVAILABLE), LATER)
    assert after.state is RINGING
    assert after.state_since == LATER


def test_offer_is_refused_on_an_unreachable_phone_or_without_voice_capacity() -> None:
    with pytest.raises(AgentStateError, match="unreachable"):
        sm.offer(agent(AVAILABLE, device_reachable=False), LATER)
    with pytest.raises(AgentStateError, match="no voice capacity"):
        sm.offer(agent(AVAILABLE, voice_capacity=0), LATER)


def test_answered_counts_the_call_and_clears_misses() -> None:
    after = sm.answered(agent(RINGING, missed_in_row=1), LATER)
    assert after.state is ON_CALL
    assert after.active_voice == 1
    assert after.missed_in_row == 0


def test_a_missed_offer_makes_available_again_with_one_miss() -> None:
    after = sm.not_answered(agent(RINGING), LATER, QUEUE)
    assert after.state is AVAILABLE
    assert after.missed_in_row == 1
    assert after.state_since == LATER


def test_the_second_miss_in_a_row_pauses_with_no_answer() -> None:
    once = sm.not_answered(sm.offer(agent(AVAILABLE), T0), LATER, QUEUE)
    twice = sm.not_answered(sm.offer(once, LATER), LATER + timedelta(seconds=20), QUEUE)
    assert twice.state is PAUSED
    assert twice.pause_reason == PAUSE_NO_ANSWER == "no answer"
    assert twice.missed_in_row == 2


@pytest.mark.parametrize(("max_missed", "misses_to_pause"), [(1, 1), (2, 2), (3, 3)])
def test_the_queue_decides_how_many_misses_pause(max_missed: int, misses_to_pause: int) -> None:
    queue = dataclasses.replace(QUEUE, max_missed_before_pause=max_missed)
    current = agent(AVAILABLE)
    for miss in range(1, misses_to_pause + 1):
        current = sm.not_answered(sm.offer(current, LATER), LATER, queue)
        assert (current.state is PAUSED) == (miss == misses_to_pause)


def test_an_answered_call_between_misses_starts_the_count_again() -> None:
    current = sm.not_answered(sm.offer(agent(AVAILABLE), T0), T0, QUEUE)
    current = sm.call_ended(sm.answered(sm.offer(current, T0), T0), T0, dataclasses.replace(QUEUE, wrapup_s=0))
    current = sm.not_answered(sm.offer(current, LATER), LATER, QUEUE)
    assert current.state is AVAILABLE
    assert current.missed_in_row == 1


def test_a_ring_cancelled_by_the_caller_is_not_a_miss() -> None:
    after = sm.ring_cancelled(agent(RINGING, missed_in_row=1), LATER)
    assert after.state is AVAILABLE
    assert after.missed_in_row == 1


def test_call_ended_starts_the_queues_wrapup() -> None:
    after = sm.call_ended(agent(ON_CALL), LATER, QUEUE)
    assert after.state is WRAP_UP
    assert after.state_since == LATER
    assert after.wrapup_until == LATER + timedelta(seconds=30)
    assert not after.wrapup_extended
    assert after.last_ended_at == LATER
    assert after.active_voice == 0


def test_call_ended_without_wrapup_goes_straight_to_available() -> None:
    after = sm.call_ended(agent(ON_CALL), LATER, dataclasses.replace(QUEUE, wrapup_s=0))
    assert after.state is AVAILABLE
    assert after.wrapup_until is None
    assert after.last_ended_at == LATER


# ---- wrap-up (T4) ---------------------------------------------------------------------------------


def test_wrapup_ends_by_itself_at_its_end_and_not_before() -> None:
    wrap = sm.call_ended(agent(ON_CALL), T0, QUEUE)
    assert sm.tick(wrap, T0 + timedelta(seconds=29)) is wrap
    done = sm.tick(wrap, T0 + timedelta(seconds=30))
    assert done.state is AVAILABLE
    assert done.wrapup_until is None


def test_a_late_tick_dates_the_change_at_the_wrapups_end() -> None:
    wrap = sm.call_ended(agent(ON_CALL), T0, QUEUE)
    done = sm.tick(wrap, T0 + timedelta(minutes=3))
    assert done.state_since == T0 + timedelta(seconds=30)


@pytest.mark.parametrize("state", [OFFLINE, AVAILABLE, RINGING, ON_CALL, PAUSED])
def test_tick_leaves_other_states_alone(state: AgentState) -> None:
    before = agent(state)
    assert sm.tick(before, T0 + timedelta(days=1)) is before


def test_a_wrapup_without_an_end_does_not_last_for_ever() -> None:
    restored = agent(WRAP_UP, wrapup_until=None)
    assert sm.tick(restored, LATER).state is AVAILABLE


def test_end_wrapup_early() -> None:
    after = sm.end_wrapup_early(sm.call_ended(agent(ON_CALL), T0, QUEUE), T0 + timedelta(seconds=10))
    assert after.state is AVAILABLE
    assert after.state_since == T0 + timedelta(seconds=10)


def test_wrapup_can_be_extended_once_only() -> None:
    wrap = sm.call_ended(agent(ON_CALL), T0, QUEUE)
    longer = sm.extend_wrapup(wrap, T0 + timedelta(seconds=20), 60)
    assert longer.wrapup_until == T0 + timedelta(seconds=90)
    assert longer.wrapup_extended
    assert longer.state is WRAP_UP
    assert longer.state_since == wrap.state_since  # not a change of state
    assert sm.tick(longer, T0 + timedelta(seconds=89)).state is WRAP_UP
    with pytest.raises(AgentStateError, match="already been extended once"):
        sm.extend_wrapup(longer, T0 + timedelta(seconds=30), 60)


def test_an_extension_asked_just_after_the_end_counts_from_now() -> None:
    wrap = sm.call_ended(agent(ON_CALL), T0, QUEUE)
    late = T0 + timedelta(seconds=35)  # tick has not run yet
    assert sm.extend_wrapup(wrap, late, 60).wrapup_until == late + timedelta(seconds=60)


@pytest.mark.parametrize("seconds", [0, -5])
def test_an_extension_must_be_positive(seconds: int) -> None:
    with pytest.raises(AgentStateError, match="positive"):
        sm.extend_wrapup(agent(WRAP_UP), T0, seconds)


def test_a_new_wrapup_may_be_extended_again() -> None:
    first = sm.extend_wrapup(sm.call_ended(agent(ON_CALL), T0, QUEUE), T0, 60)
    again = sm.call_ended(sm.answered(sm.offer(sm.end_wrapup_early(first, T0), T0), T0), LATER, QUEUE)
    assert not again.wrapup_extended
    assert sm.extend_wrapup(again, LATER, 30).wrapup_extended


# ---- chat load ------------------------------------------------------------------------------------


def test_chats_change_the_load_not_the_voice_state() -> None:
    start = agent(AVAILABLE, chat_capacity=2)
    one = sm.chat_started(start, LATER)
    two = sm.chat_started(one, LATER)
    assert (one.active_chat, two.active_chat) == (1, 2)
    assert two.state is AVAILABLE
    assert two.state_since == start.state_since
    assert start.occupancy < one.occupancy < two.occupancy
    with pytest.raises(AgentStateError, match="2 of 2 chats"):
        sm.chat_started(two, LATER)
    assert sm.chat_ended(two, LATER).active_chat == 1


def test_a_chat_can_run_during_a_call() -> None:
    assert sm.chat_started(agent(ON_CALL), LATER).state is ON_CALL


def test_chat_ended_without_a_chat_is_refused() -> None:
    with pytest.raises(AgentStateError, match="no chat is open"):
        sm.chat_ended(agent(AVAILABLE), LATER)


# ---- the values -----------------------------------------------------------------------------------


def test_occupancy_weighs_voice_and_chat() -> None:
    assert agent(AVAILABLE, chat_capacity=0).occupancy == 0.0
    assert agent(ON_CALL, chat_capacity=0).occupancy == 1.0
    # capacity 1 call + 2 chats at half weight = 2.0; one chat = 0.5 of it
    assert agent(AVAILABLE, chat_capacity=2, active_chat=1).occupancy == pytest.approx(0.25)
    assert agent(AVAILABLE, voice_capacity=0, chat_capacity=0).occupancy == 1.0


def test_idle_since_is_the_end_of_the_last_call_else_the_state_change() -> None:
    assert agent(AVAILABLE).idle_since == T0
    assert agent(AVAILABLE, last_ended_at=T0 - timedelta(minutes=1)).idle_since == T0 - timedelta(minutes=1)


@pytest.mark.parametrize(
    "changes",
    [
        {"state_since": datetime(2026, 6, 8, 9, 0)},  # naive
        {"state_since": datetime(2026, 6, 8, 9, 0, tzinfo=timezone(timedelta(hours=8)))},  # not UTC
        {"skills": {"pension": 6}},
        {"skills": {"pension": 0}},
        {"chat_capacity": -1},
    ],
)
def test_agent_values_are_checked(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        agent(AVAILABLE, **changes)

"""Every refusal of the agent state machine, word for word (issue 12, "First: tests that would
catch a broken refactor"; issue 4 items 1, 4, 5, 11).

The controller hands these messages to the agent as they are (a 409 on the workstation, the CLI's
error line), so they are part of the behaviour: "cannot resume while on call: only when paused"
must name the event, the state and what would allow it. test_agent_state.py checks that each
refusal happens; this table pins what it says, and that every field a transition leaves behind
is the clean value (no leftover wrap-up end, extension flag or pause reason).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from cc_core.acd import agent_state as sm
from cc_core.acd.agent_state import AgentStateError
from cc_core.acd.model import Agent, AgentState, QueueConfig

T0 = datetime(2026, 6, 8, 1, 0, tzinfo=UTC)
QUEUE = QueueConfig(name="general", wrapup_s=30, max_missed_before_pause=2)
S = AgentState


def agent(state: AgentState, **changes: object) -> Agent:
    fields: dict[str, object] = {
        "id": "1001",
        "name": "张伟",
        "state": state,
        "state_since": T0,
        "queues": frozenset({"general"}),
        "chat_capacity": 2,
        "active_voice": 1 if state is S.ON_CALL else 0,
        "wrapup_until": T0 + timedelta(seconds=30) if state is S.WRAP_UP else None,
        "pause_reason": "break" if state is S.PAUSED else None,
    }
    fields.update(changes)
    return Agent(**fields)  # type: ignore[arg-type]


Change = Callable[[Agent], Agent]
EVENTS: dict[str, Change] = {
    "login": lambda a: sm.login(a, T0),
    "logout": lambda a: sm.logout(a, T0),
    "pause": lambda a: sm.pause(a, T0, "break"),
    "resume": lambda a: sm.resume(a, T0),
    "offer": lambda a: sm.offer(a, T0),
    "answered": lambda a: sm.answered(a, T0),
    "not_answered": lambda a: sm.not_answered(a, T0, QUEUE),
    "ring_cancelled": lambda a: sm.ring_cancelled(a, T0),
    "call_ended": lambda a: sm.call_ended(a, T0, QUEUE),
    "end_wrapup_early": lambda a: sm.end_wrapup_early(a, T0),
    "extend_wrapup": lambda a: sm.extend_wrapup(a, T0, 30),
    "unreachable": lambda a: sm.unreachable(a, T0),
    "reachable": lambda a: sm.reachable(a, T0),
    "chat_started": lambda a: sm.chat_started(a, T0),
}


@pytest.mark.parametrize(
    ("state", "event", "message"),
    [
        (S.AVAILABLE, "login", "agent 1001: cannot log in while available: only when offline"),
        (S.WRAP_UP, "login", "agent 1001: cannot log in while wrap up: only when offline"),
        (S.OFFLINE, "logout", "agent 1001: cannot log out while offline: only when available or paused or wrap up"),
        (S.RINGING, "logout", "agent 1001: cannot log out while ringing: only when available or paused or wrap up"),
        (S.ON_CALL, "pause", "agent 1001: cannot pause while on call: only when available or wrap up"),
        (S.AVAILABLE, "resume", "agent 1001: cannot resume while available: only when paused"),
        (S.PAUSED, "offer", "agent 1001: cannot ring while paused: only when available"),
        (S.AVAILABLE, "answered", "agent 1001: cannot answer while available: only when ringing"),
        (S.ON_CALL, "not_answered", "agent 1001: cannot miss a call while on call: only when ringing"),
        (S.WRAP_UP, "ring_cancelled", "agent 1001: cannot stop ringing while wrap up: only when ringing"),
        (S.RINGING, "call_ended", "agent 1001: cannot end a call while ringing: only when on call"),
        (S.PAUSED, "end_wrapup_early", "agent 1001: cannot end wrap-up while paused: only when wrap up"),
        (S.ON_CALL, "extend_wrapup", "agent 1001: cannot extend wrap-up while on call: only when wrap up"),
        (S.OFFLINE, "unreachable", "agent 1001: cannot mark the phone unreachable while offline: not logged in"),
        (S.OFFLINE, "reachable", "agent 1001: cannot mark the phone reachable while offline: not logged in"),
        (S.OFFLINE, "chat_started", "agent 1001: cannot start a chat while offline: not logged in"),
    ],
)
def test_a_refusal_names_the_event_the_state_and_what_would_allow_it(
    state: AgentState, event: str, message: str
) -> None:
    before = agent(state)
    with pytest.raises(AgentStateError) as refused:
        EVENTS[event](before)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("before", "change", "message"),
    [
        (
            agent(S.AVAILABLE, active_chat=2),
            EVENTS["logout"],
            "agent 1001: cannot log out while available: 2 chat(s) still open; end or transfer them first",
        ),
        (
            agent(S.PAUSED, device_reachable=False),
            EVENTS["resume"],
            "agent 1001: cannot resume while paused: the phone is unreachable; register it again first",
        ),
        (
            agent(S.AVAILABLE, device_reachable=False),
            EVENTS["offer"],
            "agent 1001: cannot ring while available: the phone is unreachable",
        ),
        (
            agent(S.AVAILABLE, voice_capacity=0),
            EVENTS["offer"],
            "agent 1001: cannot ring while available: no voice capacity free",
        ),
        (
            agent(S.WRAP_UP, wrapup_extended=True),
            EVENTS["extend_wrapup"],
            "agent 1001: cannot extend wrap-up while wrap up: it has already been extended once",
        ),
        (
            agent(S.WRAP_UP),
            lambda a: sm.extend_wrapup(a, T0, 0),
            "agent 1001: wrap-up can only be extended by a positive number of seconds",
        ),
        (agent(S.AVAILABLE), lambda a: sm.pause(a, T0, " "), "agent 1001: a pause needs a reason"),
        (
            agent(S.ON_CALL, active_chat=2),
            EVENTS["chat_started"],
            "agent 1001: cannot start a chat while on call: already 2 of 2 chats open",
        ),
        (
            agent(S.AVAILABLE),
            lambda a: sm.chat_ended(a, T0),
            "agent 1001: cannot end a chat while available: no chat is open",
        ),
    ],
)
def test_a_refusal_for_a_reason_other_than_the_state_says_it(before: Agent, change: Change, message: str) -> None:
    with pytest.raises(AgentStateError) as refused:
        change(before)
    assert str(refused.value) == message


def clean(changed: Agent) -> tuple[object, ...]:
    return (changed.state, changed.pause_reason, changed.wrapup_until, changed.wrapup_extended, changed.missed_in_row)


@pytest.mark.parametrize(
    ("before", "change", "after"),
    [
        (agent(S.OFFLINE), EVENTS["login"], (S.AVAILABLE, None, None, False, 0)),
        (
            agent(S.OFFLINE, missed_in_row=3),
            lambda a: sm.login(a, T0, False),
            (S.PAUSED, "device unreachable", None, False, 0),
        ),
        (agent(S.WRAP_UP, wrapup_extended=True, missed_in_row=1), EVENTS["logout"], (S.OFFLINE, None, None, False, 0)),
        (agent(S.WRAP_UP, wrapup_extended=True), EVENTS["pause"], (S.PAUSED, "break", None, False, 0)),
        (agent(S.PAUSED, missed_in_row=2), EVENTS["resume"], (S.AVAILABLE, None, None, False, 0)),
        (agent(S.WRAP_UP, wrapup_extended=True), EVENTS["end_wrapup_early"], (S.AVAILABLE, None, None, False, 0)),
        (
            agent(S.WRAP_UP, wrapup_extended=True, device_reachable=False),
            EVENTS["end_wrapup_early"],
            (S.PAUSED, "device unreachable", None, False, 0),
        ),
        (agent(S.RINGING, missed_in_row=1), EVENTS["ring_cancelled"], (S.AVAILABLE, None, None, False, 1)),
        (agent(S.RINGING), EVENTS["not_answered"], (S.AVAILABLE, None, None, False, 1)),
        (agent(S.RINGING, missed_in_row=1), EVENTS["not_answered"], (S.PAUSED, "no answer", None, False, 2)),
        (agent(S.RINGING, missed_in_row=1), EVENTS["answered"], (S.ON_CALL, None, None, False, 0)),
        (agent(S.ON_CALL), EVENTS["call_ended"], (S.WRAP_UP, None, T0 + timedelta(seconds=30), False, 0)),
        (agent(S.RINGING), EVENTS["unreachable"], (S.PAUSED, "device unreachable", None, False, 0)),
        (agent(S.ON_CALL), EVENTS["unreachable"], (S.ON_CALL, None, None, False, 0)),
        (
            agent(S.WRAP_UP),
            EVENTS["extend_wrapup"],
            (S.WRAP_UP, None, T0 + timedelta(seconds=60), True, 0),
        ),
    ],
)
def test_each_transition_leaves_clean_fields(before: Agent, change: Change, after: tuple[object, ...]) -> None:
    """The wrap-up end, its extension flag and the pause reason are cleared (False, None: not a
    stand-in) wherever the state leaves them behind; misses count as the rules say."""
    changed = change(before)
    assert clean(changed) == after
    assert changed.wrapup_extended is after[3]  # False, not None


def test_a_wrap_up_without_an_end_counts_as_over_at_its_start() -> None:
    """A wrap-up restored without an end (a bad resync) must not keep the agent out of routing."""
    stuck = agent(S.WRAP_UP, wrapup_until=None, state_since=T0)
    ticked = sm.tick(stuck, T0)
    assert (ticked.state, ticked.state_since) == (S.AVAILABLE, T0)
    extended = sm.extend_wrapup(stuck, T0 - timedelta(seconds=5), 10)
    assert extended.wrapup_until == T0 + timedelta(seconds=10)


def test_edges_the_mutation_run_found_unchecked() -> None:
    """Each line pins one value the run of 0d15ad6 could change unnoticed (docs/testing.md,
    Mutation testing / acd): a one-second wrap-up is a wrap-up, a one-second extension is allowed,
    the auto-pause and the end of a call without wrap-up stamp their moment, a call ending takes
    one call off, and an unreachable phone is False, not merely falsy."""
    later = T0 + timedelta(seconds=7)
    short = sm.call_ended(agent(S.ON_CALL), later, QueueConfig(name="q", wrapup_s=1))
    assert (short.state, short.wrapup_until) == (S.WRAP_UP, later + timedelta(seconds=1))
    none = sm.call_ended(agent(S.ON_CALL), later, QueueConfig(name="q", wrapup_s=0))
    assert (none.state, none.state_since, none.last_ended_at) == (S.AVAILABLE, later, later)
    two = sm.call_ended(agent(S.ON_CALL, voice_capacity=2, active_voice=2, wrapup_extended=True), later, QUEUE)
    assert (two.active_voice, two.wrapup_extended) == (1, False)
    assert sm.extend_wrapup(agent(S.WRAP_UP), T0, 1).wrapup_until == T0 + timedelta(seconds=31)
    paused = sm.not_answered(agent(S.RINGING, missed_in_row=1), later, QUEUE)
    assert (paused.state, paused.state_since) == (S.PAUSED, later)
    assert sm.unreachable(agent(S.ON_CALL), later).device_reachable is False
    back = sm.end_wrapup_early(agent(S.WRAP_UP), later)
    assert (back.state, back.state_since) == (S.AVAILABLE, later)

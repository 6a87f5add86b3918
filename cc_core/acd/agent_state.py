"""The agent state machine (issue 4 items 1, 4, 5, 11; T4 wrap-up) as pure functions.

Each function takes an :class:`~cc_core.acd.model.Agent` and the moment, and returns the agent
after the event, or raises :class:`AgentStateError` when the event makes no sense in the agent's
state (the controller logs it and keeps the old agent: a late or duplicated switch event must never
put an agent in a state they are not in). Nothing is read from a clock and nothing is kept here.

The events, the states they are valid in, and where they lead::

    event              valid in                      leads to
    login              offline                       available (paused "device unreachable" if the
                                                     phone is not registered)
    logout             available, paused, wrap_up    offline
    pause              available, wrap_up            paused, with a reason
    resume             paused                        available
    offer              available                     ringing
    answered           ringing                       on_call
    not_answered       ringing                       available, or paused "no answer" after the
                                                     queue's N misses in a row
    ring_cancelled     ringing                       available (the caller hung up: not a miss)
    call_ended         on_call                       wrap_up until now + the queue's wrapup_s
                                                     (available if the queue has none)
    end_wrapup_early   wrap_up                       available
    extend_wrapup      wrap_up, once per wrap-up     wrap_up, ending later
    tick               any (acts on a wrap-up over)  available
    unreachable        all but offline               paused "device unreachable" from available or
                                                     ringing; elsewhere only noted
    reachable          all but offline               the same state
    chat_started/ended all but offline / any         the same state, one chat more / fewer

A change of state sets ``state_since`` (per-agent reports are built from these changes). Events
that change no state (extending wrap-up, chats starting or ending, the phone's reachability while
paused or busy) leave it alone.

Every way back to ``available`` goes through one door (:func:`_back_to_work`): an agent whose phone
is unreachable is paused instead, so nobody can become available on a phone the switch cannot ring.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from cc_core.acd.model import PAUSE_NO_ANSWER, PAUSE_UNREACHABLE, Agent, AgentState, QueueConfig
from cc_core.errors import HotlineError

OFFLINE = AgentState.OFFLINE
AVAILABLE = AgentState.AVAILABLE
RINGING = AgentState.RINGING
ON_CALL = AgentState.ON_CALL
WRAP_UP = AgentState.WRAP_UP
PAUSED = AgentState.PAUSED


class AgentStateError(HotlineError):
    """An event that is not valid in the agent's current state; the message says why."""


def _refuse(agent: Agent, event: str, why: str = "") -> AgentStateError:
    state = agent.state.value.replace("_", " ")
    return AgentStateError(f"agent {agent.id}: cannot {event} while {state}" + (f": {why}" if why else ""))


def _require(agent: Agent, event: str, *allowed: AgentState) -> None:
    if agent.state not in allowed:
        names = " or ".join(s.value.replace("_", " ") for s in allowed)
        raise _refuse(agent, event, f"only when {names}")


def _back_to_work(agent: Agent, since: datetime) -> Agent:
    """Available again, or paused if the phone cannot be rung (the one way back to ``available``)."""
    if not agent.device_reachable:
        return replace(
            agent,
            state=PAUSED,
            state_since=since,
            pause_reason=PAUSE_UNREACHABLE,
            wrapup_until=None,
            wrapup_extended=False,
        )
    return replace(
        agent,
        state=AVAILABLE,
        state_since=since,
        pause_reason=None,
        wrapup_until=None,
        wrapup_extended=False,
    )


# ---- logging in and out, pausing ----------------------------------------------------------


def login(agent: Agent, now: datetime, reachable: bool = True) -> Agent:
    """offline → available (or paused "device unreachable" if the phone is not registered).

    The idle clock restarts: yesterday's last call must not make the agent the longest idle today.
    """
    _require(agent, "log in", OFFLINE)
    fresh = replace(agent, device_reachable=reachable, missed_in_row=0, last_ended_at=None)
    return _back_to_work(fresh, now)


def logout(agent: Agent, now: datetime) -> Agent:
    """available, paused or wrap-up → offline. Refused during a ring or a call, and with chats open:
    the controller would lose track of a live contact."""
    _require(agent, "log out", AVAILABLE, PAUSED, WRAP_UP)
    if agent.active_chat:
        raise _refuse(agent, "log out", f"{agent.active_chat} chat(s) still open; end or transfer them first")
    return replace(
        agent,
        state=OFFLINE,
        state_since=now,
        pause_reason=None,
        wrapup_until=None,
        wrapup_extended=False,
        missed_in_row=0,
    )


def pause(agent: Agent, now: datetime, reason: str) -> Agent:
    """available or wrap-up → paused with a reason (a break, a meeting, training…).

    From wrap-up the pause replaces the rest of it: the agent is out of routing either way.
    """
    if not reason.strip():
        raise AgentStateError(f"agent {agent.id}: a pause needs a reason")
    _require(agent, "pause", AVAILABLE, WRAP_UP)
    return replace(
        agent,
        state=PAUSED,
        state_since=now,
        pause_reason=reason.strip(),
        wrapup_until=None,
        wrapup_extended=False,
    )


def resume(agent: Agent, now: datetime) -> Agent:
    """paused → available; the count of missed offers starts again. Refused while the phone is unreachable."""
    _require(agent, "resume", PAUSED)
    if not agent.device_reachable:
        raise _refuse(agent, "resume", "the phone is unreachable; register it again first")
    return _back_to_work(replace(agent, missed_in_row=0), now)


# ---- the phone ------------------------------------------------------------------------------


def unreachable(agent: Agent, now: datetime) -> Agent:
    """The phone is unregistered or does not answer: an available or ringing agent is paused at once
    (never rung for the full timeout again); otherwise only noted, and applied when they would be free."""
    if agent.state is OFFLINE:
        raise _refuse(agent, "mark the phone unreachable", "not logged in")
    down = replace(agent, device_reachable=False)
    if agent.state in (AVAILABLE, RINGING):
        return replace(down, state=PAUSED, state_since=now, pause_reason=PAUSE_UNREACHABLE)
    return down


def reachable(agent: Agent, now: datetime) -> Agent:
    """The phone is registered again. The state does not change: a paused agent resumes themselves."""
    if agent.state is OFFLINE:
        raise _refuse(agent, "mark the phone reachable", "not logged in")
    return replace(agent, device_reachable=True)


# ---- a call ---------------------------------------------------------------------------------


def offer(agent: Agent, now: datetime) -> Agent:
    """available → ringing: the router chose the agent and the controller rings their phone."""
    _require(agent, "ring", AVAILABLE)
    if not agent.device_reachable:
        raise _refuse(agent, "ring", "the phone is unreachable")
    if not agent.capacity_free("voice"):
        raise _refuse(agent, "ring", "no voice capacity free")
    return replace(agent, state=RINGING, state_since=now)


def answered(agent: Agent, now: datetime) -> Agent:
    """ringing → on call; a call answered clears the count of missed offers."""
    _require(agent, "answer", RINGING)
    return replace(agent, state=ON_CALL, state_since=now, active_voice=agent.active_voice + 1, missed_in_row=0)


def not_answered(agent: Agent, now: datetime, queue: QueueConfig) -> Agent:
    """ringing → available with one more miss, or paused "no answer" (未接听) when the misses in a
    row reach the queue's ``max_missed_before_pause``: an agent away from the desk stops taking
    callers' time."""
    _require(agent, "miss a call", RINGING)
    missed = agent.missed_in_row + 1
    if missed >= queue.max_missed_before_pause:
        return replace(agent, state=PAUSED, state_since=now, pause_reason=PAUSE_NO_ANSWER, missed_in_row=missed)
    return _back_to_work(replace(agent, missed_in_row=missed), now)


def ring_cancelled(agent: Agent, now: datetime) -> Agent:
    """ringing → available without a miss: the caller hung up (or the call went elsewhere) while it rang."""
    _require(agent, "stop ringing", RINGING)
    return _back_to_work(agent, now)


def call_ended(agent: Agent, now: datetime, queue: QueueConfig) -> Agent:
    """on call → wrap-up until ``now + queue.wrapup_s`` (T4), or straight to available when the queue
    has no wrap-up. The queue is the one the call came through: it decides the wrap-up."""
    _require(agent, "end a call", ON_CALL)
    ended = replace(agent, active_voice=max(0, agent.active_voice - 1), last_ended_at=now)
    if queue.wrapup_s <= 0:
        return _back_to_work(ended, now)
    return replace(
        ended,
        state=WRAP_UP,
        state_since=now,
        wrapup_until=now + timedelta(seconds=queue.wrapup_s),
        wrapup_extended=False,
    )


# ---- wrap-up (T4) ---------------------------------------------------------------------------


def end_wrapup_early(agent: Agent, now: datetime) -> Agent:
    """wrap-up → available: the agent has written the summary and is ready before the time is up."""
    _require(agent, "end wrap-up", WRAP_UP)
    return _back_to_work(agent, now)


def extend_wrapup(agent: Agent, now: datetime, seconds: int) -> Agent:
    """More wrap-up time, once per wrap-up; a second request is refused so nobody hides in wrap-up.

    The time is added to the end of the wrap-up, or to ``now`` if the end has already passed and
    :func:`tick` has not yet run (the agent asked just in time). The state does not change.
    """
    _require(agent, "extend wrap-up", WRAP_UP)
    if seconds <= 0:
        raise AgentStateError(f"agent {agent.id}: wrap-up can only be extended by a positive number of seconds")
    if agent.wrapup_extended:
        raise _refuse(agent, "extend wrap-up", "it has already been extended once")
    end = max(_wrapup_end(agent), now) + timedelta(seconds=seconds)
    return replace(agent, wrapup_until=end, wrapup_extended=True)


def tick(agent: Agent, now: datetime) -> Agent:
    """Time passes: a wrap-up whose end has come becomes available by itself (T4).

    ``state_since`` is the wrap-up's end, not ``now``: a late tick must not make the reports say the
    agent was in wrap-up longer than they were. Any other agent is returned unchanged (the same object).
    """
    if agent.state is WRAP_UP and now >= _wrapup_end(agent):
        return _back_to_work(agent, _wrapup_end(agent))
    return agent


def _wrapup_end(agent: Agent) -> datetime:
    # Every way into wrap-up sets the end; an agent restored without one (a bad resync) must not
    # stay in wrap-up for ever, out of routing: their wrap-up counts as over.
    return agent.wrapup_until if agent.wrapup_until is not None else agent.state_since


# ---- chat load ------------------------------------------------------------------------------


def chat_started(agent: Agent, now: datetime) -> Agent:
    """One more open chat; the voice state does not change, the load (occupancy) does."""
    if agent.state is OFFLINE:
        raise _refuse(agent, "start a chat", "not logged in")
    if agent.active_chat >= agent.chat_capacity:
        raise _refuse(agent, "start a chat", f"already {agent.active_chat} of {agent.chat_capacity} chats open")
    return replace(agent, active_chat=agent.active_chat + 1)


def chat_ended(agent: Agent, now: datetime) -> Agent:
    """One chat fewer; the voice state does not change."""
    if agent.active_chat <= 0:
        raise _refuse(agent, "end a chat", "no chat is open")
    return replace(agent, active_chat=agent.active_chat - 1)

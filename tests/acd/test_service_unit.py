"""The ACD at work against a switch that also refuses and times out (issue 12, "First: tests that
would catch a broken refactor"; issue 4, T4, T9, T10).

Dispatch (the Redirect of a caller in music, its failure), the ring outcomes (DialEnd), the
FastAGI wait pass (joining, an unknown queue, a key to leave), agents' requests and their
refusals, wrap-up and its timer, a caller hanging up, and callbacks (the Originate answered,
refused, timed out). What was sent is read as action name + key fields (tests/acd/fake_switch.py),
so the tests hold when the switch actions become typed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cc_core.acd.model import PAUSE_NO_ANSWER, PAUSE_UNREACHABLE, AgentState
from cc_core.acd.service import AgentError
from cc_core.ivr.runtime import AskKey, End, Say
from cc_core.switch.ami import AmiUnavailable
from cc_core.switch.events import ChannelHungUp, DeviceStateChanged, DialEnded, DialStarted
from tests.acd.fake_switch import ERROR, T0, Pass, World, sent

AVAILABLE, RINGING, ON_CALL = AgentState.AVAILABLE, AgentState.RINGING, AgentState.ON_CALL
WRAP_UP, PAUSED, OFFLINE = AgentState.WRAP_UP, AgentState.PAUSED, AgentState.OFFLINE
CALLER = "PJSIP/trunk-u.1"


def run(tmp_path: Path, scenario: Callable[[World], Awaitable[Any]], **options: Any) -> Any:
    async def main() -> Any:
        world = World(tmp_path, **options)
        try:
            return await scenario(world)
        finally:
            await world.close()

    return asyncio.run(main())


async def ringing(world: World, uid: str = "u.1", agent: str = "2000") -> None:
    """A caller in music, then ``agent`` logs in: the caller is redirected to ring them; the
    switch reports the ring (DialBegin) on the agent's leg ``<uid>.a``."""
    await world.caller_waits(uid)
    await world.acd.login(agent)
    await world.settle()
    world.channel(f"{uid}.a", f"PJSIP/{agent}-0000000{uid[-1]}")
    await world.acd.on_dial_started(DialStarted(uid, f"{uid}.a", f"PJSIP/{agent}-0000000{uid[-1]}", ""))


# ---- dispatch: a caller in music is redirected to ring the agent -----------------------------------


def test_a_caller_in_music_is_redirected_with_the_ring_variables(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        session = await world.caller_waits("u.1")
        assert session.variables["HOTLINE_NEXT"] == "wait"
        assert sent(world.switch) == []
        await world.acd.login("2000")
        assert world.state("2000") == (RINGING, None, 0)  # decided at once, before any answer
        await world.settle()
        assert sent(world.switch, None, "Channel", "Variable", "Value") == [
            ("Setvar", CALLER, "HOTLINE_DIAL", "PJSIP/2000"),
            ("Setvar", CALLER, "HOTLINE_RING_S", "15"),
            ("Setvar", CALLER, "HOTLINE_AGENT", "2000"),
            ("Redirect", CALLER, None, None),
        ]
        assert sent(world.switch, "Redirect", "Context", "Exten", "Priority") == [
            ("Redirect", "hotline-connect", "2000", "1")
        ]
        waiter = world.acd.waiters["u.1"]
        assert (waiter.state, waiter.agent, world.acd.routed, len(world.acd.waiting)) == ("dialing", "2000", 1, 0)

    run(tmp_path, scenario)


def test_a_mobile_agent_is_rung_through_the_trunk(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        await world.caller_waits("u.1")
        await world.acd.login("2000", "m:13912345678")
        await world.settle()
        assert sent(world.switch, "Setvar", "Variable", "Value")[0] == (
            "Setvar",
            "HOTLINE_DIAL",
            "PJSIP/13912345678@carrier",
        )

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    "failure",
    [ERROR, TimeoutError("no answer in 5 s"), AmiUnavailable("link down")],
    ids=["refused", "timeout", "link-down"],
)
def test_a_failed_redirect_frees_the_agent_and_offers_the_caller_again(tmp_path: Path, failure: Any) -> None:
    """The Redirect fails while the caller is still there: the agent is not left ringing (no miss
    counted) and the caller is offered again: the second Redirect carries it out."""

    async def scenario(world: World) -> None:
        world.switch.will_answer("Redirect", failure)
        await world.caller_waits("u.1")
        await world.acd.login("2000")
        await world.settle()
        assert sent(world.switch, "Redirect", "Channel", "Exten") == [("Redirect", CALLER, "2000")] * 2
        assert world.state("2000") == (RINGING, None, 0)
        assert world.acd.waiters["u.1"].state == "dialing"
        assert world.acd.routed == 2

    run(tmp_path, scenario)


def test_a_failed_redirect_for_a_caller_who_hung_up_frees_the_agent_only(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        world.switch.will_answer("Redirect", ERROR)
        await world.caller_waits("u.1")
        del world.view.channels["u.1"]  # the caller hung up; the Hangup event is not handled yet
        await world.acd.login("2000")
        await world.settle()
        assert len(sent(world.switch, "Redirect")) == 1
        assert world.state("2000") == (AVAILABLE, None, 0)
        assert (len(world.acd.waiting), world.acd.routed) == (0, 1)

    run(tmp_path, scenario)


def test_a_caller_found_during_the_pass_is_handed_over_without_a_redirect(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        await world.acd.login("2001")
        session = await world.caller_waits("u.1", HOTLINE_PRIORITY="0")
        await world.settle()
        assert sent(world.switch) == []
        assert {k: session.variables[k] for k in ("HOTLINE_NEXT", "HOTLINE_AGENT", "HOTLINE_DIAL")} == {
            "HOTLINE_NEXT": "connect",
            "HOTLINE_AGENT": "2001",
            "HOTLINE_DIAL": "PJSIP/2001",
        }
        assert session.variables["HOTLINE_RING_S"] == "15"

    run(tmp_path, scenario)


def test_callers_are_served_by_priority_then_arrival(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        await world.caller_waits("u.1")
        world.clock.advance(5)
        await world.caller_waits("u.2", HOTLINE_PRIORITY="2")
        world.clock.advance(5)
        await world.caller_waits("u.3")
        await world.acd.login("2000")
        await world.settle()
        assert world.acd.waiters["u.2"].agent == "2000"
        assert [c.id for c in world.acd.waiting] == ["u.1", "u.3"]
        assert world.acd.position(world.acd.waiters["u.3"]) == 1

    run(tmp_path, scenario)


# ---- the ring's outcome (DialEnd) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "agent_after", "declined", "waiter_state"),
    [
        ("ANSWER", (ON_CALL, None, 0), set(), "connected"),
        ("NOANSWER", (AVAILABLE, None, 1), {"2000"}, "returning"),
        ("BUSY", (AVAILABLE, None, 1), {"2000"}, "returning"),
        ("CHANUNAVAIL", (PAUSED, PAUSE_UNREACHABLE, 0), {"2000"}, "returning"),
        ("CANCEL", (AVAILABLE, None, 0), set(), "dialing"),
    ],
)
def test_each_ring_outcome_moves_the_agent_and_the_caller(
    tmp_path: Path, status: str, agent_after: tuple[Any, ...], declined: set[str], waiter_state: str
) -> None:
    async def scenario(world: World) -> None:
        await ringing(world)
        await world.acd.on_dial_ended(DialEnded("u.1", "u.1.a", "PJSIP/2000-00000001", status))
        await world.settle()
        waiter = world.acd.waiters["u.1"]
        assert world.state("2000") == agent_after
        assert (set(waiter.contact.declined), waiter.state, waiter.ring_over.is_set()) == (
            declined,
            waiter_state,
            True,
        )
        assert waiter.served_by == (["2000"] if status == "ANSWER" else [])
        assert ("2000" in world.acd.legs) == (status == "ANSWER")
        assert world.acd.last_call("2000") == ("u.1" if status == "ANSWER" else None)

    run(tmp_path, scenario)


def test_misses_in_a_row_pause_the_agent_and_the_caller_goes_to_the_next(tmp_path: Path) -> None:
    """Queue general pauses after 2 misses in a row (未接听); the caller is never offered again to
    an agent who let it ring out, and goes to 2001 once they log in."""

    async def scenario(world: World) -> None:
        await ringing(world)
        await world.acd.on_dial_ended(DialEnded("u.1", "u.1.a", "PJSIP/2000-00000001", "NOANSWER"))
        again = world.acd.waiters["u.1"]
        assert again.state == "returning"
        pass_ = await _pass(world, "u.1")
        assert pass_.variables["HOTLINE_NEXT"] == "wait"  # 2000 declined it: not offered again
        assert world.state("2000") == (AVAILABLE, None, 1)
        second = await world.caller_waits("u.2")
        assert (second.variables["HOTLINE_NEXT"], second.variables["HOTLINE_AGENT"]) == ("connect", "2000")
        await world.acd.on_dial_started(DialStarted("u.2", "u.2.a", "PJSIP/2000-00000002", ""))
        await world.acd.on_dial_ended(DialEnded("u.2", "u.2.a", "PJSIP/2000-00000002", "NOANSWER"))
        assert world.state("2000") == (PAUSED, PAUSE_NO_ANSWER, 2)
        await world.acd.login("2001")
        await world.settle()
        assert [w.agent for w in world.acd.waiters.values() if w.agent] == ["2001"]
        # u.1 is next (it arrived first); u.2 waits, and the paused 2000 is not offered anything.
        assert world.acd.waiters["u.1"].agent == "2001"

    run(tmp_path, scenario)


def test_a_pass_back_from_ringing_waits_for_the_ring_outcome(tmp_path: Path) -> None:
    """Dial returned without an answer and the caller's next pass arrives before DialEnd: the pass
    waits for it, then the miss counts and the caller waits again (not offered to 2000)."""

    async def scenario(world: World) -> None:
        await ringing(world)
        pass_ = asyncio.ensure_future(_pass(world, "u.1"))
        for _ in range(50):
            await asyncio.sleep(0)
        assert not pass_.done()  # waiting for the outcome
        await world.acd.on_dial_ended(DialEnded("u.1", "u.1.a", "PJSIP/2000-00000001", "NOANSWER"))
        session = await asyncio.wait_for(pass_, 2.0)
        assert session.variables["HOTLINE_NEXT"] == "wait"
        waiter = world.acd.waiters["u.1"]
        assert (waiter.state, waiter.agent, set(waiter.contact.declined)) == ("waiting", None, {"2000"})
        assert world.state("2000") == (AVAILABLE, None, 1)
        assert [c.id for c in world.acd.waiting] == ["u.1"]

    run(tmp_path, scenario)


def test_a_ring_outcome_that_never_comes_counts_as_cancelled(tmp_path: Path) -> None:
    """No DialEnd within 3 s (the AMI link is down): the ring counts as cancelled, not a miss, and
    the caller is offered again (to the same agent, who did not decline)."""

    async def scenario(world: World) -> None:
        await ringing(world)
        world.switch.actions.clear()
        session = await _pass(world, "u.1")
        assert world.state("2000") == (RINGING, None, 0)  # cancelled, then offered again at once
        assert (session.variables["HOTLINE_NEXT"], session.variables["HOTLINE_AGENT"]) == ("connect", "2000")
        assert world.acd.waiters["u.1"].contact.declined == frozenset()
        assert world.switch.actions == []  # handed over by the pass, no Redirect

    run(tmp_path, scenario)


async def _pass(world: World, uid: str) -> Pass:
    """The caller's next FastAGI pass through the loop."""
    session = Pass(uid, HOTLINE_QUEUE=world.acd.waiters[uid].contact.queue)
    await world.acd.wait(session)  # type: ignore[arg-type]
    return session


# ---- the wait pass ------------------------------------------------------------------------------------


def test_an_unknown_queue_sends_the_caller_to_the_safety_net(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        session = await world.caller_waits("u.1", queue="nonesuch")
        assert session.variables["HOTLINE_NEXT"] == "fallback"
        assert (world.acd.waiters, len(world.acd.waiting)) == ({}, 0)

    run(tmp_path, scenario)


def test_key_1_leaves_the_queue_for_a_callback(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        await world.caller_waits("u.1")
        before = len(world.callbacks.active())
        await world.acd.wait(Pass("u.1", HOTLINE_QUEUE="general", HOTLINE_KEY="1"))  # type: ignore[arg-type]
        after = world.callbacks.active()
        assert (before, len(after), after[0].number, after[0].reason) == (0, 1, "13800000001", "requested")
        assert ("u.1" in world.acd.waiters, len(world.acd.waiting)) == (False, 0)
        assert isinstance(world.heard[-1], End)
        assert world.heard[-1].prompt is not None and world.heard[-1].prompt.text == world.acd.text.callback_confirm

    run(tmp_path, scenario)


def test_the_pass_takes_skill_priority_and_requested_agent_from_the_channel(tmp_path: Path) -> None:
    """What the IVR set on the channel becomes the contact: a skill some agent has, the priority,
    an agent who exists; a skill nobody has and an unknown agent are dropped (nobody to wait for)."""

    async def scenario(world: World) -> None:
        await world.caller_waits("u.1", HOTLINE_SKILL="pension", HOTLINE_PRIORITY="3", HOTLINE_REQUESTED_AGENT="2001")
        contact = world.acd.waiters["u.1"].contact
        assert (contact.skill, contact.priority, contact.requested_agent) == ("pension", 3, "2001")
        await world.caller_waits("u.2", HOTLINE_SKILL="tax", HOTLINE_PRIORITY="x", HOTLINE_REQUESTED_AGENT="7777")
        contact = world.acd.waiters["u.2"].contact
        assert (contact.skill, contact.priority, contact.requested_agent) == (None, 0, None)
        assert [c.id for c in world.acd.waiting] == ["u.1", "u.2"]

    run(tmp_path, scenario)


def test_key_2_leaves_the_queue_for_a_message(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        await world.caller_waits("u.1")
        await world.acd.wait(Pass("u.1", HOTLINE_QUEUE="general", HOTLINE_KEY="2"))  # type: ignore[arg-type]
        assert world.callbacks.active() == []
        assert ("u.1" in world.acd.waiters, len(world.acd.waiting)) == (False, 0)
        assert [type(s).__name__ for s in world.heard[-3:]] == ["Visit", "RecordMessage", "End"]

    run(tmp_path, scenario)


def test_the_first_pass_announces_the_position_unless_an_agent_is_free(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        await world.caller_waits("u.1")
        await world.caller_waits("u.2")
        says = [s for s in world.heard if isinstance(s, Say)]
        assert [s.prompt.text for s in says] == [
            world.acd.text.next_in_line + world.acd.text.keys,
            world.acd.text.position.format(position=1, minutes=6) + world.acd.text.keys,
        ]

    run(tmp_path, scenario)


def test_after_max_wait_the_caller_is_offered_a_callback_once(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        await world.caller_waits("u.1")
        world.clock.advance(600)
        second = await _pass(world, "u.1")
        asks = [s for s in world.heard if isinstance(s, AskKey)]
        assert [a.prompt.text for a in asks] == [world.acd.text.offer]
        assert second.variables["HOTLINE_NEXT"] == "wait"
        assert world.acd.waiters["u.1"].offered_at == T0 + timedelta(seconds=600)
        await _pass(world, "u.1")
        assert len([s for s in world.heard if isinstance(s, AskKey)]) == 1

    run(tmp_path, scenario)


# ---- agents' requests ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extension", "trunk", "message"),
    [
        ("9999", "carrier", "unknown extension '9999'"),
        ("m:12", "carrier", "is not a phone number"),
        ("m:13912345678", "", "no trunk with a host is configured"),
    ],
)
def test_a_login_on_a_bad_extension_is_refused(tmp_path: Path, extension: str, trunk: str, message: str) -> None:
    async def scenario(world: World) -> None:
        with pytest.raises(AgentError, match=message):
            await world.acd.login("2000", extension)
        assert (world.state("2000"), world.acd.extension) == ((OFFLINE, None, 0), {})

    run(tmp_path, scenario, trunk=trunk)


def test_a_login_twice_or_on_a_phone_in_use_is_refused(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        await world.acd.login("2000")
        with pytest.raises(AgentError, match="already logged in on 2000"):
            await world.acd.login("2000")
        with pytest.raises(AgentError, match="extension 2000 is in use by agent 2000"):
            await world.acd.login("2001", "2000")
        with pytest.raises(AgentError, match="unknown agent '7777'"):
            await world.acd.login("7777")
        assert world.acd.extension == {"2000": "2000"}

    run(tmp_path, scenario)


def test_an_agent_whose_phone_is_not_registered_logs_in_paused_and_resumes_when_it_is(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        world.view.devices["PJSIP/2000"] = "UNAVAILABLE"
        await world.acd.login("2000")
        assert world.state("2000") == (PAUSED, PAUSE_UNREACHABLE, 0)
        with pytest.raises(AgentError, match="unreachable"):
            await world.acd.resume("2000")
        await world.acd.on_device(DeviceStateChanged("PJSIP/2000", "NOT_INUSE"))
        assert world.acd.agents["2000"].device_reachable is True
        assert world.state("2000") == (PAUSED, PAUSE_UNREACHABLE, 0)  # resumes themselves
        await world.acd.resume("2000")
        assert world.state("2000") == (AVAILABLE, None, 0)
        await world.acd.on_device(DeviceStateChanged("PJSIP/2000", "UNAVAILABLE"))
        assert world.state("2000") == (PAUSED, PAUSE_UNREACHABLE, 0)

    run(tmp_path, scenario)


def test_refused_requests_name_the_reason_and_change_nothing(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        with pytest.raises(AgentError, match="cannot log out while offline"):
            await world.acd.logout("2000")
        await world.acd.login("2000")
        with pytest.raises(AgentError, match="a pause needs a reason"):
            await world.acd.pause("2000", "  ")
        with pytest.raises(AgentError, match="cannot resume while available"):
            await world.acd.resume("2000")
        with pytest.raises(AgentError, match="cannot end wrap-up while available"):
            await world.acd.end_wrapup("2000")
        with pytest.raises(AgentError, match="has no call to write a summary for"):
            await world.acd.summary("2000", "市民咨询养老金")
        assert world.state("2000") == (AVAILABLE, None, 0)
        await world.acd.pause("2000", "培训")
        assert world.state("2000") == (PAUSED, "培训", 0)
        await world.acd.logout("2000")
        assert (world.state("2000"), world.acd.extension) == ((OFFLINE, None, 0), {})

    run(tmp_path, scenario)


# ---- the call ends: wrap-up (T4) ---------------------------------------------------------------------------


def test_the_agent_hanging_up_starts_the_queue_wrap_up_and_arms_its_timer(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        await ringing(world)
        await world.acd.on_dial_ended(DialEnded("u.1", "u.1.a", "PJSIP/2000-00000001", "ANSWER"))
        world.clock.advance(100)
        await world.acd.on_hangup(ChannelHungUp("u.1.a", "u.1", "PJSIP/2000-00000001", 16, "Normal Clearing"))
        end = T0 + timedelta(seconds=130)
        agent = world.acd.agents["2000"]
        assert (agent.state, agent.wrapup_until, agent.last_ended_at) == (WRAP_UP, end, T0 + timedelta(seconds=100))
        assert world.wrapup_timers == [("2000", end)]
        assert list(world.acd.handle_times["general"]) == [100.0]
        with pytest.raises(AgentError, match="already been extended"):
            await world.acd.extend_wrapup("2000", 30)
            await world.acd.extend_wrapup("2000", 30)
        assert world.wrapup_timers[-1] == ("2000", end + timedelta(seconds=30))
        world.clock.advance(59)
        await world.acd.tick()
        assert world.state("2000")[0] is WRAP_UP
        world.clock.advance(1)
        await world.acd.tick()
        agent = world.acd.agents["2000"]
        assert (agent.state, agent.state_since) == (AVAILABLE, end + timedelta(seconds=30))

    run(tmp_path, scenario)


def test_a_wrap_up_that_runs_out_serves_the_next_caller(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        await ringing(world)
        await world.acd.on_dial_ended(DialEnded("u.1", "u.1.a", "PJSIP/2000-00000001", "ANSWER"))
        await world.acd.on_hangup(ChannelHungUp("u.1.a", "u.1", "PJSIP/2000-00000001", 16, ""))
        await world.caller_waits("u.2")
        assert world.acd.waiters["u.2"].agent is None
        world.clock.advance(30)
        await world.acd.tick()
        await world.settle()
        assert world.acd.waiters["u.2"].agent == "2000"
        assert sent(world.switch, "Redirect", "Channel")[-1] == ("Redirect", "PJSIP/trunk-u.2")

    run(tmp_path, scenario)


# ---- a caller hangs up -------------------------------------------------------------------------------------


def test_a_caller_who_hangs_up_waiting_is_put_on_the_callback_list(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        await world.caller_waits("u.1")
        before = len(world.callbacks.active())
        await world.acd.on_hangup(ChannelHungUp("u.1", "u.1", CALLER, 16, ""))
        after = world.callbacks.active()
        assert (before, [(c.number, c.reason) for c in after]) == (0, [("13800000001", "abandoned")])
        assert (world.acd.waiters, len(world.acd.waiting)) == ({}, 0)

    run(tmp_path, scenario)


def test_a_caller_who_hangs_up_while_being_redirected_frees_the_agent(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        await world.caller_waits("u.1")
        blocked = asyncio.Event()

        async def slow(action: Any, **_kwargs: Any) -> Any:
            await blocked.wait()
            return {"Response": "Error"}

        world.switch.action = slow  # type: ignore[method-assign]
        await world.acd.login("2000")
        assert world.state("2000")[0] is RINGING
        await world.acd.on_hangup(ChannelHungUp("u.1", "u.1", CALLER, 16, ""))
        assert world.state("2000") == (AVAILABLE, None, 0)
        assert "2000" not in world.acd.legs
        blocked.set()
        await world.settle()
        assert world.state("2000") == (AVAILABLE, None, 0)

    run(tmp_path, scenario)


# ---- callbacks (T10) ----------------------------------------------------------------------------------------


def _callback(world: World, number: str = "13912345678") -> int:
    return world.callbacks.request(number, "old.1", "abandoned", T0 - timedelta(minutes=10))


def test_call_back_now_rings_the_agent_first_with_the_callback_variables(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        callback = _callback(world)
        await world.acd.login("2000")
        await world.acd.call_back_now("2000", callback)
        await world.settle()
        [originate] = [a for a in world.switch.actions if a["Action"] == "Originate"]
        assert {k: originate[k] for k in ("Channel", "Context", "Exten", "Timeout", "Async")} == {
            "Channel": "PJSIP/2000",
            "Context": "hotline-callback",
            "Exten": "13912345678",
            "Timeout": "15000",
            "Async": "true",
        }
        assert originate["ChannelId"].startswith(f"cb-{callback}-")
        assert f"HOTLINE_CALLBACK={callback}" in originate["Variable"]
        assert "HOTLINE_AGENT_ID=2000" in originate["Variable"]
        assert world.state("2000") == (ON_CALL, None, 0)
        assert world.acd.legs["2000"].uniqueid == originate["ChannelId"]
        found = world.callbacks.get(callback)
        assert found is not None and found.status == "in_progress"

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    "failure",
    [[{"Response": "Error", "Message": "Originate failed"}], TimeoutError(), AmiUnavailable("down")],
    ids=["refused", "timeout", "link-down"],
)
def test_a_callback_the_agent_does_not_answer_is_a_miss_and_is_due_again(tmp_path: Path, failure: Any) -> None:
    async def scenario(world: World) -> None:
        callback = _callback(world)
        world.switch.will_answer("Originate", failure)
        await world.acd.login("2000")
        await world.acd.call_back_now("2000", callback)
        await world.settle()
        assert world.state("2000") == (AVAILABLE, None, 1)
        assert "2000" not in world.acd.legs
        found = world.callbacks.get(callback)
        assert found is not None and (found.status, found.attempts) == ("open", 1)

    run(tmp_path, scenario)


def test_call_back_now_refusals(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        callback = _callback(world)
        with pytest.raises(AgentError, match="unknown agent"):
            await world.acd.call_back_now("7777", callback)
        with pytest.raises(AgentError, match="is not open"):
            await world.acd.call_back_now("2000", 999)
        with pytest.raises(AgentError, match="must be available to call back \\(now offline\\)"):
            await world.acd.call_back_now("2000", callback)
        await world.acd.login("2000")
        world.switch.connected = False
        with pytest.raises(AgentError, match="calls cannot be placed now"):
            await world.acd.call_back_now("2000", callback)
        assert sent(world.switch, "Originate") == []
        found = world.callbacks.get(callback)
        assert found is not None and found.status == "open"

    run(tmp_path, scenario)


def test_automatic_callbacks_wait_for_nobody_waiting_and_a_free_agent(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        callback = _callback(world)
        await world.acd.place_callbacks()  # nobody logged in
        await world.caller_waits("u.1")
        await world.acd.login("2000")  # takes the caller
        await world.acd.login("2001")
        await world.caller_waits("u.2")  # 2001 takes u.2 in its pass
        await world.caller_waits("u.3")  # waits
        await world.acd.place_callbacks()
        assert sent(world.switch, "Originate") == []
        await world.acd.on_hangup(ChannelHungUp("u.3", "u.3", "PJSIP/trunk-u.3", 16, ""))
        await world.acd.on_dial_ended(DialEnded("u.2", "u.2.a", "PJSIP/2001-00000002", "CANCEL"))
        await world.acd.on_hangup(ChannelHungUp("u.2", "u.2", "PJSIP/trunk-u.2", 16, ""))
        assert world.state("2001") == (AVAILABLE, None, 0)
        await world.acd.place_callbacks()
        await world.settle()
        assert sent(world.switch, "Originate", "Channel", "Exten") == [("Originate", "PJSIP/2001", "13912345678")]
        found = world.callbacks.get(callback)
        assert found is not None and found.status == "in_progress"

    run(tmp_path, scenario)

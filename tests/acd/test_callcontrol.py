"""Call control (T3, issue 4 item 6): hold, blind transfer, consultation, hand-over, three-way,
drop the third party, leave, hang up — and every refusal (issue 12, "First: tests that would
catch a broken refactor": callcontrol.py had no test of its own, only real calls).

A real :class:`~cc_core.acd.service.Acd` and :class:`~cc_core.acd.callcontrol.CallControl` over
the fake switch of tests/acd/fake_switch.py; what was sent is read as action name + key fields.
Agent 2000 talks to caller u.1 (caller channel ``PJSIP/trunk-u.1``, agent channel
``PJSIP/2000-00000001``); agent 2001 is logged in and free.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from cc_core.acd.callcontrol import TRANSFER_PRIORITY_BOOST, CallControl
from cc_core.acd.model import AgentState
from cc_core.acd.service import AgentError
from cc_core.switch.ami import AmiUnavailable
from cc_core.switch.events import ChannelHungUp, ConferenceJoined, ConferenceLeft, DialEnded, DialStarted
from tests.acd.fake_switch import ERROR, World, sent

CALLER, AGENT = "PJSIP/trunk-u.1", "PJSIP/2000-00000001"
THIRD, OUTSIDE = "PJSIP/2001-00000002", "PJSIP/carrier-00000003"
AVAILABLE, RINGING, ON_CALL = AgentState.AVAILABLE, AgentState.RINGING, AgentState.ON_CALL


class Call:
    """The world with 2000 on a call with u.1, and the call control."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.control = CallControl(world.acd, world.bus)

    @property
    def room(self) -> dict[str, Any] | None:
        return self.control.room_state("u.1")

    def moves(self) -> list[tuple[Any, ...]]:
        """Every Redirect and Hangup sent: (action, channel, context, exten, extra channel, extra context, exten)."""
        return [
            m
            for m in sent(
                self.world.switch, None, "Channel", "Context", "Exten", "ExtraChannel", "ExtraContext", "ExtraExten"
            )
            if m[0] in ("Redirect", "Hangup")
        ]

    def setvars(self) -> list[tuple[Any, ...]]:
        return sent(self.world.switch, "Setvar", "Channel", "Variable", "Value")

    def forget_sent(self) -> None:
        self.world.switch.actions.clear()

    async def third_answers(self, uid: str = "u.1.c", channel: str = THIRD) -> None:
        """The consulted party's phone rings and answers (DialBegin, DialEnd ANSWER on the agent's leg)."""
        self.world.channel(uid, channel)
        await self.control.on_dial_started(DialStarted("u.1.a", uid, channel, ""))
        await self.control.on_dial_ended(DialEnded("u.1.a", uid, channel, "ANSWER"))


def run(tmp_path: Path, scenario: Callable[[Call], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        world = World(tmp_path)
        try:
            await world.caller_waits("u.1")
            await world.acd.login("2000")
            await world.settle()
            world.channel("u.1.a", AGENT)
            await world.acd.on_dial_started(DialStarted("u.1", "u.1.a", AGENT, ""))
            await world.acd.on_dial_ended(DialEnded("u.1", "u.1.a", AGENT, "ANSWER"))
            await world.acd.login("2001")
            assert world.state("2000")[0] is ON_CALL
            call = Call(world)
            call.forget_sent()
            return await scenario(call)
        finally:
            await world.close()

    return asyncio.run(main())


# ---- hold ----------------------------------------------------------------------------------------


def test_hold_moves_the_call_into_its_room_and_take_back_returns_the_agent(tmp_path: Path) -> None:
    async def scenario(call: Call) -> None:
        assert call.room is None  # a plain call until the first move
        assert await call.control.perform("2000", "hold") == "u.1"
        assert call.setvars() == [("Setvar", CALLER, "HOTLINE_ROOM", "u.1"), ("Setvar", AGENT, "HOTLINE_ROOM", "u.1")]
        assert call.moves() == [("Redirect", CALLER, "hotline-room", "caller", AGENT, "hotline-held", "s")]
        assert call.room == {"agent_where": "held", "caller_in_room": True, "third": None}
        with pytest.raises(AgentError, match="already on hold"):
            await call.control.perform("2000", "hold")
        call.forget_sent()
        await call.control.perform("2000", "unhold")
        assert call.moves() == [("Redirect", AGENT, "hotline-room", "member", None, None, None)]
        assert call.room == {"agent_where": "room", "caller_in_room": True, "third": None}
        with pytest.raises(AgentError, match="not on hold"):
            await call.control.perform("2000", "unhold")
        # Hold again from the room: only the agent moves (the caller is there already).
        call.forget_sent()
        await call.control.hold("2000")
        assert (call.setvars(), call.moves()) == ([], [("Redirect", AGENT, "hotline-held", "s", None, None, None)])

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    "failure", [ERROR, TimeoutError(), AmiUnavailable("link down")], ids=["refused", "timeout", "link-down"]
)
def test_a_hold_the_switch_does_not_carry_out_is_refused_and_changes_nothing(tmp_path: Path, failure: Any) -> None:
    async def scenario(call: Call) -> None:
        call.world.switch.will_answer("Redirect", failure)
        with pytest.raises(AgentError, match=r"the switch (refused|did not carry the request out)"):
            await call.control.hold("2000")
        assert call.room == {"agent_where": "bridge", "caller_in_room": False, "third": None}
        await call.control.hold("2000")  # the next try moves the caller in
        assert call.room == {"agent_where": "held", "caller_in_room": True, "third": None}

    run(tmp_path, scenario)


def test_a_channel_gone_before_the_move_is_refused(tmp_path: Path) -> None:
    async def scenario(call: Call) -> None:
        call.world.switch.will_answer("Setvar", ERROR)
        with pytest.raises(AgentError, match="the call's channel is gone \\(Channel not found\\)"):
            await call.control.hold("2000")
        assert call.moves() == []

    run(tmp_path, scenario)


# ---- blind transfer -------------------------------------------------------------------------------


def test_a_blind_transfer_to_an_agent_requeues_the_caller_for_them_ahead_of_others(tmp_path: Path) -> None:
    async def scenario(call: Call) -> None:
        waiter = call.world.acd.waiters["u.1"]
        priority = waiter.contact.priority
        assert await call.control.perform("2000", "transfer", "agent:2001") == "u.1"
        assert call.setvars() == [
            ("Setvar", CALLER, "HOTLINE_QUEUE", "general"),
            ("Setvar", CALLER, "HOTLINE_REQUESTED_AGENT", "2001"),
        ]
        assert call.moves() == [("Redirect", CALLER, "hotline-queue", "s", None, None, None)]
        contact = waiter.contact
        assert (waiter.state, waiter.agent) == ("transferring", None)
        assert (contact.requested_agent, contact.declined, contact.priority, contact.skill) == (
            "2001",
            frozenset({"2000"}),
            priority + TRANSFER_PRIORITY_BOOST,
            None,
        )
        assert call.room is None

    run(tmp_path, scenario)


def test_a_blind_transfer_to_a_queue_and_to_a_number(tmp_path: Path) -> None:
    async def scenario(call: Call) -> None:
        await call.control.perform("2000", "transfer", "queue:pension")
        waiter = call.world.acd.waiters["u.1"]
        assert (waiter.contact.queue, waiter.contact.requested_agent) == ("pension", None)
        assert call.setvars() == [
            ("Setvar", CALLER, "HOTLINE_QUEUE", "pension"),
            ("Setvar", CALLER, "HOTLINE_REQUESTED_AGENT", ""),
        ]

    run(tmp_path, scenario)

    async def to_number(call: Call) -> None:
        await call.control.perform("2000", "transfer", "13912345678")  # a bare number
        assert call.setvars() == [("Setvar", CALLER, "HOTLINE_TRANSFER", "13912345678")]
        assert call.moves() == [("Redirect", CALLER, "hotline-transfer", "s", None, None, None)]
        assert call.world.acd.waiters["u.1"].state == "transferred"

    run(tmp_path / "n", to_number)


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("agent:2000", "cannot transfer a call to themselves"),
        ("agent:7777", "unknown agent '7777'"),
        ("queue:nonesuch", "unknown queue 'nonesuch'"),
        ("number:12a45", "is not a phone number"),
        ("number:１２３", "is not a phone number"),  # full-width digits are not dialable
        ("fax:123", "unknown transfer target"),
        ("agent:", "unknown transfer target"),
    ],
)
def test_a_blind_transfer_to_a_bad_target_is_refused_and_sends_nothing(tmp_path: Path, to: str, message: str) -> None:
    async def scenario(call: Call) -> None:
        with pytest.raises(AgentError, match=message):
            await call.control.perform("2000", "transfer", to)
        assert call.world.switch.actions == []
        assert call.world.acd.waiters["u.1"].state == "connected"

    run(tmp_path, scenario)


def test_a_blind_transfer_to_a_logged_out_agent_is_refused(tmp_path: Path) -> None:
    async def scenario(call: Call) -> None:
        await call.world.acd.logout("2001")
        with pytest.raises(AgentError, match="agent 2001 is not logged in"):
            await call.control.transfer("2000", "agent:2001")
        assert call.world.switch.actions == []

    run(tmp_path, scenario)


def test_a_blind_transfer_the_switch_refuses_leaves_the_call_connected(tmp_path: Path) -> None:
    async def scenario(call: Call) -> None:
        call.world.switch.will_answer("Redirect", ERROR)
        with pytest.raises(AgentError, match="the switch refused: Channel not found"):
            await call.control.transfer("2000", "queue:pension")
        assert call.world.acd.waiters["u.1"].state == "connected"

    run(tmp_path, scenario)


def test_a_transfer_from_a_held_call_hangs_the_agent_leg_up(tmp_path: Path) -> None:
    async def scenario(call: Call) -> None:
        await call.control.hold("2000")
        call.forget_sent()
        await call.control.transfer("2000", "queue:general")
        assert call.moves() == [
            ("Redirect", CALLER, "hotline-queue", "s", None, None, None),
            ("Hangup", AGENT, None, None, None, None, None),
        ]

    run(tmp_path, scenario)


# ---- consultation, hand-over, three-way ------------------------------------------------------------


def test_consulting_an_agent_rings_them_and_holds_the_caller(tmp_path: Path) -> None:
    async def scenario(call: Call) -> None:
        await call.control.perform("2000", "consult", "agent:2001")
        assert call.world.state("2001")[0] is RINGING
        assert call.setvars() == [
            ("Setvar", AGENT, "HOTLINE_CONSULT_DIAL", "PJSIP/2001"),
            ("Setvar", AGENT, "HOTLINE_CONSULT_AGENT", "2001"),
            ("Setvar", AGENT, "HOTLINE_RING_S", "15"),
            ("Setvar", CALLER, "HOTLINE_ROOM", "u.1"),
            ("Setvar", AGENT, "HOTLINE_ROOM", "u.1"),
        ]
        assert call.moves() == [("Redirect", CALLER, "hotline-room", "caller", AGENT, "hotline-consult", "s")]
        assert call.room == {
            "agent_where": "consult",
            "caller_in_room": True,
            "third": {"target": "agent:2001", "state": "ringing"},
        }
        with pytest.raises(AgentError, match="a third party is already on the call"):
            await call.control.consult("2000", "agent:2001")
        with pytest.raises(AgentError, match="a third party is on the call"):
            await call.control.hold("2000")
        with pytest.raises(AgentError, match="a consultation is going on"):
            await call.control.transfer("2000", "queue:general")
        with pytest.raises(AgentError, match="no third party in a state for this \\(ringing\\)"):
            await call.control.conference("2000")

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("agent:2000", "cannot consult themselves"),
        ("queue:general", "not a queue"),
        ("agent:7777", "unknown agent"),
    ],
)
def test_a_consultation_with_a_bad_target_is_refused(tmp_path: Path, to: str, message: str) -> None:
    async def scenario(call: Call) -> None:
        with pytest.raises(AgentError, match=message):
            await call.control.consult("2000", to)
        assert (call.world.switch.actions, call.room) == (
            [],
            {"agent_where": "bridge", "caller_in_room": False, "third": None},
        )

    run(tmp_path, scenario)


def test_a_consultation_with_a_paused_agent_is_refused(tmp_path: Path) -> None:
    async def scenario(call: Call) -> None:
        await call.world.acd.pause("2001", "break")
        with pytest.raises(AgentError, match="agent 2001 is not available \\(paused\\)"):
            await call.control.consult("2000", "agent:2001")
        assert call.world.state("2001") == (AgentState.PAUSED, "break", 0)

    run(tmp_path, scenario)


def test_a_consultation_the_switch_refuses_frees_the_consulted_agent(tmp_path: Path) -> None:
    async def scenario(call: Call) -> None:
        call.world.switch.will_answer("Redirect", ERROR)
        with pytest.raises(AgentError, match="the switch refused"):
            await call.control.consult("2000", "agent:2001")
        assert call.world.state("2001") == (AVAILABLE, None, 0)
        assert "2001" not in call.world.acd.legs
        assert call.room is not None and call.room["third"] is None

    run(tmp_path, scenario)


@pytest.mark.parametrize(("status", "state_after"), [("NOANSWER", AVAILABLE), ("CHANUNAVAIL", AgentState.PAUSED)])
def test_a_consultation_not_answered_brings_the_agent_back(tmp_path: Path, status: str, state_after: Any) -> None:
    async def scenario(call: Call) -> None:
        await call.control.consult("2000", "agent:2001")
        call.world.channel("u.1.c", THIRD)
        await call.control.on_dial_started(DialStarted("u.1.a", "u.1.c", THIRD, ""))
        await call.control.on_dial_ended(DialEnded("u.1.a", "u.1.c", THIRD, status))
        assert call.room == {"agent_where": "room", "caller_in_room": True, "third": None}
        assert call.world.state("2001")[0] is state_after
        assert "2001" not in call.world.acd.legs

    run(tmp_path, scenario)


def test_consultation_answered_then_handed_over(tmp_path: Path) -> None:
    async def scenario(call: Call) -> None:
        await call.control.consult("2000", "agent:2001")
        await call.third_answers()
        assert call.world.state("2001")[0] is ON_CALL
        assert call.room is not None and call.room["third"] == {"target": "agent:2001", "state": "talking"}
        call.forget_sent()
        await call.control.perform("2000", "hand-over")
        assert call.setvars() == [("Setvar", THIRD, "HOTLINE_ROOM", "u.1")]
        assert call.moves() == [("Redirect", THIRD, "hotline-room", "member", AGENT, "hotline-room", "leave")]
        # 2001 is in charge of the call now; 2000 may no longer act on it.
        assert call.world.acd.waiters["u.1"].served_by == ["2000", "2001"]
        assert call.control.rooms["u.1"].agent == "2001"
        assert call.room == {"agent_where": "room", "caller_in_room": True, "third": None}

    run(tmp_path, scenario)


def test_cancelling_a_consultation_returns_the_agent_to_the_caller(tmp_path: Path) -> None:
    async def scenario(call: Call) -> None:
        await call.control.consult("2000", "13912345678")
        assert ("Setvar", AGENT, "HOTLINE_CONSULT_DIAL", "PJSIP/13912345678@carrier") in call.setvars()
        await call.third_answers("u.1.c", OUTSIDE)
        call.forget_sent()
        await call.control.perform("2000", "consult-cancel")
        assert call.moves() == [("Redirect", AGENT, "hotline-room", "member", None, None, None)]
        assert call.room == {"agent_where": "room", "caller_in_room": True, "third": None}
        with pytest.raises(AgentError, match="no third party in a state for this \\(none\\)"):
            await call.control.cancel_consult("2000")

    run(tmp_path, scenario)


def test_a_three_way_call_then_drop_the_third_then_leave_is_refused(tmp_path: Path) -> None:
    async def scenario(call: Call) -> None:
        await call.control.consult("2000", "agent:2001")
        await call.third_answers()
        call.forget_sent()
        await call.control.perform("2000", "conference")
        assert call.moves() == [("Redirect", THIRD, "hotline-room", "member", AGENT, "hotline-room", "member")]
        assert call.room is not None and call.room["third"] == {"target": "agent:2001", "state": "joined"}
        assert call.world.acd.waiters["u.1"].served_by == ["2000", "2001"]
        call.forget_sent()
        await call.control.perform("2000", "drop-third")
        assert call.moves() == [("Hangup", THIRD, None, None, None, None, None)]
        assert call.room == {"agent_where": "room", "caller_in_room": True, "third": None}
        with pytest.raises(AgentError, match="no third party in a state for this \\(none\\)"):
            await call.control.leave("2000")

    run(tmp_path, scenario)


def test_leaving_a_three_way_call_leaves_the_caller_with_the_third_party(tmp_path: Path) -> None:
    async def scenario(call: Call) -> None:
        await call.control.consult("2000", "13912345678")
        await call.third_answers("u.1.c", OUTSIDE)
        await call.control.conference("2000")
        call.forget_sent()
        await call.control.perform("2000", "leave")
        assert call.moves() == [("Hangup", AGENT, None, None, None, None, None)]
        room = call.control.rooms["u.1"]
        assert (room.agent, room.agent_where, room.third) == (None, "gone", None)
        # The caller alone once the outside party hangs up: to the survey.
        for uid, channel in (("u.1", CALLER), ("u.1.c", OUTSIDE)):
            await call.control.on_joined(ConferenceJoined("u.1", uid, channel))
        call.forget_sent()
        await call.control.on_hangup(ChannelHungUp("u.1.c", "u.1", OUTSIDE, 16, ""))
        await call.control.on_left(ConferenceLeft("u.1", "u.1.c", OUTSIDE))
        assert call.moves() == [("Redirect", CALLER, "hotline-survey", "s", None, None, None)]
        assert "u.1" not in call.control.rooms

    run(tmp_path, scenario)


def test_the_caller_hanging_up_while_held_hangs_the_agent_up(tmp_path: Path) -> None:
    async def scenario(call: Call) -> None:
        await call.control.hold("2000")
        call.forget_sent()
        await call.control.on_hangup(ChannelHungUp("u.1", "u.1", CALLER, 16, ""))
        assert call.moves() == [("Hangup", AGENT, None, None, None, None, None)]
        assert call.control.rooms == {}

    run(tmp_path, scenario)


# ---- hang up, and requests the agent's state refuses -----------------------------------------------


def test_hang_up_hangs_the_agent_channel_up(tmp_path: Path) -> None:
    async def scenario(call: Call) -> None:
        assert await call.control.perform("2000", "hangup") == "u.1"
        assert call.moves() == [("Hangup", AGENT, None, None, None, None, None)]

    run(tmp_path, scenario)


@pytest.mark.parametrize("action", ["hold", "unhold", "consult-cancel", "hand-over", "conference", "leave", "hangup"])
def test_an_agent_not_on_a_call_is_refused_every_action(tmp_path: Path, action: str) -> None:
    async def scenario(call: Call) -> None:
        with pytest.raises(AgentError, match="agent 2001 is not on a call"):
            await call.control.perform("2001", action)
        assert call.world.switch.actions == []

    run(tmp_path, scenario)


def test_unknown_actions_and_missing_targets(tmp_path: Path) -> None:
    async def scenario(call: Call) -> None:
        with pytest.raises(KeyError):
            await call.control.perform("2000", "explode")
        for action in ("transfer", "consult"):
            for to in (None, "", "   "):
                with pytest.raises(ValueError, match="to"):
                    await call.control.perform("2000", action, to)
        with pytest.raises(AgentError, match="unknown agent '7777'"):
            await call.control.perform("7777", "hold")
        assert call.world.switch.actions == []

    run(tmp_path, scenario)


def test_a_callback_call_cannot_be_transferred(tmp_path: Path) -> None:
    async def scenario(call: Call) -> None:
        world = call.world
        callback = world.callbacks.request("13912345678", "old.1", "abandoned", world.clock())
        await world.acd.call_back_now("2001", callback)
        await world.settle()
        assert world.state("2001")[0] is ON_CALL
        leg = world.acd.legs["2001"].uniqueid
        world.channel(leg, "PJSIP/2001-00000009")
        with pytest.raises(AgentError, match="cannot be transferred \\(a callback, or already moving\\)"):
            await call.control.transfer("2001", "queue:general")
        call.forget_sent()
        await call.control.hang_up("2001")  # hanging up works on callbacks too
        assert call.moves() == [("Hangup", "PJSIP/2001-00000009", None, None, None, None, None)]

    run(tmp_path, scenario)

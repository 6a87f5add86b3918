"""The ACD and call control speak to the switch only through the typed interface (issue 12 item
5, decision 0015): here the switch is a plain Python object that keeps the typed actions it gets,
with no AMI anywhere, as a FreeSWITCH implementation would be. What is checked is what the ACD
asks for (exact values), and that a switch that cannot be asked is the agent's clear error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace

import pytest

from cc_core.acd.callcontrol import CallControl
from cc_core.acd.model import AgentState
from cc_core.acd.service import Acd, AgentError, AgentLeg, Waiter
from cc_core.bus import EventBus
from cc_core.switch.actions import (
    ActionResult,
    Endpoint,
    Originate,
    OriginateResult,
    Outside,
    Phone,
    Place,
    Redirect,
    SetVariables,
    SwitchAction,
    SwitchUnavailable,
)
from cc_core.switch.events import DeviceStateChanged
from cc_core.switch.view import ChannelInfo
from tests.acd.test_wait_pass import T0, Pass, RecordingAmi, _acd
from tests.acd.test_wait_pass import stores as stores  # the fixture

Stores = tuple[object, object, object, object]


class TypedSwitch:
    """A switch that is not Asterisk: it keeps typed actions and answers from a flag."""

    def __init__(self) -> None:
        self.connected = True
        self.sent: list[SwitchAction | Originate] = []
        self.down = False
        self.reloads = 0

    async def send(self, action: SwitchAction) -> ActionResult:
        if self.down:
            raise SwitchUnavailable("link down")
        self.sent.append(action)
        return ActionResult(True)

    async def originate(self, action: Originate) -> OriginateResult:
        self.sent.append(action)
        return OriginateResult(True)

    async def reload_accounts(self) -> None:
        self.reloads += 1

    def dial_string(self, endpoint: Endpoint) -> str:
        match endpoint:
            case Phone(extension=extension):
                return f"user/{extension}"
            case Outside(number=number, trunk=trunk):
                return f"sofia/gateway/{trunk}/{number}"
        raise AssertionError(endpoint)

    def phone_device(self, extension: str) -> str:
        return f"user/{extension}"

    def endpoint_of_device(self, device: str) -> str | None:
        return device.removeprefix("user/") if device.startswith("user/") else None

    def endpoint_of_channel(self, channel: str) -> str:
        return channel.removeprefix("sofia/internal/").split("@", 1)[0]


@pytest.fixture
def switch() -> Iterator[TypedSwitch]:
    yield TypedSwitch()


def _typed_acd(stores: Stores, switch: TypedSwitch, trunk: str = "") -> Acd:
    acd = _acd(stores, RecordingAmi())  # type: ignore[arg-type]
    acd.switch = switch
    acd.trunk = trunk
    return acd


def test_a_caller_hearing_music_is_sent_to_the_agent_with_typed_actions(stores: Stores, switch: TypedSwitch) -> None:
    calls = stores[0]
    calls.call_arrived("u.2", "u.2", "13800000002", "12333", "PJSIP/trunk-u.2", T0)  # type: ignore[attr-defined]

    async def main() -> None:
        acd = _typed_acd(stores, switch)
        acd.agents["2000"] = replace(acd.agents["2000"], state=AgentState.PAUSED)
        first = Pass("u.2", {"HOTLINE_QUEUE": "bench", "HOTLINE_PRIORITY": "0"})
        await acd.wait(first)  # type: ignore[arg-type]
        acd.agents["2000"] = replace(acd.agents["2000"], state=AgentState.AVAILABLE)
        acd.dispatch()
        await asyncio.gather(*list(acd._tasks))
        await acd.close()

    asyncio.run(main())
    assert switch.sent == [
        SetVariables("PJSIP/trunk-u.2", {"HOTLINE_DIAL": "user/2000", "HOTLINE_RING_S": "20", "HOTLINE_AGENT": "2000"}),
        Redirect("PJSIP/trunk-u.2", Place("hotline-connect", "2000")),
    ]


def test_a_callback_is_one_typed_originate_from_the_agents_mobile(stores: Stores, switch: TypedSwitch) -> None:
    callbacks = stores[3]
    callback_id = callbacks.request("13800138000", "a.1", "abandoned", T0)  # type: ignore[attr-defined]

    async def main() -> Acd:
        acd = _typed_acd(stores, switch, trunk="carrier")
        acd.agents["2000"] = replace(acd.agents["2000"], state=AgentState.OFFLINE)
        await acd.login("2000", "m:13900139000")
        assert callbacks.claim(callback_id, T0)  # type: ignore[attr-defined]
        await acd._place(callback_id, "13800138000", "2000")
        await asyncio.gather(*list(acd._tasks))
        return acd

    acd = asyncio.run(main())
    [originate] = switch.sent
    assert isinstance(originate, Originate)
    leg = originate.channel_id
    assert leg.startswith(f"cb-{callback_id}-")
    assert originate == Originate(
        endpoint=Outside("13900139000", "carrier"),
        to=Place("hotline-callback", "13800138000"),
        ring_s=20,
        caller_id="回电 <13800138000>",
        channel_id=leg,
        variables={
            "HOTLINE_CALLBACK": str(callback_id),
            "HOTLINE_ATTEMPT": originate.variables["HOTLINE_ATTEMPT"],
            "HOTLINE_AGENT_ID": "2000",
            "HOTLINE_CALL": leg,
            "HOTLINE_LEG": "callback",
        },
    )
    assert originate.variables["HOTLINE_ATTEMPT"].isdigit()
    assert acd.agents["2000"].state is AgentState.ON_CALL  # the typed answer was "answered"


def _on_a_call(stores: Stores, switch: TypedSwitch) -> tuple[Acd, CallControl]:
    acd = _typed_acd(stores, switch)
    acd.agents["2000"] = replace(acd.agents["2000"], state=AgentState.ON_CALL)
    acd.legs["2000"] = AgentLeg("2000", "u.3", "bench", "a.3")
    waiter = Waiter("u.3", "PJSIP/trunk-u.3", "13800000003", None, T0, state="connected")  # type: ignore[arg-type]
    acd.waiters["u.3"] = waiter
    acd.view.channels["a.3"] = ChannelInfo("a.3", "u.3", "PJSIP/2000-00000003")
    return acd, CallControl(acd, EventBus())


def test_hold_moves_both_parties_with_typed_actions(stores: Stores, switch: TypedSwitch) -> None:
    _, control = _on_a_call(stores, switch)
    assert asyncio.run(control.hold("2000")) == "u.3"
    assert switch.sent == [
        SetVariables("PJSIP/trunk-u.3", {"HOTLINE_ROOM": "u.3"}),
        SetVariables("PJSIP/2000-00000003", {"HOTLINE_ROOM": "u.3"}),
        Redirect(
            "PJSIP/trunk-u.3", Place("hotline-room", "caller"), ("PJSIP/2000-00000003", Place("hotline-held", "s"))
        ),
    ]


def test_a_switch_that_cannot_be_asked_is_the_agents_error_not_an_exception(
    stores: Stores, switch: TypedSwitch
) -> None:
    """Before the typed interface, a lost AMI link during hold's first Setvar raised the link's
    own exception out of call control (a 500 on the workstation); now it is an AgentError."""
    _, control = _on_a_call(stores, switch)
    switch.down = True
    with pytest.raises(AgentError, match="the switch did not carry the request out: link down"):
        asyncio.run(control.hold("2000"))
    assert control.rooms["u.3"].moved is False


def test_phones_are_named_as_the_switch_names_them(stores: Stores, switch: TypedSwitch) -> None:
    """Device and channel names are the switch's: the ACD asks the interface, it does not parse
    ``PJSIP/…`` itself (a login on a phone whose device the view reports, then that device
    going unavailable, then back)."""

    async def main() -> list[tuple[AgentState, bool]]:
        acd = _typed_acd(stores, switch)
        acd.agents["2000"] = replace(acd.agents["2000"], state=AgentState.OFFLINE)
        acd.view.devices["user/2000"] = "NOT_INUSE"
        seen = [(a.state, a.device_reachable) for a in [await acd.login("2000")]]
        await acd.on_device(DeviceStateChanged(device="user/2000", state="UNAVAILABLE"))
        seen.append((acd.agents["2000"].state, acd.agents["2000"].device_reachable))
        await acd.on_device(DeviceStateChanged(device="PJSIP/2000", state="NOT_INUSE"))  # not this switch's
        seen.append((acd.agents["2000"].state, acd.agents["2000"].device_reachable))
        await acd.on_device(DeviceStateChanged(device="user/2000", state="NOT_INUSE"))
        seen.append((acd.agents["2000"].state, acd.agents["2000"].device_reachable))
        assert acd._agent_on("sofia/internal/2000@127.0.0.1") == "2000"
        await acd.close()
        return seen

    # Unreachable pauses an available agent at once; reachable again leaves the pause to them.
    assert asyncio.run(main()) == [
        (AgentState.AVAILABLE, True),
        (AgentState.PAUSED, False),
        (AgentState.PAUSED, False),
        (AgentState.PAUSED, True),
    ]

"""The typed switch actions and their Asterisk translation (issue 12 item 5, decision 0015).

Only :mod:`cc_core.switch.asterisk` turns a domain's request into AMI: these tests pin the exact
AMI each typed action becomes (the same dictionaries the ACD and call control built themselves
before), how AMI answers become typed results, and that a link that is down or silent is one
exception, :class:`SwitchUnavailable`, whatever the transport raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from cc_core.switch.actions import (
    ActionResult,
    Hangup,
    Originate,
    OriginateResult,
    Outside,
    Phone,
    Place,
    Redirect,
    SetVariables,
    SwitchControl,
    SwitchUnavailable,
)
from cc_core.switch.ami import AmiUnavailable
from cc_core.switch.asterisk import ORIGINATE_GRACE_S, SIP_MODULE, AsteriskControl, ami_action


class ScriptedLink:
    """An AMI link that answers from a script (one answer, or an exception, per action) and
    keeps what was sent with its timeout."""

    connected = True

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[dict[str, Any], float | None]] = []

    async def action(
        self, action: Mapping[str, Any], *, as_list: bool | None = None, timeout: float | None = None
    ) -> Any:
        self.sent.append((dict(action), timeout))
        answer = self.answers.pop(0) if self.answers else {"Response": "Success"}
        if isinstance(answer, BaseException):
            raise answer
        return answer


def test_each_typed_action_becomes_the_exact_ami_the_domains_used_to_build() -> None:
    assert ami_action(SetVariables("PJSIP/trunk-1", {"HOTLINE_DIAL": "PJSIP/1001", "HOTLINE_RING_S": "20"})) == [
        {"Action": "Setvar", "Channel": "PJSIP/trunk-1", "Variable": "HOTLINE_DIAL", "Value": "PJSIP/1001"},
        {"Action": "Setvar", "Channel": "PJSIP/trunk-1", "Variable": "HOTLINE_RING_S", "Value": "20"},
    ]
    assert ami_action(Redirect("PJSIP/trunk-1", Place("hotline-connect", "1001"))) == [
        {
            "Action": "Redirect",
            "Channel": "PJSIP/trunk-1",
            "Context": "hotline-connect",
            "Exten": "1001",
            "Priority": "1",
        }
    ]
    both = Redirect("PJSIP/trunk-1", Place("hotline-room", "caller"), ("PJSIP/1001-2", Place("hotline-held")))
    assert ami_action(both) == [
        {
            "Action": "Redirect",
            "Channel": "PJSIP/trunk-1",
            "Context": "hotline-room",
            "Exten": "caller",
            "Priority": "1",
            "ExtraChannel": "PJSIP/1001-2",
            "ExtraContext": "hotline-held",
            "ExtraExten": "s",
            "ExtraPriority": "1",
        }
    ]
    assert ami_action(Hangup("PJSIP/1002-3")) == [{"Action": "Hangup", "Channel": "PJSIP/1002-3"}]
    originate = Originate(
        endpoint=Outside("13800138000", "carrier"),
        to=Place("hotline-callback", "13900139000"),
        ring_s=20,
        caller_id="回电 <13900139000>",
        channel_id="cb-7-abcd",
        variables={"HOTLINE_CALLBACK": "7", "HOTLINE_LEG": "callback"},
    )
    assert ami_action(originate) == [
        {
            "Action": "Originate",
            "Channel": "PJSIP/13800138000@carrier",
            "Context": "hotline-callback",
            "Exten": "13900139000",
            "Priority": "1",
            "Timeout": "20000",
            "CallerID": "回电 <13900139000>",
            "ChannelId": "cb-7-abcd",
            "Async": "true",
            "Variable": ["HOTLINE_CALLBACK=7", "HOTLINE_LEG=callback"],
        }
    ]


def test_dial_strings_and_names_are_the_switchs_own_syntax() -> None:
    control = AsteriskControl(ScriptedLink())
    assert control.dial_string(Phone("1001")) == "PJSIP/1001"
    assert control.dial_string(Outside("13800138000", "carrier")) == "PJSIP/13800138000@carrier"
    assert control.phone_device("1001") == "PJSIP/1001"
    assert control.endpoint_of_device("PJSIP/1001") == "1001"
    assert control.endpoint_of_device("Local/1001@hotline-connect") is None
    assert control.endpoint_of_channel("PJSIP/1001-0000002a") == "1001"
    assert control.endpoint_of_channel("PJSIP/carrier-00000005") == "carrier"


def test_the_first_refused_variable_stops_the_rest_and_says_why() -> None:
    link = ScriptedLink({"Response": "Success"}, {"Response": "Error", "Message": "No such channel"})
    control = AsteriskControl(link)
    result = asyncio.run(control.send(SetVariables("PJSIP/gone-1", {"A": "1", "B": "2", "C": "3"})))
    assert result == ActionResult(False, "No such channel")
    assert [sent["Variable"] for sent, _ in link.sent] == ["A", "B"]


def test_a_redirect_answered_success_is_ok_and_an_error_carries_the_message() -> None:
    link = ScriptedLink(
        {"Response": "Success", "Message": "Redirect successful"}, {"Response": "Error", "Message": "x"}
    )
    control = AsteriskControl(link)
    where = Redirect("PJSIP/trunk-1", Place("hotline-queue"))
    assert asyncio.run(control.send(where)) == ActionResult(True)
    assert asyncio.run(control.send(where)) == ActionResult(False, "x")


@pytest.mark.parametrize(
    "failure", [TimeoutError(), AmiUnavailable("AMI link lost before the answer")], ids=["timeout", "link-lost"]
)
def test_a_silent_or_lost_link_is_switch_unavailable(failure: BaseException) -> None:
    control = AsteriskControl(ScriptedLink(failure))
    with pytest.raises(SwitchUnavailable) as caught:
        asyncio.run(control.send(Hangup("PJSIP/1001-1")))
    expected = "the switch did not answer Hangup in time" if isinstance(failure, TimeoutError) else str(failure)
    assert str(caught.value) == expected


def _originate(ring_s: int = 25) -> Originate:
    return Originate(Phone("1001"), Place("hotline-callback", "13800138000"), ring_s, "回电", "cb-1", {})


def test_originate_waits_ring_time_plus_grace_and_reads_originate_response() -> None:
    answered = [{"Response": "Success", "Message": "Originate successfully queued"}]
    answered.append({"Event": "OriginateResponse", "Response": "Success", "Reason": "4"})
    refused = [{"Response": "Success"}, {"Event": "OriginateResponse", "Response": "Failure", "Reason": "3"}]
    link = ScriptedLink(answered, refused, {"Response": "Success"})
    control = AsteriskControl(link)
    assert asyncio.run(control.originate(_originate())) == OriginateResult(True)
    assert asyncio.run(control.originate(_originate())) == OriginateResult(False, "3")
    # No OriginateResponse at all (a fake switch, a cut answer) is not an answer.
    assert asyncio.run(control.originate(_originate())).answered is False
    assert [timeout for _, timeout in link.sent] == [25 + ORIGINATE_GRACE_S] * 3
    assert ORIGINATE_GRACE_S == 15


def test_reloading_accounts_reloads_the_sip_module_through_the_given_reloader() -> None:
    reloaded: list[str] = []
    control = AsteriskControl(ScriptedLink(), reloaded.append)
    asyncio.run(control.reload_accounts())
    assert reloaded == [SIP_MODULE] == ["res_pjsip.so"]
    with pytest.raises(SwitchUnavailable):
        asyncio.run(AsteriskControl(ScriptedLink()).reload_accounts())


def test_asterisk_control_is_a_switch_control() -> None:
    control: SwitchControl = AsteriskControl(ScriptedLink())  # mypy checks the Protocol here
    assert control.connected is True

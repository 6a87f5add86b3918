"""Agents' phones (T2): each registers with its own generated password, and the contact center
can ring it; the harness's phone answers after the delay the test asks for."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.harness.ami import AmiPeer, match
from tests.harness.hotline import Hotline
from tests.harness.sipp import register_args, run_sipp
from tests.harness.world import World

pytestmark = pytest.mark.switch


def test_every_agent_phone_is_registered(hotline: Hotline, world: World, cc_ami: AmiPeer) -> None:
    answer = cc_ami.action({"Action": "PJSIPShowContacts"}, as_list=True)
    contacts = {m.get("Endpoint"): m.get("Status") for m in answer if m.get("Event") == "ContactList"}
    for agent in ("1001", "1002", "1003"):
        assert agent in contacts, f"phone {agent} not registered: {contacts}"


def test_phone_answers_after_the_delay_asked(hotline: Hotline, world: World, cc_ami: AmiPeer) -> None:
    assert world.ami is not None
    world.phone("1002").answers_after(2).hangs_up_after(1)
    since_world = world.ami.mark()
    since_cc = cc_ami.mark()
    started = time.monotonic()
    cc_ami.action(
        {
            "Action": "Originate",
            "Channel": "PJSIP/1002",
            "Application": "Wait",
            "Data": "5",
            "CallerID": "Hotline <12333>",
            "Async": "true",
        },
        timeout=30,
    )
    ringing = world.ami.wait_for(match(Event="UserEvent", UserEvent="PhoneRinging"), since=since_world, what="ring")
    answered = world.ami.wait_for(match(Event="UserEvent", UserEvent="PhoneAnswered"), since=since_world, what="answer")
    assert ringing.get("Phone") == answered.get("Phone") == "1002"
    assert time.monotonic() - started >= 2.0
    # The phone hangs up on its own cue; the contact center sees the agent's leg end.
    cc_ami.wait_for(
        lambda e: e.get("Event") == "Hangup" and e.get("Channel", "").startswith("PJSIP/1002-"),
        since=since_cc,
        what="agent leg hang-up",
    )


def _register(hotline: Hotline, agent: str, password: str) -> subprocess.CompletedProcess[str]:
    """Register as an agent's phone with SIPp (an independent SIP stack) and digest auth."""
    return run_sipp(hotline.settings.switch.sip_port, *register_args(agent, password), timeout=30)


def test_agent_registers_with_its_own_password_only(hotline: Hotline, cc_ami: AmiPeer) -> None:
    """A phone (or softphone) registers with the agent's generated password; a wrong password,
    or another agent's, is refused (P2: no default or shared password)."""
    # 1004 is the agent whose phone the simulated world leaves unregistered.
    ok = _register(hotline, "1004", hotline.secrets.agent_password("1004"))
    assert ok.returncode == 0, ok.stdout[-1500:] + ok.stderr[-1500:]
    since = cc_ami.mark()
    wrong = _register(hotline, "1004", "not-the-password")
    assert wrong.returncode != 0
    cc_ami.wait_for(match(Event="ChallengeResponseFailed"), since=since, timeout=10, what="failed digest")
    other = _register(hotline, "1004", hotline.secrets.agent_password("1002"))
    assert other.returncode != 0

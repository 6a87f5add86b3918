"""The harness checked against an independent SIP stack (issue 2, item 6): SIPp, from
Debian's sip-tester package, calls the hotline number and is answered; and a carrier's call
with a hostile caller ID reaches the controller filtered (issue 11 item 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.ami import AmiPeer, match
from tests.harness.calls import call_store, wait_record
from tests.harness.hotline import HOTLINE_NUMBER, Hotline
from tests.harness.sipp import SCENARIOS, call_args, run_sipp

pytestmark = pytest.mark.switch


def _agi_of_carrier_call(cc_ami: AmiPeer, since: int) -> dict[str, str]:
    return cc_ami.wait_for(
        lambda e: e.get("Event") == "AGIExecStart" and e.get("Channel", "").startswith("PJSIP/carrier-"),
        since=since,
        what="AGI for the SIPp call",
    )


def test_sipp_call_is_answered(controller: Hotline, cc_ami: AmiPeer, tmp_path: Path) -> None:
    since = cc_ami.mark()
    result = run_sipp(controller.settings.switch.sip_port, *call_args(HOTLINE_NUMBER), "-trace_err", cwd=tmp_path)
    assert result.returncode == 0, f"SIPp failed ({result.returncode}): {result.stdout[-2000:]} {result.stderr[-2000:]}"
    # The hotline's side: the call entered the dialplan's front door and the controller's AGI.
    # SIPp's built-in caller is "sipp": no digit, so the trunk's filter leaves no number.
    agi = _agi_of_carrier_call(cc_ami, since)
    assert agi.get("CallerIDNum") == "<unknown>"
    cc_ami.wait_for(match(Event="Hangup", Uniqueid=agi["Uniqueid"]), since=since, what="hang-up of the SIPp call")


HOSTILE_USER = "139&00,11/22%0A33"  # as tests/fixtures/sipp/hostile_caller.xml sends it
FILTERED = "13900112233"


def test_a_hostile_caller_id_is_cut_down_to_digits_before_anything_uses_it(
    controller: Hotline, cc_ami: AmiPeer, tmp_path: Path
) -> None:
    """From: <sip:139&00,11/22%0A33@…>: the trunk context keeps digits and '+' before the front
    door, so the AGI headers, every later event of the call, the UserEvents and the call record
    hold 13900112233 and nothing of '&', ',', '/' or the line break."""
    since = cc_ami.mark()
    scenario = SCENARIOS / "hostile_caller.xml"
    result = run_sipp(
        controller.settings.switch.sip_port,
        "-sf", str(scenario), "-s", HOTLINE_NUMBER, "-m", "1", "-timeout", "30", "-trace_err",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, f"SIPp failed ({result.returncode}): {result.stdout[-2000:]} {result.stderr[-2000:]}"
    agi = _agi_of_carrier_call(cc_ami, since)
    uid = agi["Uniqueid"]
    assert agi["CallerIDNum"] == FILTERED
    cc_ami.wait_for(match(Event="Hangup", Uniqueid=uid), since=since, what="hang-up of the hostile call")
    # What the switch reported before the filter ran (Newchannel) is the raw user part; from the
    # front door on, every event of the call carries the filtered number only.
    events = [e for e in cc_ami.events(since) if e.get("Uniqueid") == uid]
    front_door = next(i for i, e in enumerate(events) if e.get("Event") == "Newexten" and e.get("Context") == "hotline")
    later = {e.get("CallerIDNum") for e in events[front_door:] if "CallerIDNum" in e}
    assert later == {FILTERED}
    for event in events[front_door:]:
        for key, value in event.items():
            assert "&" not in value and "11/22" not in value and "\n" not in value, (key, value)
    # The controller's call record (from the AGI headers).
    record = wait_record(call_store(controller), uid, "ended")
    assert record.caller_number == FILTERED
    # The Diversion header's "5\nagi_extension:110" did not pick another flow.
    assert record.dialed_number == HOTLINE_NUMBER

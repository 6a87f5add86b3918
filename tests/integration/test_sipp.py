"""The harness checked against an independent SIP stack (issue 2, item 6): SIPp, from
Debian's sip-tester package, calls the hotline number and is answered."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.ami import AmiPeer, match
from tests.harness.hotline import HOTLINE_NUMBER, Hotline
from tests.harness.sipp import call_args, run_sipp

pytestmark = pytest.mark.switch


def test_sipp_call_is_answered(controller: Hotline, cc_ami: AmiPeer, tmp_path: Path) -> None:
    since = cc_ami.mark()
    result = run_sipp(controller.settings.switch.sip_port, *call_args(HOTLINE_NUMBER), "-trace_err", cwd=tmp_path)
    assert result.returncode == 0, f"SIPp failed ({result.returncode}): {result.stdout[-2000:]} {result.stderr[-2000:]}"
    # The hotline's side: the call entered the dialplan's front door and the controller's AGI.
    agi = cc_ami.wait_for(
        lambda e: e.get("Event") == "AGIExecStart" and e.get("CallerIDNum") == "sipp",
        since=since,
        what="AGI for the SIPp call",
    )
    cc_ami.wait_for(match(Event="Hangup", Uniqueid=agi["Uniqueid"]), since=since, what="hang-up of the SIPp call")

"""The first end-to-end path (issue 2, item 7; T6): a carrier's call to the hotline number is
answered, the controller runs the IVR over FastAGI, the caller's RFC 4733 DTMF arrives, and the
call record holds the arrival, the keys, the path, the hang-up cause and the timestamps."""

from __future__ import annotations

import time

import pytest
from pydub import AudioSegment

from tests.harness.ami import AmiPeer, match
from tests.harness.calls import (
    answer_menu,
    call_store,
    hotline_channel,
    wait_node,
    wait_record,
    wait_until,
    wait_wav_closed,
)
from tests.harness.hotline import Hotline
from tests.harness.world import World

pytestmark = pytest.mark.switch


def test_call_reaches_fastagi_and_dtmf_is_recorded(controller: Hotline, world: World, cc_ami: AmiPeer) -> None:
    for agent in ("1001", "1002", "1003"):
        world.phone(agent).never_answers()
    store = call_store(controller)
    since = cc_ami.mark()
    call = world.call_hotline(caller="13800138000")
    uid = hotline_channel(cc_ami, since)["Uniqueid"]
    arrived = wait_record(store, uid, "arrived")
    assert (arrived.caller_number, arrived.dialed_number) == ("13800138000", "12333")

    mark = answer_menu(cc_ami, call, uid, "1", since)  # main menu → consult
    mark = answer_menu(cc_ami, call, uid, "#", mark)  # consult → back to the main menu
    answer_menu(cc_ami, call, uid, "0", mark)  # → an agent
    record = wait_record(store, uid, "exit")
    assert record.ivr_exit == "queue" and record.ivr_exit_detail == "general"
    assert record.digits == "1#0"
    # Each key crossed the SIP leg as RFC 4733 and reached the hotline's channel.
    received = [
        e["Digit"]
        for e in cc_ami.events(since)
        if e.get("Event") == "DTMFEnd" and e.get("Uniqueid") == uid and e.get("Direction") == "Received"
    ]
    assert received == ["1", "#", "0"]
    path = wait_node(store, uid, "agent_queue")
    assert path == ["welcome", "hours", "main_menu", "consult_menu", "main_menu", "agent", "agent_queue"]
    # The controller's ACD took the caller into the queue the flow named (issue 4), and the
    # caller waits in the dialplan's loop with music.
    queued = wait_until(lambda: (v := store.get(uid)) is not None and v.queued_at is not None and v, what="queued")
    assert queued.queue == "general"  # type: ignore[attr-defined]
    cc_ami.wait_for(match(Event="MusicOnHoldStart", Uniqueid=uid), since=since, what="hold music")

    call.hang_up()
    ended = wait_record(store, uid, "ended")
    assert (ended.hangup_cause, ended.hangup_cause_text) == (16, "Normal Clearing")  # the caller's cause
    assert ended.arrived_at <= ended.ended_at  # type: ignore[operator]
    assert ended.flow == "main" and ended.flow_version


def test_caller_who_hangs_up_during_welcome_is_recorded(controller: Hotline, world: World, cc_ami: AmiPeer) -> None:
    store = call_store(controller)
    since = cc_ami.mark()
    call = world.call_hotline(caller="13912345678")
    uid = hotline_channel(cc_ami, since)["Uniqueid"]
    call.hang_up()
    cc_ami.wait_for(match(Event="Hangup", Uniqueid=uid), since=since, what="hotline hangup")
    ended = wait_record(store, uid, "ended")
    assert ended.digits == ""
    assert (ended.hangup_cause, ended.hangup_cause_text) == (16, "Normal Clearing")
    assert wait_record(store, uid, "exit").ivr_exit == "abandoned"


def test_caller_hears_the_welcome(controller: Hotline, world: World, cc_ami: AmiPeer) -> None:
    """What the caller's side receives is audio (the welcome prompt), not silence."""
    inside = f"{world.instance.inside}/spool/heard-{time.monotonic_ns()}.wav"
    since = cc_ami.mark()
    call = world.call_hotline(caller="13700001111", record=inside)
    uid = hotline_channel(cc_ami, since)["Uniqueid"]
    # The welcome has played in full once the main menu's question starts.
    answer_menu(cc_ami, call, uid, "", since)
    call.hang_up()
    call.wait_hung_up()
    path = world.instance.host_path(inside)
    wait_wav_closed(path)
    heard = AudioSegment.from_file(path)
    assert heard.duration_seconds > 3
    assert heard.rms > 200, f"the caller heard near-silence (rms {heard.rms})"

"""The first end-to-end path (issue 2, item 7; T6 entry, T1 phone side): a carrier's call to
the hotline number is answered, the controller plays the greeting over FastAGI, the caller's
RFC 4733 DTMF arrives in GET DATA, and the call record is written with digits, hang-up cause
and timestamps."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cc_core.calls.store import CallStore, CallView
from cc_core.db.session import make_engine, make_sessionmaker
from tests.harness.ami import AmiPeer, match
from tests.harness.hotline import Hotline
from tests.harness.world import World

pytestmark = pytest.mark.switch


def call_store(hotline: Hotline) -> CallStore:
    return CallStore(make_sessionmaker(make_engine(hotline.settings.database_url)))


def wait_record(store: CallStore, uniqueid: str, done: str, timeout: float = 15.0) -> CallView:
    """Wait until the call record has reached a state (``arrived``, ``digits`` or ``ended``)."""
    deadline = time.monotonic() + timeout
    view = None
    while time.monotonic() < deadline:
        view = store.get(uniqueid)
        if view is not None and (
            done == "arrived" or (done == "digits" and view.digits) or (done == "ended" and view.ended_at is not None)
        ):
            return view
        time.sleep(0.05)
    raise AssertionError(f"call record {uniqueid} did not reach {done!r} in {timeout} s: {view}")


def wait_wav_closed(path: Path, timeout: float = 10.0) -> None:
    """Wait until Asterisk has closed a WAV: its RIFF header then holds the file's real size."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 44:
            head = path.read_bytes()[:8]
            if head[:4] == b"RIFF" and int.from_bytes(head[4:8], "little") + 8 == path.stat().st_size:
                return
        time.sleep(0.05)
    raise AssertionError(f"{path} was not closed in {timeout} s")


def hotline_channel(cc_ami: AmiPeer, since: int) -> dict[str, str]:
    """The contact center's channel of the newest inbound call, once its AGI asks for digits."""
    return cc_ami.wait_for(
        lambda e: e.get("Event") == "AGIExecStart" and e.get("Command", "").startswith("GET DATA"),
        timeout=20,
        since=since,
        what="GET DATA",
    )


def test_call_reaches_fastagi_and_dtmf_is_recorded(controller: Hotline, world: World, cc_ami: AmiPeer) -> None:
    store = call_store(controller)
    since = cc_ami.mark()
    call = world.call_hotline(caller="13800138000")
    agi = hotline_channel(cc_ami, since)
    uniqueid = agi["Uniqueid"]
    arrived = wait_record(store, uniqueid, "arrived")
    assert arrived.caller_number == "13800138000"
    assert arrived.dialed_number == "12333"

    call.press("12#")
    cc_ami.wait_for(
        lambda e: (
            e.get("Event") == "AGIExecEnd"
            and e.get("Uniqueid") == uniqueid
            and e.get("Command", "").startswith("GET DATA")
        ),
        since=since,
        what="end of GET DATA",
    )
    # Each digit crossed the SIP leg as RFC 4733 and reached the hotline's channel.
    received = [
        e["Digit"]
        for e in cc_ami.events(since)
        if e.get("Event") == "DTMFEnd" and e.get("Uniqueid") == uniqueid and e.get("Direction") == "Received"
    ]
    assert received == ["1", "2", "#"]
    record = wait_record(store, uniqueid, "digits")
    assert record.digits == "12"

    # The controller thanks the caller and the dialplan hangs up: normal clearing (16).
    call.wait_hung_up(since=0)
    ended = wait_record(store, uniqueid, "ended")
    assert ended.hangup_cause == 16
    assert ended.arrived_at <= ended.ended_at
    kinds = [kind for _at, kind, _detail in ended.events]
    assert kinds[:2] == ["arrived", "digits"] and "hangup" in kinds


def test_caller_who_hangs_up_during_greeting_is_recorded(controller: Hotline, world: World, cc_ami: AmiPeer) -> None:
    store = call_store(controller)
    since = cc_ami.mark()
    call = world.call_hotline(caller="13912345678")
    uniqueid = hotline_channel(cc_ami, since)["Uniqueid"]
    call.hang_up()
    cc_ami.wait_for(match(Event="Hangup", Uniqueid=uniqueid), since=since, what="hotline hangup")
    ended = wait_record(store, uniqueid, "ended")
    assert ended.digits == ""
    assert ended.hangup_cause is not None


def test_caller_hears_the_greeting(controller: Hotline, world: World, cc_ami: AmiPeer) -> None:
    """What the caller's side receives is audio (the greeting), not silence."""
    from pydub import AudioSegment

    inside = f"{world.instance.inside}/spool/heard-{time.monotonic_ns()}.wav"
    since = cc_ami.mark()
    call = world.call_hotline(caller="13700001111", record=inside)
    uniqueid = hotline_channel(cc_ami, since)["Uniqueid"]
    # Let the greeting play for a while, then hang up: the recording ends with the call.
    cc_ami.wait_for(
        lambda e: e.get("Event") == "AGIExecEnd" and e.get("Uniqueid") == uniqueid,
        timeout=30,
        since=since,
        what="greeting finished (digit timeout)",
    )
    call.hang_up()
    call.wait_hung_up()
    path = world.instance.host_path(inside)
    wait_wav_closed(path)
    heard = AudioSegment.from_file(path)
    assert heard.duration_seconds > 3
    assert heard.rms > 200, f"the caller heard near-silence (rms {heard.rms})"

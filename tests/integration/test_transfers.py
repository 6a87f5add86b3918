"""Call control on real calls (issue 4 item 6, T3, T5): hold, blind transfers to an agent, a queue
and an outside number, consultative transfer, and three-way calls where the agent drops the third
party or leaves the other two talking.

Agents act through the controller's control endpoint (``agents/<id>/call/<action>``), as the
workstation will. Who is in the call's room comes from the switch's ConfbridgeJoin/Leave events
and ``ConfbridgeList``; what the third party heard is recorded on the world's phone.
"""

from __future__ import annotations

import time

import pytest
from pydub import AudioSegment

from cc_core.errors import HotlineError
from tests.harness.acd import agent, agent_state, answered, dial_end, login, place, record, rung, stores, wait_agent
from tests.harness.ami import AmiPeer, Event, match
from tests.harness.calls import _agi_start, wait_until, wait_wav_closed
from tests.harness.hotline import Hotline
from tests.harness.world import World, WorldCall

pytestmark = pytest.mark.switch

IDLE, RR = "12340", "12341"
# The carrier's side of each call a test connected, by the hotline's uniqueid.
CALLS: dict[str, WorldCall] = {}


def on_call(world: World, *phones: str) -> None:
    """These phones answer and stay on the line until someone hangs up."""
    for phone in phones:
        world.phone(phone).answers_after(0.5).plays("").hangs_up_after(300)


def connect(acd: Hotline, world: World, cc_ami: AmiPeer, caller: str, expect: str = "1001") -> tuple[str, Event, int]:
    """A citizen calls, ``expect`` answers: (the call's uniqueid, the agent's DialBegin, a mark)."""
    call, uid, since = place(world, cc_ami, IDLE, caller)
    mark, ring = cc_ami.wait_for_at(
        lambda e: e.get("Event") == "DialBegin" and e.get("Uniqueid") == uid, since=since, what="the agent rung"
    )
    assert ring["DestChannel"].startswith(f"PJSIP/{expect}-")
    mark = answered(cc_ami, uid, mark)
    wait_agent(acd, expect, "on_call")
    CALLS[uid] = call
    return uid, ring, mark


def call_action(acd: Hotline, agent_id: str, action: str, **body: str) -> str:
    answer = agent(acd, agent_id, f"call/{action}", **body)
    assert answer["ok"] is True
    return str(answer["call"])


def joined(cc_ami: AmiPeer, room: str, who: str, since: int) -> int:
    """Wait until ``who`` (a channel name, or the caller's uniqueid, which names the room) has
    joined the call's room."""
    mark, _ = cc_ami.wait_for_at(
        lambda e: (
            e.get("Event") == "ConfbridgeJoin"
            and e.get("Conference") == room
            and who in (e.get("Channel"), e.get("Uniqueid"))
        ),
        since=since,
        what=f"{who} in room {room}",
    )
    return mark


def room_members(cc_ami: AmiPeer, room: str) -> list[str]:
    """The channels in a call's room, as the switch lists them now."""
    try:
        answer = cc_ami.action({"Action": "ConfbridgeList", "Conference": room}, as_list=True, timeout=3)
    except TimeoutError:
        # While a party moves, the switch can answer with an error and no list: the list's end
        # never comes. The caller (wait_members) asks again until its deadline.
        return []
    messages = answer if isinstance(answer, list) else [answer]
    return sorted(m["Channel"] for m in messages if m.get("Event") == "ConfbridgeList")


def wait_members(cc_ami: AmiPeer, room: str, count: int, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    members: list[str] = []
    while time.monotonic() < deadline:
        members = room_members(cc_ami, room)
        if len(members) == count:
            return members
        time.sleep(0.1)
    raise AssertionError(f"room {room} has {members}, not {count} members")


def hang_up(cc_ami: AmiPeer, channel: str) -> None:
    cc_ami.action({"Action": "Hangup", "Channel": channel})


def survey_asked(cc_ami: AmiPeer, uid: str, since: int) -> int:
    mark, _ = cc_ami.wait_for_at(_agi_start(uid, "STREAM FILE"), timeout=30, since=since, what="the survey question")
    return mark


def event_kinds(acd: Hotline, uid: str) -> list[str]:
    return [kind for _at, kind, _detail in record(acd, uid, "connected").events]


def finish(acd: Hotline, uid: str) -> None:
    call = CALLS.pop(uid, None)
    if call is not None:
        call.hang_up()


# ---- blind transfers ---------------------------------------------------------------------------------


def test_blind_transfer_to_an_agent(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    on_call(world, "1001", "1002")
    login(acd, "1001", "1002")
    uid, _ring, mark = connect(acd, world, cc_ami, "13800002001")
    call_action(acd, "1001", "transfer", to="agent:1002")
    mark, second = rung(cc_ami, uid, mark)
    assert second == "1002"
    mark, ended = dial_end(cc_ami, uid, mark)
    assert ended["DialStatus"] == "ANSWER"
    wait_agent(acd, "1001", "available")  # out of the call at once (no wrap-up in this queue)
    assert agent_state(acd, "1002")["state"] == "on_call"
    hang_up(cc_ami, ended["DestChannel"])  # the second agent ends the call
    survey_asked(cc_ami, uid, mark)
    CALLS[uid].press("5")
    view = record(acd, uid, "survey")
    assert view.survey_agent_id == "1002"
    transfer = [detail for _at, kind, detail in view.events if kind == "transfer"]
    assert transfer == [{"mode": "blind", "from": "1001", "to": "agent:1002"}]
    recordings, _ = stores(acd)
    legs = wait_until(lambda: sorted(r.agent_id or "" for r in recordings.for_call(uid)) == ["1001", "1002"], 10)
    assert legs
    finish(acd, uid)


def test_blind_transfer_to_a_queue(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    on_call(world, "1001", "1003")
    login(acd, "1001", "1003")
    uid, _ring, mark = connect(acd, world, cc_ami, "13800002002")
    call_action(acd, "1001", "transfer", to="queue:rr")
    mark, second = rung(cc_ami, uid, mark)
    assert second == "1003"  # the queue's free agent (the transferring agent is not offered it again)
    answered(cc_ami, uid, mark)
    assert "transfer" in event_kinds(acd, uid)
    finish(acd, uid)
    wait_agent(acd, "1003", "available")


def test_blind_transfer_to_an_outside_number_is_recorded(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    outside = "13912342003"
    on_call(world, "1001", outside)
    login(acd, "1001")
    uid, _ring, mark = connect(acd, world, cc_ami, "13800002003")
    call_action(acd, "1001", "transfer", to=f"number:{outside}")
    mark, ring = cc_ami.wait_for_at(
        lambda e: e.get("Event") == "DialBegin" and e.get("Uniqueid") == uid, since=mark, what="the outside number"
    )
    assert outside in ring["DialString"]
    mark, ended = dial_end(cc_ami, uid, mark)
    assert ended["DialStatus"] == "ANSWER"
    wait_agent(acd, "1001", "available")
    recordings, _ = stores(acd)
    legs = wait_until(lambda: {r.leg for r in recordings.for_call(uid)} == {"agent", "transfer"}, 10)
    assert legs
    finish(acd, uid)


# ---- hold, consultation, three-way ---------------------------------------------------------------------


def test_hold_plays_music_and_the_agent_takes_the_caller_back(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    on_call(world, "1001")
    login(acd, "1001")
    uid, ring, mark = connect(acd, world, cc_ami, "13800002004")
    agent_channel = ring["DestChannel"]
    call_action(acd, "1001", "hold")
    cc_ami.wait_for(match(Event="MusicOnHoldStart", Uniqueid=uid), since=mark, what="music for the held caller")
    joined(cc_ami, uid, uid, mark)
    assert room_members(cc_ami, uid) and len(room_members(cc_ami, uid)) == 1
    assert agent_state(acd, "1001")["state"] == "on_call"
    with pytest.raises(HotlineError, match="already on hold"):
        call_action(acd, "1001", "hold")
    call_action(acd, "1001", "unhold")
    joined(cc_ami, uid, agent_channel, mark)
    wait_members(cc_ami, uid, 2)
    # The agent hangs up: the caller, alone in the room, is asked for the survey.
    hang_up(cc_ami, agent_channel)
    survey_asked(cc_ami, uid, mark)
    kinds = event_kinds(acd, uid)
    assert kinds.index("hold") < kinds.index("unhold")
    finish(acd, uid)


def test_consultative_transfer_hands_the_caller_over(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    on_call(world, "1001", "1002")
    login(acd, "1001", "1002")
    uid, ring, mark = connect(acd, world, cc_ami, "13800002005")
    first_agent = ring["DestChannel"]
    call_action(acd, "1001", "consult", to="agent:1002")
    joined(cc_ami, uid, uid, mark)  # the caller waits in the room, with music
    mark, consult = cc_ami.wait_for_at(
        lambda e: e.get("Event") == "DialEnd" and e.get("Uniqueid") == ring["DestUniqueid"],
        since=mark,
        what="the consultation answered",
    )
    assert consult["DialStatus"] == "ANSWER" and consult["DestChannel"].startswith("PJSIP/1002-")
    wait_agent(acd, "1002", "on_call")
    call_action(acd, "1001", "hand-over")
    joined(cc_ami, uid, consult["DestChannel"], mark)
    cc_ami.wait_for(match(Event="Hangup", Channel=first_agent), since=mark, what="the first agent out")
    wait_agent(acd, "1001", "available")
    members = wait_members(cc_ami, uid, 2)
    assert consult["DestChannel"] in members
    hang_up(cc_ami, consult["DestChannel"])  # the second agent ends the call
    survey_asked(cc_ami, uid, mark)
    CALLS[uid].press("4")
    view = record(acd, uid, "survey")
    assert view.survey_agent_id == "1002" and view.survey_score == 4
    transfer = [detail for _at, kind, detail in view.events if kind == "transfer"]
    assert transfer == [{"mode": "consultative", "from": "1001", "to": "agent:1002"}]
    recordings, _ = stores(acd)
    legs = wait_until(lambda: sorted((r.leg, r.agent_id or "") for r in recordings.for_call(uid)), 10)
    assert legs == [("agent", "1001"), ("consult", "1002")]
    finish(acd, uid)


def test_consultation_cancelled_while_ringing(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    on_call(world, "1001")
    world.phone("1002").never_answers()
    login(acd, "1001", "1002")
    uid, ring, mark = connect(acd, world, cc_ami, "13800002006")
    call_action(acd, "1001", "consult", to="agent:1002")
    cc_ami.wait_for(
        lambda e: e.get("Event") == "DialBegin" and e.get("Uniqueid") == ring["DestUniqueid"],
        since=mark,
        what="the consultation ringing",
    )
    wait_agent(acd, "1002", "ringing")
    call_action(acd, "1001", "consult-cancel")
    joined(cc_ami, uid, ring["DestChannel"], mark)  # the agent is back with the caller
    wait_agent(acd, "1002", "available")
    assert wait_members(cc_ami, uid, 2)
    assert "consult_cancelled" in event_kinds(acd, uid)
    finish(acd, uid)


def test_three_way_call_carries_audio_and_the_agent_drops_the_third_party(
    acd: Hotline, world: World, cc_ami: AmiPeer
) -> None:
    """All three parties in one bridge, the caller's voice reaching the third party (T3)."""
    outside = "13912342007"
    heard = f"{world.instance.inside}/spool/third-{time.monotonic_ns()}.wav"
    on_call(world, "1001", outside)
    world.phone(outside).records(heard)
    login(acd, "1001")
    uid, ring, mark = connect(acd, world, cc_ami, "13800002007")
    agent_channel = ring["DestChannel"]
    call_action(acd, "1001", "consult", to=f"number:{outside}")
    mark, consult = cc_ami.wait_for_at(
        lambda e: e.get("Event") == "DialEnd" and e.get("Uniqueid") == ring["DestUniqueid"],
        since=mark,
        what="the third party answered",
    )
    assert consult["DialStatus"] == "ANSWER"
    third_channel = consult["DestChannel"]
    call_action(acd, "1001", "conference")
    members = wait_members(cc_ami, uid, 3)
    assert agent_channel in members and third_channel in members
    caller = CALLS[uid]
    assert world.ami is not None
    world_mark = world.ami.mark()
    caller.speak("hello-world&hello-world")
    world.ami.wait_for(match(Event="UserEvent", UserEvent="CallerPlayed"), since=world_mark, what="the caller spoke")
    call_action(acd, "1001", "drop-third")
    cc_ami.wait_for(match(Event="Hangup", Channel=third_channel), since=mark, what="the third party dropped")
    assert agent_channel in wait_members(cc_ami, uid, 2)
    path = world.instance.host_path(heard)
    wait_wav_closed(path)
    audio = AudioSegment.from_file(path)
    assert audio.duration_seconds > 2
    assert audio.dBFS > -45, f"the third party heard near-silence ({audio.dBFS:.1f} dBFS)"
    kinds = event_kinds(acd, uid)
    assert kinds.index("consult") < kinds.index("conference") < kinds.index("third_party_dropped")
    recordings, _ = stores(acd)
    assert wait_until(lambda: "consult" in {r.leg for r in recordings.for_call(uid)}, 10)
    finish(acd, uid)


def test_agent_leaves_a_three_way_call_and_the_others_talk_on(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    on_call(world, "1001", "1002")
    login(acd, "1001", "1002")
    uid, ring, mark = connect(acd, world, cc_ami, "13800002008")
    agent_channel = ring["DestChannel"]
    call_action(acd, "1001", "consult", to="1002")
    mark, consult = cc_ami.wait_for_at(
        lambda e: e.get("Event") == "DialEnd" and e.get("Uniqueid") == ring["DestUniqueid"],
        since=mark,
        what="the second agent answered",
    )
    call_action(acd, "1001", "conference")
    wait_members(cc_ami, uid, 3)
    call_action(acd, "1001", "leave")
    cc_ami.wait_for(match(Event="Hangup", Channel=agent_channel), since=mark, what="the first agent out")
    wait_agent(acd, "1001", "available")
    members = wait_members(cc_ami, uid, 2)
    assert consult["DestChannel"] in members
    assert agent_state(acd, "1002")["state"] == "on_call"
    hang_up(cc_ami, consult["DestChannel"])
    survey_asked(cc_ami, uid, mark)
    CALLS[uid].press("1")
    assert record(acd, uid, "survey").survey_agent_id == "1002"
    finish(acd, uid)


def test_call_control_refusals(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    login(acd, "1001")
    with pytest.raises(HotlineError, match="not on a call"):
        call_action(acd, "1001", "transfer", to="agent:1002")
    on_call(world, "1001")
    uid, _ring, _mark = connect(acd, world, cc_ami, "13800002009")
    with pytest.raises(HotlineError, match="not available"):
        call_action(acd, "1001", "consult", to="agent:1002")  # logged out
    with pytest.raises(HotlineError, match="unknown queue"):
        call_action(acd, "1001", "transfer", to="queue:nope")
    with pytest.raises(HotlineError, match="not a phone number"):
        call_action(acd, "1001", "transfer", to="number:12ab")
    with pytest.raises(HotlineError, match="no third party"):
        call_action(acd, "1001", "conference")
    assert agent_state(acd, "1001")["state"] == "on_call"  # nothing happened to the call
    finish(acd, uid)

"""The ACD on real calls (issue 4's Done-when; T4, T5, T7, T9, T10): citizens' calls from the
carrier reach agents' phones on the simulated world, chosen by the controller's router.

Every test logs in the agents it needs through the controller's real control endpoint, uses its
own caller numbers (the call history steers returning callers), and waits on the switch's events
(DialBegin names the agent rung) or on the database, never on a guessed delay.
"""

from __future__ import annotations

import json
import signal
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from pydub import AudioSegment

from cc_core.errors import HotlineError
from tests.harness.acd import (
    agent,
    agent_state,
    answered,
    dial_end,
    login,
    place,
    record,
    rung,
    status,
    stores,
    wait_agent,
)
from tests.harness.ami import AmiPeer, match
from tests.harness.calls import _agi_start, answer_collect, wait_until
from tests.harness.flows import REQUEST_NUMBER
from tests.harness.hotline import VIP_CALLER, Hotline
from tests.harness.world import World

pytestmark = pytest.mark.switch

IDLE, RR, OCC, SKILL, WRAP, VIP, RET = "12340", "12341", "12342", "12343", "12344", "12345", "12346"


# ---- strategies ------------------------------------------------------------------------------


def test_longest_idle_agent_answers_is_recorded_and_rated(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    """T9 longest idle, T5 recording with real audio, T7 the survey digit stored with the agent."""
    world.phone("1002").answers_after(0.5).plays("hello-world&hello-world").hangs_up_after(0.5)
    login(acd, "1002", "1001", "1003")  # 1002 has waited longest
    call, uid, since = place(world, cc_ami, IDLE, "13800001001")
    mark, chosen = rung(cc_ami, uid, since)
    assert chosen == "1002"
    mark, ended = dial_end(cc_ami, uid, mark)
    assert ended["DialStatus"] == "ANSWER"
    call.speak("hello-world")  # the caller talks too
    # The phone hangs up after its greeting: the caller is asked to rate the service.
    cc_ami.wait_for(_agi_start(uid, "STREAM FILE"), timeout=30, since=mark, what="the survey question")
    call.press("2")
    view = record(acd, uid, "survey")
    assert view.survey_score == 2 and view.survey_agent_id == "1002"
    assert view.agent_id == "1002" and view.queue == "idle"
    assert view.queued_at is not None and view.connected_at is not None
    assert view.queued_at <= view.connected_at
    # The call record's "answered" is the agent's answer (issue 11: it was never written).
    assert view.answered_at == view.connected_at
    kinds = [kind for _at, kind, _detail in view.events]
    assert kinds.index("queued") < kinds.index("ring") < kinds.index("agent_answered") < kinds.index("agent_left")
    call.hang_up()
    recordings, _ = stores(acd)

    def finished() -> object:
        done = [r for r in recordings.for_call(uid) if r.status != "recording"]
        return done or None

    [rec] = wait_until(finished, 20, "the recording closed")  # type: ignore[misc]
    assert rec.status == "done" and rec.agent_id == "1002"
    assert rec.duration_s is not None and rec.duration_s > 1.0
    audio = AudioSegment.from_wav(str(acd.instance.host_path(rec.file)))
    assert audio.dBFS > -45, f"the recording is silent ({audio.dBFS:.1f} dBFS)"


def test_round_robin_takes_turns(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    login(acd, "1003", "1001", "1002")
    order = []
    for n in range(3):
        world.phone("1001").hangs_up_after(0.5)
        world.phone("1002").hangs_up_after(0.5)
        world.phone("1003").hangs_up_after(0.5)
        call, uid, since = place(world, cc_ami, RR, f"1380000110{n}")
        mark, chosen = rung(cc_ami, uid, since)
        order.append(chosen)
        answered(cc_ami, uid, mark)
        call.hang_up()
        wait_agent(acd, chosen, "available")
    # Turns go by agent id, whoever waited longest: each agent once, in id order (wrapping).
    ids = ["1001", "1002", "1003"]
    start = ids.index(order[0])
    assert order == [ids[(start + k) % 3] for k in range(3)]


def test_skills_strategy_prefers_the_expert(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    login(acd, "1001", "1003", "1002")  # the expert (pension 5) logged in last
    call, uid, since = place(world, cc_ami, SKILL, "13800001201")
    _mark, chosen = rung(cc_ami, uid, since)
    assert chosen == "1002"
    view = record(acd, uid, "connected")
    assert view.skill == "pension"
    call.hang_up()


def test_least_occupied_counts_open_chats(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    login(acd, "1001", "1002")  # 1001 waited longest but has a chat open
    agent(acd, "1001", "chat-start")
    try:
        call, uid, since = place(world, cc_ami, OCC, "13800001301")
        mark, chosen = rung(cc_ami, uid, since)
        assert chosen == "1002"
        answered(cc_ami, uid, mark)
        call.hang_up()
    finally:
        agent(acd, "1001", "chat-end")


def test_vip_caller_is_served_first(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    """Priority by caller tags (T9): a VIP who called later is put through before a plain caller."""
    plain, plain_uid, since = place(world, cc_ami, VIP, "13800001401")
    record(acd, plain_uid, "queued")
    vip, vip_uid, _ = place(world, cc_ami, VIP, VIP_CALLER)
    record(acd, vip_uid, "queued")
    world.phone("1001").hangs_up_after(1)
    login(acd, "1001")
    first = cc_ami.wait_for(match(Event="DialBegin"), since=since, what="the first ring")
    assert first["Uniqueid"] == vip_uid
    # The plain caller is next, once the agent is free again.
    mark, chosen = rung(cc_ami, plain_uid, since, timeout=30)
    assert chosen == "1001"
    answered(cc_ami, plain_uid, mark)
    plain.hang_up()
    vip.hang_up()


def test_returning_caller_gets_the_same_agent(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    caller = "13800001501"
    login(acd, "1003")
    call, uid, since = place(world, cc_ami, RET, caller)
    assert rung(cc_ami, uid, since)[1] == "1003"
    record(acd, uid, "connected")
    call.hang_up()
    wait_agent(acd, "1003", "available")
    login(acd, "1001", "1002")  # now 1003 is the one who worked last; longest idle would skip them
    again, uid2, since2 = place(world, cc_ami, RET, caller)
    mark, chosen = rung(cc_ami, uid2, since2)
    assert chosen == "1003"
    answered(cc_ami, uid2, mark)
    again.hang_up()
    wait_agent(acd, "1003", "available")
    # While the returning caller's agent is busy, the caller is held for them, then anyone answers.
    agent(acd, "1003", "pause", reason="开会")
    third, uid3, since3 = place(world, cc_ami, RET, caller)
    queued = record(acd, uid3, "queued").queued_at
    assert queued is not None
    mark, chosen = rung(cc_ami, uid3, since3, timeout=40)
    assert chosen == "1001"  # the hold is over: longest idle, and 1001 logged in before 1002
    waited = (datetime.now(UTC) - queued).total_seconds()
    assert waited >= 19, f"the caller was not held for the returning agent ({waited:.1f} s)"
    answered(cc_ami, uid3, mark)
    third.hang_up()


def test_caller_asking_for_a_busy_agent_waits_for_them(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    """T9: the caller keys in agent 1002's work number; 1002 is on a call and 1001 is free, yet the
    call waits for 1002 (within the queue's requested_wait) and goes to 1002 once free."""
    world.phone("1002").answers_after(0.5).plays("").hangs_up_after(300)
    login(acd, "1002", "1001")
    first, first_uid, since = place(world, cc_ami, IDLE, "13800001951")
    mark, chosen = rung(cc_ami, first_uid, since)
    assert chosen == "1002"
    answered(cc_ami, first_uid, mark)
    call, uid, since = place(world, cc_ami, REQUEST_NUMBER, "13800001952")
    answer_collect(cc_ami, call, uid, "1002#", since)
    record(acd, uid, "queued")
    assert agent_state(acd, "1001")["state"] == "available"
    [waiting] = [w for w in status(acd)["waiting"] if w["uniqueid"] == uid]
    assert waiting["state"] == "waiting" and waiting["agent"] is None
    first.hang_up()  # 1002 is free again
    _mark, chosen = rung(cc_ami, uid, since)  # the first ring of this caller, whoever it was
    assert chosen == "1002"
    call.hang_up()


# ---- wrap-up, no answer, the caller leaving -------------------------------------------------------


def test_wrapup_keeps_the_agent_out_of_routing(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    """T4: 8 s of wrap-up in queue "wrap"; a second caller waits for it to end; the summary is kept."""
    world.phone("1001").hangs_up_after(0.5)
    login(acd, "1001")
    first, uid, since = place(world, cc_ami, WRAP, "13800001601")
    rung(cc_ami, uid, since)
    state = wait_agent(acd, "1001", "wrap_up")
    until = datetime.fromisoformat(state["wrapup_until"])
    first.hang_up()
    agent(acd, "1001", "summary", text="咨询养老金领取条件，已解答。")
    second, uid2, since2 = place(world, cc_ami, WRAP, "13800001602")
    record(acd, uid2, "queued")
    mark, chosen = rung(cc_ami, uid2, since2, timeout=30)
    rang_at = datetime.now(UTC)
    assert chosen == "1001"
    assert rang_at >= until, f"rung at {rang_at} during wrap-up (until {until})"
    answered(cc_ami, uid2, mark)
    view = record(acd, uid, "wrapup")
    assert view.summary == "咨询养老金领取条件，已解答。"
    assert view.wrapup_ended_at is not None and view.wrapup_ended_at >= until
    second.hang_up()


def test_wrapup_ended_early_and_extended_once(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    world.phone("1001").hangs_up_after(0.5)
    login(acd, "1001")
    call, uid, since = place(world, cc_ami, WRAP, "13800001701")
    rung(cc_ami, uid, since)
    wait_agent(acd, "1001", "wrap_up")
    agent(acd, "1001", "wrapup-more", seconds=30)
    with pytest.raises(HotlineError, match="already been extended"):
        agent(acd, "1001", "wrapup-more", seconds=30)
    agent(acd, "1001", "wrapup-done")
    assert agent_state(acd, "1001")["state"] == "available"
    call.hang_up()


def test_no_answer_moves_on_and_pauses_after_two_misses(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    """Item 4: the first agent lets it ring out, the next answers; a second miss pauses the first."""
    world.phone("1001").never_answers()
    world.phone("1002").hangs_up_after(0.5)
    login(acd, "1001", "1002")
    for n in range(2):
        call, uid, since = place(world, cc_ami, IDLE, f"1380000180{n}")
        mark, chosen = rung(cc_ami, uid, since)
        assert chosen == "1001"
        mark, ended = dial_end(cc_ami, uid, mark)
        assert ended["DialStatus"] == "NOANSWER"
        mark, chosen = rung(cc_ami, uid, mark)
        assert chosen == "1002", "the caller was not offered to the next agent"
        answered(cc_ami, uid, mark)
        call.hang_up()
        wait_agent(acd, "1002", "available")
    state = agent_state(acd, "1001")
    assert state["state"] == "paused" and state["pause_reason"] == "no answer"


def test_caller_hanging_up_while_it_rings_frees_the_agent_and_is_called_back(
    acd: Hotline, world: World, cc_ami: AmiPeer
) -> None:
    """Item 11 and T10: the ringing stops, no channel is left, the agent is free (not a miss); the
    abandoned call becomes a callback, placed agent first, then answered by the citizen."""
    caller = "13800001901"
    world.phone("1001").never_answers()
    login(acd, "1001")
    call, uid, since = place(world, cc_ami, IDLE, caller)
    mark, _chosen = rung(cc_ami, uid, since)
    assert world.ami is not None
    call.hang_up()
    _mark, ended = dial_end(cc_ami, uid, mark)
    assert ended["DialStatus"] == "CANCEL"
    cc_ami.wait_for(match(Event="Hangup", Uniqueid=ended["DestUniqueid"]), since=mark, what="the agent's leg gone")
    state = wait_agent(acd, "1001", "available")
    assert state["missed_in_row"] == 0
    _, callbacks = stores(acd)

    def listed() -> object:
        return [c for c in callbacks.list_day(_beijing_today()) if c.number == caller] or None

    [entry] = wait_until(listed, 10, "the abandoned call on the callback list")  # type: ignore[misc]
    assert entry.reason == "abandoned" and uid in callbacks.calls(entry.id)
    # Rung but never answered: the call record has no answer (issue 11: answered_at).
    abandoned = record(acd, uid, "ended")
    assert (abandoned.answered_at, abandoned.connected_at) == (None, None)
    # The callback: the agent answers first, then the citizen's phone rings and is answered.
    world_mark = world.ami.mark()
    world.phone("1001").answers_after(0.5).hangs_up_after(8)
    world.phone(caller).answers_after(0.5)
    world.ami.wait_for(match(Event="UserEvent", UserEvent="PhoneAnswered", Phone=caller), timeout=40, since=world_mark)
    # The controller knows its agent answered from the Originate's OriginateResponse, which the
    # AMI event filter of e85958b dropped: the agent stayed "ringing" until the Originate timed out
    # and was then counted as not answering (issue 11 item 5, manager.conf's eventfilter).
    wait_agent(acd, "1001", "on_call", timeout=5)

    def reached() -> object:
        done = [c for c in callbacks.list_day(_beijing_today()) if c.number == caller and c.status == "done"]
        return done or None

    [done] = wait_until(reached, 30, "the callback closed as done")  # type: ignore[misc]
    assert done.agent_id == "1001"
    attempts = callbacks.attempts(done.id)
    assert attempts[-1].result == "reached"


def _beijing_today() -> date:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


def test_two_callers_one_agent_never_double_assigned(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    world.phone("1001").hangs_up_after(1)
    login(acd, "1001")
    since = cc_ami.mark()
    first, uid1, _ = place(world, cc_ami, IDLE, "13800002001")
    second, uid2, _ = place(world, cc_ami, IDLE, "13800002002")
    record(acd, uid2, "queued")
    # Both are put through, one after the other; the agent's phone never rings twice at once.
    rung(cc_ami, uid1, since, timeout=30)
    mark, _chosen = rung(cc_ami, uid2, since, timeout=40)
    answered(cc_ami, uid2, mark)
    ringing = 0
    for event in cc_ami.events(since):
        if event.get("Event") == "DialBegin" and event.get("DestChannel", "").startswith("PJSIP/1001-"):
            ringing += 1
            assert ringing == 1, "agent 1001 was rung for two callers at once"
        elif event.get("Event") == "Hangup" and event.get("Channel", "").startswith("PJSIP/1001-"):
            ringing = max(0, ringing - 1)
    first.hang_up()
    second.hang_up()


def test_callback_key_while_waiting(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    """Item 3: a waiting caller hears the position and leaves the queue with 1 for a callback."""
    caller = "13800002101"
    call, uid, since = place(world, cc_ami, VIP, caller)
    record(acd, uid, "queued")
    mark = cc_ami.wait_for_at(_agi_start(uid, "STREAM FILE"), timeout=30, since=since, what="announcement")[0]
    cc_ami.wait_for(match(Event="AGIExecEnd", Uniqueid=uid), since=mark, what="announcement played")
    cc_ami.wait_for(
        lambda e: e.get("Event") == "Newexten" and e.get("Uniqueid") == uid and e.get("Application") == "WaitExten",
        since=mark,
        what="back to the music",
    )
    call.press("1")
    call.wait_hung_up(timeout=30, since=0)
    _, callbacks = stores(acd)
    mine = [c for c in callbacks.list_day(_beijing_today()) if c.number == caller]
    assert mine and mine[0].reason == "requested"
    callbacks.cancel(mine[0].id, datetime.now(UTC), "test over")


# ---- refusals -------------------------------------------------------------------------------------


def test_login_refusals(acd: Hotline) -> None:
    with pytest.raises(HotlineError, match="unknown extension"):
        agent(acd, "1001", "login", extension="9999")
    with pytest.raises(HotlineError, match="unknown agent"):
        agent(acd, "7777", "login")
    agent(acd, "1001", "login")
    with pytest.raises(HotlineError, match="already logged in"):
        agent(acd, "1001", "login")
    with pytest.raises(HotlineError, match="in use by agent 1001"):
        agent(acd, "1002", "login", extension="1001")
    assert status(acd)["agents"]["1002"]["state"] == "offline"


def test_agent_without_a_registered_phone_is_paused_at_login(acd: Hotline) -> None:
    """1004 has no phone registered in the simulated world: never rung, paused at once."""
    agent(acd, "1004", "login")
    state = agent_state(acd, "1004")
    assert state["state"] == "paused" and state["pause_reason"] == "device unreachable"
    with pytest.raises(HotlineError, match="unreachable"):
        agent(acd, "1004", "resume")


def test_control_endpoint_needs_the_token(acd: Hotline) -> None:
    import urllib.error
    import urllib.request

    ctl = acd.settings.controller
    request = urllib.request.Request(
        f"http://127.0.0.1:{ctl.control_port}/api/control/agents/1001/login", data=b"{}", method="POST"
    )
    request.add_header("Authorization", "Bearer wrong")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 401
    assert agent_state(acd, "1001")["state"] == "offline"
    # The web port, which the LAN reaches, serves neither the control endpoint (not even with
    # the right token) nor the health report's details (issue 11 item 8c, 8d).
    token = acd.secrets.control_token
    web = f"http://127.0.0.1:{ctl.web_port}"
    request = urllib.request.Request(f"{web}/api/control/acd", headers={"Authorization": f"Bearer {token}"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 404
    with urllib.request.urlopen(f"{web}/health", timeout=5) as answer:
        assert json.loads(answer.read()) == {"ok": True, "status": "ok"}


# ---- the controller's links failing mid-call (item 11) ---------------------------------------------


def phone_channel(world: World, phone: str, since: int) -> str:
    """The world's channel of an agent's phone that answered (from its PhoneAnswered event)."""
    assert world.ami is not None
    answered_event = world.ami.wait_for(
        match(Event="UserEvent", UserEvent="PhoneAnswered", Phone=phone), since=since, what=f"phone {phone} answered"
    )
    return answered_event["Channel"]


def test_ami_link_drop_mid_call_calls_carry_on_and_the_controller_resyncs(
    acd: Hotline, world: World, cc_ami: AmiPeer
) -> None:
    """While the AMI link is down the talking caller stays connected and the waiting caller keeps
    waiting (FastAGI still works); the agent's hang-up during the outage is found by the resync,
    which frees the agent for the waiting caller."""
    assert world.ami is not None
    world.phone("1001").answers_after(0.5).plays("").hangs_up_after(300)
    login(acd, "1001")
    world_mark = world.ami.mark()
    talking, talking_uid, since = place(world, cc_ami, IDLE, "13800001901")
    mark, chosen = rung(cc_ami, talking_uid, since)
    assert chosen == "1001"
    answered(cc_ami, talking_uid, mark)
    waiting, waiting_uid, _ = place(world, cc_ami, IDLE, "13800001902")
    record(acd, waiting_uid, "queued")
    phone = phone_channel(world, "1001", world_mark)
    with acd.ami_link_down():
        survey_mark = cc_ami.mark()  # the harness's own AMI session stays up (only the controller's drops)
        world.ami.action({"Action": "Hangup", "Channel": phone})  # the agent hangs up meanwhile
        assert agent_state(acd, "1001")["state"] == "on_call"  # the controller cannot know yet
        # The caller carries on to the survey, which runs over FastAGI: their rating is stored
        # while the AMI link is still down. The key is pressed once, when the question has
        # started (its STREAM FILE, after the agent left).
        cc_ami.wait_for(
            _agi_start(talking_uid, "STREAM FILE"),
            timeout=30,
            since=survey_mark,
            what="the survey question during the outage",
        )
        talking.press("3")
        view = record(acd, talking_uid, "survey")
        assert (view.survey_score, view.survey_agent_id) == (3, "1001")
        assert waiting_uid in {w["uniqueid"] for w in status(acd)["waiting"]}
    # Back: the resync finds the agent's leg gone; the agent is free and the waiting caller gets them.
    assert record(acd, waiting_uid, "connected", timeout=30).agent_id == "1001"
    assert any(kind == "agent_left" for _at, kind, _detail in record(acd, talking_uid, "connected").events)
    talking.hang_up()
    waiting.hang_up()


@pytest.mark.restarts("controller")
def test_controller_restart_keeps_agents_and_calls(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    """A controller killed (-9) with an agent on a call comes back with the agent still on that
    call (restored from the database, the channel found again); when the call ends, wrap-up
    follows as usual."""
    world.phone("1002").answers_after(0.5).plays("").hangs_up_after(300)
    login(acd, "1002", "1003")
    agent(acd, "1003", "pause", reason="培训")
    call, uid, since = place(world, cc_ami, IDLE, "13800001903")
    mark, ring = cc_ami.wait_for_at(
        lambda e: e.get("Event") == "DialBegin" and e.get("Uniqueid") == uid, since=since, what="the agent rung"
    )
    answered(cc_ami, uid, mark)
    wait_agent(acd, "1002", "on_call")
    acd.stop_controller(signal.SIGKILL)
    acd.start_controller()
    acd.wait_controller_ok()
    assert agent_state(acd, "1002")["state"] == "on_call"
    paused = agent_state(acd, "1003")
    assert paused["state"] == "paused" and paused["pause_reason"] == "培训"
    cc_ami.action({"Action": "Hangup", "Channel": ring["DestChannel"]})  # the agent hangs up
    wait_agent(acd, "1002", "available")  # no wrap-up in this queue
    assert any(kind == "agent_left" for _at, kind, _detail in record(acd, uid, "connected").events)
    call.hang_up()

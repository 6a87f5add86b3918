"""IVR flows on real calls (issue 3's Done-when; T6, T8, T11, P1): the shipped flows, the
carrier's DTMF, a real self-service HTTP server (also down and slow), voicemail with real audio,
the calendar's holiday and emergency switch, reload during a call, and the safety net."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from pydub import AudioSegment

from cc_core.calls.voicemail import VoicemailStore
from cc_core.db.session import make_engine, make_sessionmaker
from tests.harness.ami import AmiPeer, match
from tests.harness.calls import (
    answer_collect,
    answer_menu,
    call_store,
    hotline_channel,
    wait_node,
    wait_record,
    wait_until,
)
from tests.harness.flows import write_calendar
from tests.harness.hotline import Hotline
from tests.harness.selfservice import SelfService
from tests.harness.world import World, WorldCall

pytestmark = pytest.mark.switch

# A valid ID-card number (GB 11643 checksum), keyed with * for its final X.
ID_NUMBER = "11010519491231002X"
ID_KEYS = "11010519491231002*#"


def no_agent_answers(world: World) -> None:
    for agent in ("1001", "1002", "1003"):
        world.phone(agent).never_answers()


def start_call(world: World, cc_ami: AmiPeer, caller: str) -> tuple[WorldCall, str, int]:
    since = cc_ami.mark()
    call = world.call_hotline(caller=caller)
    uid = hotline_channel(cc_ami, since, caller)["Uniqueid"]
    return call, uid, since


def test_caller_reaches_a_level_5_node(controller: Hotline, world: World, cc_ami: AmiPeer) -> None:
    store = call_store(controller)
    call, uid, mark = start_call(world, cc_ami, "13800000101")
    for key in ("1", "1", "3", "3", "1"):  # consult → pension → benefits → certification → online
        mark = answer_menu(cc_ami, call, uid, key, mark)
    record = wait_record(store, uid, "exit")
    assert record.ivr_exit == "hangup"
    path = wait_node(store, uid, "certification_done")
    assert path[-6:] == [
        "consult_menu",
        "pension_menu",
        "benefits_menu",
        "certification_menu",
        "certification_online",
        "certification_done",
    ]
    call.wait_hung_up()


def test_invalid_key_and_timeout_are_recovered(controller: Hotline, world: World, cc_ami: AmiPeer) -> None:
    no_agent_answers(world)
    store = call_store(controller)
    call, uid, mark = start_call(world, cc_ami, "13800000102")
    mark = answer_menu(cc_ami, call, uid, "7", mark)  # no such choice: "您的按键有误", asked again
    mark = answer_menu(cc_ami, call, uid, "", mark)  # says nothing: times out, asked again
    waited = cc_ami.wait_for(
        lambda e: (
            e.get("Event") == "AGIExecEnd" and e.get("Uniqueid") == uid and "WAIT FOR DIGIT" in e.get("Command", "")
        ),
        timeout=30,
        since=mark,
        what="the menu's wait for a key timing out",
    )
    assert waited
    answer_menu(cc_ami, call, uid, "2", mark)  # now a valid choice
    path = wait_node(store, uid, "business_menu")
    assert path.count("main_menu") == 1  # retries stay inside the menu node
    record = store.get(uid)
    assert record is not None and record.digits.startswith("72")
    call.hang_up()


def test_menu_fails_over_to_an_agent_after_the_last_try(controller: Hotline, world: World, cc_ami: AmiPeer) -> None:
    no_agent_answers(world)
    store = call_store(controller)
    call, uid, mark = start_call(world, cc_ami, "13800000103")
    mark = answer_menu(cc_ami, call, uid, "3", mark)  # complaints menu: 2 tries at most? (3 by default)
    for _ in range(3):
        mark = answer_menu(cc_ami, call, uid, "9", mark)  # invalid every time
    record = wait_record(store, uid, "exit")
    assert record.ivr_exit == "queue"
    assert "agent" in wait_node(store, uid, "agent_queue")
    call.hang_up()


def test_self_service_query_reads_the_answer_back(
    controller: Hotline, world: World, cc_ami: AmiPeer, selfservice: SelfService
) -> None:
    store = call_store(controller)
    before = len(selfservice.requests)
    call, uid, mark = start_call(world, cc_ami, "13800000104")
    start = mark
    mark = answer_menu(cc_ami, call, uid, "2", mark)  # handle business
    mark = answer_menu(cc_ami, call, uid, "1", mark)  # pension payment query
    mark = answer_collect(cc_ami, call, uid, ID_KEYS, mark)
    mark = answer_menu(cc_ami, call, uid, "1", mark)  # survey: 非常满意
    record = wait_record(store, uid, "exit")
    assert record.ivr_exit == "hangup"
    assert record.survey_score == 1
    path = wait_node(store, uid, "goodbye")
    assert path[-4:] == ["pension_id", "pension_query", "self_service_survey", "goodbye"]
    assert selfservice.requests[before:] == [("/api/pension/status", {"id_number": ID_NUMBER})]
    # The answer was read back: a prompt rendered from the system's answer was played.
    assert any(
        e.get("Event") == "AGIExecStart" and e.get("Uniqueid") == uid and "/dynamic/" in e.get("Command", "")
        for e in cc_ami.events(start)
    )
    # The ID number the caller keyed is never written to the call record.
    view = store.get(uid)
    assert view is not None and ID_NUMBER not in repr(view)
    call.wait_hung_up()


@pytest.mark.parametrize("mode", ["down", "slow"])
def test_self_service_down_or_slow_goes_to_the_fallback(
    mode: str, controller: Hotline, world: World, cc_ami: AmiPeer, selfservice: SelfService
) -> None:
    no_agent_answers(world)
    store = call_store(controller)
    if mode == "down":
        selfservice.go_down()
    else:
        selfservice.mode = "slow"
    try:
        call, uid, mark = start_call(world, cc_ami, "13800000105")
        mark = answer_menu(cc_ami, call, uid, "2", mark)
        mark = answer_menu(cc_ami, call, uid, "2", mark)  # contribution query
        answer_collect(cc_ami, call, uid, ID_KEYS, mark)
        keyed = time.monotonic()
        record = wait_record(store, uid, "exit", timeout=30)
        # The flow's timeout is 3 s: the caller is not left hanging on a slow system.
        assert time.monotonic() - keyed < 15
        assert record.ivr_exit == "queue"
        path = wait_node(store, uid, "agent_queue")
        assert path[-3:] == ["contribution_query", "query_failed", "agent_queue"]
        kinds = [kind for _at, _flow, node, kind in store.ivr_path(uid) if node == "contribution_query"]
        assert "http_failed" in kinds
        call.hang_up()
    finally:
        if mode == "down":
            selfservice.start()
        selfservice.mode = "ok"


def test_voicemail_is_recorded_stored_and_listed(controller: Hotline, world: World, cc_ami: AmiPeer) -> None:
    store = call_store(controller)
    voicemails = VoicemailStore(make_sessionmaker(make_engine(controller.settings.database_url)))
    call, uid, mark = start_call(world, cc_ami, "13800000106")
    mark = answer_menu(cc_ami, call, uid, "3", mark)  # complaints and suggestions
    mark = answer_menu(cc_ami, call, uid, "2", mark)  # leave a suggestion
    cc_ami.wait_for(
        lambda e: (
            e.get("Event") == "AGIExecStart" and e.get("Uniqueid") == uid and "RECORD FILE" in e.get("Command", "")
        ),
        since=mark,
        timeout=30,
        what="recording starts",
    )
    assert world.ami is not None
    world_mark = world.ami.mark()
    call.speak()
    world.ami.wait_for(match(Event="UserEvent", UserEvent="CallerPlayed"), since=world_mark, what="caller spoke")
    call.press("#")
    record = wait_record(store, uid, "exit", timeout=30)
    assert record.ivr_exit == "hangup"
    message = wait_until(lambda: [m for m in voicemails.list(limit=10) if m.uniqueid == uid], what="voicemail listed")[
        0
    ]  # type: ignore[index]
    assert message.caller_number == "13800000106"
    assert (message.flow, message.node) == ("main", "suggestion_message")
    assert message.duration_s > 2
    audio = AudioSegment.from_file(controller.instance.host_path(message.file))
    assert audio.rms > 100, f"the message is near-silence (rms {audio.rms})"
    # Staff call the citizen back from this list, so it shows the number (logs never do).
    listed = controller_cli(controller, "voicemail", "list")
    assert "13800000106" in listed and "suggestion_message" in listed
    call.wait_hung_up()


def controller_cli(hotline: Hotline, *args: str) -> str:
    """Run a ``hotline`` command against the test's contact center; it must succeed."""
    result = subprocess_run(hotline, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def today_in_beijing() -> date:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


def reload_flows(hotline: Hotline) -> None:
    """Ask the controller to reload ('hotline ivr reload') and wait until a reload has run."""
    before = current_ivr(hotline).get("reloads", 0)
    controller_cli(hotline, "ivr", "reload")
    wait_until(lambda: current_ivr(hotline).get("reloads", 0) > before, timeout=20, what="flows reloaded")  # type: ignore[operator]


def current_ivr(hotline: Hotline) -> dict[str, object]:
    from cc_core.cli import fetch_health

    health = fetch_health(hotline.settings, timeout=2.0) or {}
    ivr = health.get("ivr", {})
    assert isinstance(ivr, dict)
    return ivr


def test_holiday_and_emergency_from_the_calendar(controller: Hotline, world: World, cc_ami: AmiPeer) -> None:
    """The admin marks today a holiday in the calendar file: the next call hears the holiday
    flow; then the emergency override: the emergency notice and an agent."""
    no_agent_answers(world)
    store = call_store(controller)
    flows = controller.settings.flows_path
    registry_seen = controller_cli(controller, "ivr", "validate")
    assert "ok: main.yaml" in registry_seen
    try:
        write_calendar(flows, holidays=[today_in_beijing()])
        reload_flows(controller)
        call, uid, _mark = start_call(world, cc_ami, "13800000107")
        path = wait_node(store, uid, "holiday_notice")
        assert path[:4] == ["welcome", "hours", "holiday", "holiday_notice"]
        decided = [e for e in store.ivr_path(uid) if e[3] == "decided"]
        assert decided
        call.hang_up()

        write_calendar(flows, emergency=True)
        reload_flows(controller)
        call, uid, _mark = start_call(world, cc_ami, "13800000108")
        path = wait_node(store, uid, "agent_queue", timeout=40)
        assert "emergency_notice" in path
        call.hang_up()
    finally:
        write_calendar(flows)
        reload_flows(controller)


def test_reload_does_not_disturb_a_call_in_progress(controller: Hotline, world: World, cc_ami: AmiPeer) -> None:
    no_agent_answers(world)
    store = call_store(controller)
    main = controller.settings.flows_path / "main.yaml"
    original = main.read_text(encoding="utf-8")
    try:
        first, uid1, mark1 = start_call(world, cc_ami, "13800000109")
        mark1 = answer_menu(cc_ami, first, uid1, "", mark1)  # first is at the main menu, on version A
        # The admin moves consulting to "4" and makes "1" go straight to an agent (version B; every
        # node stays reachable, or the validator would refuse it), and the controller reloads.
        changed = original.replace('"1": consult_menu', '"1": agent\n        "4": consult_menu')
        assert changed != original
        main.write_text(changed, encoding="utf-8")
        reload_flows(controller)
        # The caller already in the menu chooses 1 under version A. The reload can outlast the
        # menu's wait for a key (a slow machine), and a key pressed during the "no key" notice
        # would be lost, so press at the next menu prompt: the menu repeats until it gets one.
        answer_menu(cc_ami, first, uid1, "1", mark1)
        assert "consult_menu" in wait_node(store, uid1, "consult_menu")
        second, uid2, mark2 = start_call(world, cc_ami, "13800000110")
        answer_menu(cc_ami, second, uid2, "1", mark2)  # a new call runs version B
        assert wait_node(store, uid2, "agent_queue")[-2:] == ["agent", "agent_queue"]
        v1, v2 = store.get(uid1), store.get(uid2)
        assert v1 is not None and v2 is not None and v1.flow_version != v2.flow_version
        first.hang_up()
        second.hang_up()
    finally:
        main.write_text(original, encoding="utf-8")
        reload_flows(controller)


def test_broken_flow_is_refused_and_the_last_good_one_serves(
    controller: Hotline, world: World, cc_ami: AmiPeer
) -> None:
    store = call_store(controller)
    main = controller.settings.flows_path / "main.yaml"
    original = main.read_text(encoding="utf-8")
    try:
        main.write_text(original.replace('"2": business_menu', '"2": no_such_node'), encoding="utf-8")
        validate = subprocess_run(controller, "ivr", "validate")
        assert validate.returncode == 1
        assert "main.yaml:" in validate.stdout and "no_such_node" in validate.stdout
        reload_flows(controller)
        assert current_ivr(controller).get("problems")
        call, uid, mark = start_call(world, cc_ami, "13800000111")
        answer_menu(cc_ami, call, uid, "2", mark)  # the last good version still has business_menu
        assert "business_menu" in wait_node(store, uid, "business_menu")
        call.hang_up()
    finally:
        main.write_text(original, encoding="utf-8")
        reload_flows(controller)


def subprocess_run(hotline: Hotline, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cc_core.cli", *args],
        env=hotline.controller_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.restarts("controller")
def test_stopping_the_controller_sends_the_caller_to_the_safety_net(
    controller: Hotline, world: World, cc_ami: AmiPeer
) -> None:
    """P1: a graceful stop (SIGTERM) while a caller is in a menu: the caller is not dropped."""
    no_agent_answers(world)
    assert world.ami is not None
    call, uid, mark = start_call(world, cc_ami, "13800000112")
    answer_menu(cc_ami, call, uid, "", mark)  # in the main menu
    world_mark = world.ami.mark()
    controller.stop_controller(signal.SIGTERM)
    cc_ami.wait_for(
        match(Event="QueueCallerJoin", Queue="hotline-fallback", Uniqueid=uid),
        since=mark,
        timeout=30,
        what="fallback queue",
    )
    world.ami.wait_for(match(Event="UserEvent", UserEvent="PhoneRinging"), since=world_mark, what="an agent rings")
    call.hang_up()


@pytest.mark.restarts("controller")
def test_stuck_controller_misses_its_deadline_and_the_safety_net_takes_over(
    controller: Hotline, world: World, cc_ami: AmiPeer
) -> None:
    """P1: a controller that is alive but does not answer (here: SIGSTOP) holds no caller: the
    switch's watchdog (TIMEOUT(absolute), pushed by the controller before each step) expires and
    the dialplan takes the caller in the IVR — and a new caller — to the fallback queue."""
    no_agent_answers(world)
    proc = controller.controller
    assert proc is not None
    call, uid, mark = start_call(world, cc_ami, "13800000113")
    answer_menu(cc_ami, call, uid, "", mark)  # in the main menu
    proc.send_signal(signal.SIGSTOP)
    try:
        cc_ami.wait_for(
            match(Event="QueueCallerJoin", Queue="hotline-fallback", Uniqueid=uid),
            since=mark,
            timeout=60,
            what="fallback queue for the caller in the menu",
        )
        since = cc_ami.mark()
        second = world.call_hotline(caller="13800000114")
        joined = cc_ami.wait_for(
            lambda e: e.get("Event") == "QueueCallerJoin" and e.get("Queue") == "hotline-fallback",
            since=since,
            timeout=30,
            what="fallback queue for a new caller",
        )
        assert joined.get("CallerIDNum") == "13800000114"
        second.hang_up()
        call.hang_up()
    finally:
        proc.send_signal(signal.SIGCONT)
        controller.stop_controller()


def test_transfer_node_connects_the_caller_to_an_outside_number(
    controller: Hotline, world: World, cc_ami: AmiPeer
) -> None:
    """A transfer node (T6): the flow of another hotline number sends the caller out through
    the carrier trunk; the outside phone (in the simulated world) rings and answers."""
    from tests.harness.flows import OUTSIDE_NUMBER, TRANSFER_NUMBER

    assert world.ami is not None
    world.phone(OUTSIDE_NUMBER).answers_after(1)
    store = call_store(controller)
    since = cc_ami.mark()
    world_mark = world.ami.mark()
    call = world.call_hotline(number=TRANSFER_NUMBER, caller="13800000115")
    uid = hotline_channel(cc_ami, since)["Uniqueid"]
    answered = world.ami.wait_for(
        match(Event="UserEvent", UserEvent="PhoneAnswered", Phone=OUTSIDE_NUMBER),
        since=world_mark,
        timeout=30,
        what="outside number answers",
    )
    assert answered
    record = wait_record(store, uid, "exit")
    assert (record.ivr_exit, record.ivr_exit_detail, record.flow) == ("transfer", OUTSIDE_NUMBER, "transfer_test")
    # The caller and the outside party are bridged by the hotline.
    cc_ami.wait_for(match(Event="BridgeEnter", Uniqueid=uid), since=since, what="caller bridged")
    call.hang_up()

"""P1: no single restart drops what can be kept (issue 2's Done-when).

* the switch restarts under a running controller: the controller reconnects and resyncs;
* the controller is killed (-9) and started again: it comes back connected;
* a caller in the IVR when the controller dies is not dropped: the dialplan's safety net
  plays its message and queues the caller for any agent;
* a call that ended while the controller was away is closed when it comes back.
"""

from __future__ import annotations

import signal
import time

import pytest

from cc_core.bus import EventBus
from cc_core.calls.lifecycle import UNSEEN_END
from cc_core.cli import fetch_health
from cc_core.switch.ami import AmiLink
from cc_core.switch.events import UserEvent
from tests.harness.ami import AmiPeer, match
from tests.harness.calls import answer_menu, call_store, hotline_channel, wait_node, wait_record, wait_until
from tests.harness.hotline import Hotline
from tests.harness.loop import LoopThread
from tests.harness.world import World

pytestmark = pytest.mark.switch


def wait_health(hotline: Hotline, predicate: object, timeout: float = 30.0) -> dict[str, object] | None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fetch_health(hotline.settings, timeout=1.0)
        if predicate(last):  # type: ignore[operator]
            return last
        time.sleep(0.1)
    raise AssertionError(f"health never matched in {timeout} s: {last}")


@pytest.mark.restarts("switch")
def test_switch_restart_under_running_controller(controller: Hotline, world: World, cc_ami: AmiPeer) -> None:
    before = controller.wait_controller_ok()
    connects = before["ami"]["connects"]  # type: ignore[index]
    controller.stop_switch()
    down = wait_health(controller, lambda h: h is not None and not h["ami"]["connected"])
    assert down is not None and down["status"] == "degraded"
    controller.start_switch()
    after = controller.wait_controller_ok(timeout=30)
    assert after["ami"]["connects"] == connects + 1  # type: ignore[index]
    # Our own AMI peer reconnects too; then a new call goes through the whole path again.
    cc_ami.wait_connected()
    store = call_store(controller)
    since = cc_ami.mark()
    call = world.call_hotline(caller="13600000001")
    uid = hotline_channel(cc_ami, since)["Uniqueid"]
    answer_menu(cc_ami, call, uid, "1", since)
    wait_node(store, uid, "consult_menu")
    call.hang_up()


@pytest.mark.restarts("controller")
def test_controller_killed_and_started_again(controller: Hotline, world: World, cc_ami: AmiPeer) -> None:
    controller.stop_controller(signal.SIGKILL)
    assert fetch_health(controller.settings, timeout=1.0) is None
    controller.start_controller()
    health = controller.wait_controller_ok()
    assert health["ami"]["connected"] is True  # type: ignore[index]
    store = call_store(controller)
    since = cc_ami.mark()
    call = world.call_hotline(caller="13600000002")
    uid = hotline_channel(cc_ami, since)["Uniqueid"]
    answer_menu(cc_ami, call, uid, "3", since)
    wait_node(store, uid, "complaints_menu")
    call.hang_up()


@pytest.mark.restarts("controller")
def test_caller_in_ivr_when_controller_dies_reaches_safety_net(
    controller: Hotline, world: World, cc_ami: AmiPeer
) -> None:
    assert world.ami is not None
    for agent in ("1001", "1002", "1003"):
        world.phone(agent).never_answers()
    store = call_store(controller)
    since = cc_ami.mark()
    world_since = world.ami.mark()
    call = world.call_hotline(caller="13600000003")
    uid = hotline_channel(cc_ami, since)["Uniqueid"]
    wait_record(store, uid, "arrived")
    controller.stop_controller(signal.SIGKILL)
    # The switch keeps the caller: safety-net message, then the fallback queue rings an agent.
    cc_ami.wait_for(match(Event="UserEvent", UserEvent="HotlineFallback", Uniqueid=uid), since=since, what="safety net")
    cc_ami.wait_for(
        match(Event="QueueCallerJoin", Queue="hotline-fallback", Uniqueid=uid), since=since, what="fallback queue"
    )
    world.ami.wait_for(match(Event="UserEvent", UserEvent="PhoneRinging"), since=world_since, what="agent rings")
    # The controller comes back while the caller still waits; the caller's record stays open,
    # and closes with the real cause when the caller hangs up.
    controller.start_controller()
    controller.wait_controller_ok()
    assert store.get(uid).ended_at is None  # type: ignore[union-attr]
    # The restarted controller found the caller in the safety net's queue and says so.
    wait_until(lambda: store.get(uid).fallback, what="fallback marked on the record")  # type: ignore[union-attr]
    call.hang_up()
    ended = wait_record(store, uid, "ended")
    # The caller's own cause, seen live by the restarted controller (not UNSEEN_END of a resync).
    assert (ended.hangup_cause, ended.hangup_cause_text) == (16, "Normal Clearing")


@pytest.mark.restarts("controller")
def test_call_that_ended_while_controller_was_down_is_closed(
    controller: Hotline, world: World, cc_ami: AmiPeer
) -> None:
    for agent in ("1001", "1002", "1003"):
        world.phone(agent).never_answers()
    store = call_store(controller)
    since = cc_ami.mark()
    call = world.call_hotline(caller="13600000004")
    uid = hotline_channel(cc_ami, since)["Uniqueid"]
    wait_record(store, uid, "arrived")
    controller.stop_controller(signal.SIGKILL)
    call.hang_up()
    cc_ami.wait_for(match(Event="Hangup", Uniqueid=uid), since=since, what="hang-up while controller down")
    controller.start_controller()
    controller.wait_controller_ok()
    ended = wait_record(store, uid, "ended")
    assert ended.hangup_cause_text == UNSEEN_END


def test_ami_login_refused_is_reported_clearly(hotline: Hotline, loop: LoopThread) -> None:
    async def attempt() -> tuple[str, AmiLink]:
        import asyncio

        link = AmiLink(
            "127.0.0.1",
            hotline.settings.switch.ami_port,
            hotline.secrets.ami_user,
            "wrong-secret",
            EventBus(),
            backoff_initial=5,
            backoff_max=5,
        )
        task = asyncio.ensure_future(link.run())
        deadline = asyncio.get_running_loop().time() + 10
        # The link's state is what is under test; poll it with a deadline.
        while link.state != "login-refused" and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        refused = link.state
        await link.stop()
        task.cancel()
        return refused, link

    refused, link = loop.run(attempt(), timeout=20)
    # The link says why it is not connected, and still says so once stopped: the run task is
    # cancelled in its back-off sleep, before its loop could mark it "stopped".
    assert (refused, link.state) == ("login-refused", "login-refused")
    assert "AMI login refused" in link.last_error
    assert "\n" not in link.last_error


def test_controller_link_asks_the_switch_for_its_events_only(
    hotline: Hotline, loop: LoopThread, cc_ami: AmiPeer
) -> None:
    """The controller's AMI user (manager.conf's eventfilter and read classes): the switch does not
    send the events the controller would only skip (VarSet, Newexten, AGIExec…), and still sends
    the wanted ones. The harness's own user raises the events (the controller's may not)."""

    async def attempt() -> tuple[int, int, list[str]]:
        import asyncio

        bus = EventBus()
        marks: list[str] = []
        seen = asyncio.Event()

        async def on_user(event: UserEvent) -> None:
            marks.append(event.name)
            if event.name == "HotlineFilterProbe":
                seen.set()

        bus.subscribe(UserEvent, on_user)
        link = AmiLink(
            "127.0.0.1",
            hotline.settings.switch.ami_port,
            hotline.secrets.ami_user,
            hotline.secrets.ami_secret,
            bus,
        )
        task = asyncio.ensure_future(link.run())
        try:
            assert await link.wait_connected(20)
            assert link._protocol is not None
            skipped_before = link._protocol.skipped
            # A global variable set raises a VarSet event, which the filter keeps at the switch.
            for n in range(20):
                await asyncio.to_thread(
                    cc_ami.action, {"Action": "Setvar", "Variable": "HOTLINE_FILTER_PROBE", "Value": str(n)}
                )
            await asyncio.to_thread(
                cc_ami.action, {"Action": "UserEvent", "UserEvent": "HotlineFilterProbe", "Probe": "1"}
            )
            await asyncio.wait_for(seen.wait(), 10)  # events arrive in order: the VarSets came first
            return skipped_before, link._protocol.skipped, marks
        finally:
            await link.stop()
            task.cancel()

    before, after, marks = loop.run(attempt(), timeout=40)
    assert "HotlineFilterProbe" in marks
    assert after == before  # no VarSet reached the controller to be skipped

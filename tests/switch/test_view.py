"""SwitchView: the controller's picture of the switch, kept by events and rebuilt on resync."""

from __future__ import annotations

from cc_core.switch.events import (
    AmiConnected,
    BridgeEntered,
    BridgeLeft,
    ChannelCreated,
    ChannelHungUp,
    ChannelStateChanged,
    DeviceStateChanged,
    DtmfReceived,
    QueueCallerJoined,
    QueueCallerLeft,
    UserEvent,
)
from cc_core.switch.view import ChannelInfo, SwitchView

A, B = "1732861234.15", "1732861234.16"


def created(uid: str = A, state: int = 4) -> ChannelCreated:
    return ChannelCreated(
        uniqueid=uid,
        linkedid=A,
        channel=f"PJSIP/carrier-{uid[-2:]}",
        caller_number="13800138000",
        caller_name="张三",
        exten="12333",
        context="from-trunk",
        state=state,
    )


def view_with(*events: object) -> SwitchView:
    view = SwitchView()
    for event in events:
        view.apply(event)  # type: ignore[arg-type]
    return view


def test_channel_created_adds_the_channel() -> None:
    view = view_with(created())
    assert view.channels == {
        A: ChannelInfo(
            uniqueid=A,
            linkedid=A,
            channel="PJSIP/carrier-15",
            caller_number="13800138000",
            exten="12333",
            context="from-trunk",
            state=4,
            bridge_id="",
        )
    }
    assert view.applied == 1


def test_state_change_updates_a_known_channel_and_ignores_an_unknown_one() -> None:
    view = view_with(
        created(), ChannelStateChanged(A, "PJSIP/carrier-15", 6, "Up"), ChannelStateChanged(B, "x", 6, "Up")
    )
    assert view.channels[A].state == 6
    assert B not in view.channels


def test_bridge_enter_and_leave() -> None:
    view = view_with(created(), created(B), BridgeEntered(A, "bridge-1"), BridgeEntered(B, "bridge-1"))
    assert view.channels[A].bridge_id == view.channels[B].bridge_id == "bridge-1"
    view.apply(BridgeLeft(A, "bridge-1"))
    assert view.channels[A].bridge_id == ""
    assert view.channels[B].bridge_id == "bridge-1"
    view.apply(BridgeEntered("9.9", "bridge-2"))  # unknown channel: nothing invented
    view.apply(BridgeLeft("9.9", "bridge-2"))
    assert set(view.channels) == {A, B}


def test_device_state_is_set_and_overwritten() -> None:
    view = view_with(DeviceStateChanged("PJSIP/1001", "NOT_INUSE"), DeviceStateChanged("PJSIP/1002", "UNAVAILABLE"))
    view.apply(DeviceStateChanged("PJSIP/1001", "RINGING"))
    assert view.devices == {"PJSIP/1001": "RINGING", "PJSIP/1002": "UNAVAILABLE"}


def test_queue_join_and_leave() -> None:
    view = view_with(
        QueueCallerJoined(A, "hotline-fallback", 1),
        QueueCallerJoined(B, "hotline-fallback", 2),
        QueueCallerJoined(B, "social-security", 1),
    )
    assert view.queue_callers == {"hotline-fallback": {A, B}, "social-security": {B}}
    view.apply(QueueCallerLeft(A, "hotline-fallback", abandoned=False))
    view.apply(QueueCallerLeft(B, "social-security", abandoned=True))
    assert view.queue_callers["hotline-fallback"] == {B}
    assert view.queue_callers.get("social-security", set()) == set()
    view.apply(QueueCallerLeft(A, "never-seen", abandoned=True))
    assert "never-seen" not in view.queue_callers
    assert view.summary()["queue_callers"] == 1


def test_hangup_removes_the_channel_and_its_place_in_every_queue() -> None:
    view = view_with(
        created(),
        created(B),
        QueueCallerJoined(A, "q1", 1),
        QueueCallerJoined(A, "q2", 1),
        QueueCallerJoined(B, "q1", 2),
    )
    view.apply(ChannelHungUp(A, A, "PJSIP/carrier-15", 16, "Normal Clearing"))
    assert set(view.channels) == {B}
    assert view.queue_callers == {"q1": {B}, "q2": set()}
    view.apply(ChannelHungUp("9.9", "9.9", "x", None, ""))  # an unknown channel is no error
    assert set(view.channels) == {B}


def test_other_events_change_nothing_but_are_counted() -> None:
    view = view_with(created())
    before = (dict(view.channels), dict(view.devices), dict(view.queue_callers))
    view.apply(AmiConnected(reconnect=True))
    view.apply(DtmfReceived(A, "5", "Received"))
    view.apply(UserEvent("HotlineFallback", A, {"Reason": "FAILURE"}))
    assert (view.channels, view.devices, view.queue_callers) == before
    assert view.applied == 4


def test_replace_discards_the_old_view_and_copies_its_inputs() -> None:
    view = view_with(created(), DeviceStateChanged("PJSIP/1001", "INUSE"), QueueCallerJoined(A, "q1", 1))
    channels = [ChannelInfo(uniqueid=B, linkedid=B, channel="PJSIP/1002-00000001", state=6, bridge_id="b-9")]
    devices = {"PJSIP/1002": "INUSE"}
    callers = {"q2": {B}}
    view.replace(channels, devices, callers)
    assert set(view.channels) == {B} and view.channels[B].bridge_id == "b-9"
    assert view.devices == {"PJSIP/1002": "INUSE"}
    assert view.queue_callers == {"q2": {B}}
    # The switch's lists belong to the caller: changing them later must not change the view.
    devices["PJSIP/1003"] = "RINGING"
    callers["q2"].add("x")
    callers["q3"] = {"y"}
    channels.append(ChannelInfo(uniqueid="z", linkedid="z", channel="z"))
    assert view.summary() == {"channels": 1, "devices": 1, "queue_callers": 1}
    # And events keep applying on top of the rebuilt view.
    view.apply(ChannelStateChanged(B, "PJSIP/1002-00000001", 5, "Ringing"))
    view.apply(ChannelHungUp(B, B, "PJSIP/1002-00000001", 16, "Normal Clearing"))
    assert view.summary() == {"channels": 0, "devices": 1, "queue_callers": 0}


def test_replace_with_nothing_empties_the_view() -> None:
    view = view_with(created(), created(B), DeviceStateChanged("PJSIP/1001", "INUSE"), QueueCallerJoined(A, "q", 1))
    assert view.summary() == {"channels": 2, "devices": 1, "queue_callers": 1}
    view.replace([], {}, {})
    assert view.summary() == {"channels": 0, "devices": 0, "queue_callers": 0}

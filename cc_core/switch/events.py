"""Typed switch events: what the domains hear about the switch, never raw AMI dictionaries.

:func:`from_ami` maps the AMI events the controller cares about to these classes; the rest
are dropped at the edge (and counted), which keeps the hot path short.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SwitchEvent:
    """Base of every event the switch package publishes."""


@dataclass(frozen=True, slots=True)
class AmiConnected(SwitchEvent):
    """The AMI link is up and logged in (after the first connect or a reconnect)."""

    reconnect: bool


@dataclass(frozen=True, slots=True)
class AmiDisconnected(SwitchEvent):
    """The AMI link went down; the link reconnects by itself."""

    reason: str


@dataclass(frozen=True, slots=True)
class SwitchResynced(SwitchEvent):
    """The controller's view was rebuilt from the switch after (re)connecting."""

    channels: int
    devices: int
    queue_callers: int


@dataclass(frozen=True, slots=True)
class ChannelCreated(SwitchEvent):
    uniqueid: str
    linkedid: str
    channel: str
    caller_number: str
    caller_name: str
    exten: str
    context: str
    state: int


@dataclass(frozen=True, slots=True)
class ChannelStateChanged(SwitchEvent):
    uniqueid: str
    channel: str
    state: int
    state_desc: str


@dataclass(frozen=True, slots=True)
class ChannelHungUp(SwitchEvent):
    uniqueid: str
    linkedid: str
    channel: str
    cause: int | None
    cause_text: str


@dataclass(frozen=True, slots=True)
class DtmfReceived(SwitchEvent):
    uniqueid: str
    digit: str
    direction: str


@dataclass(frozen=True, slots=True)
class BridgeEntered(SwitchEvent):
    uniqueid: str
    bridge_id: str


@dataclass(frozen=True, slots=True)
class BridgeLeft(SwitchEvent):
    uniqueid: str
    bridge_id: str


@dataclass(frozen=True, slots=True)
class DeviceStateChanged(SwitchEvent):
    device: str
    state: str


@dataclass(frozen=True, slots=True)
class QueueCallerJoined(SwitchEvent):
    uniqueid: str
    queue: str
    position: int


@dataclass(frozen=True, slots=True)
class QueueCallerLeft(SwitchEvent):
    uniqueid: str
    queue: str
    abandoned: bool


@dataclass(frozen=True, slots=True)
class DialStarted(SwitchEvent):
    """A channel started ringing another (``DialBegin``): e.g. a waiting caller ringing an agent."""

    uniqueid: str
    dest_uniqueid: str
    dest_channel: str
    dial_string: str


@dataclass(frozen=True, slots=True)
class DialEnded(SwitchEvent):
    """A ring ended (``DialEnd``); ``status`` is Dial's: ANSWER, NOANSWER, BUSY, CHANUNAVAIL,
    CONGESTION, CANCEL (the caller hung up)…"""

    uniqueid: str
    dest_uniqueid: str
    dest_channel: str
    status: str


@dataclass(frozen=True, slots=True)
class ConferenceJoined(SwitchEvent):
    """A channel entered a conference room (``ConfbridgeJoin``): holds, consultations, three-way."""

    conference: str
    uniqueid: str
    channel: str


@dataclass(frozen=True, slots=True)
class ConferenceLeft(SwitchEvent):
    """A channel left a conference room (``ConfbridgeLeave``)."""

    conference: str
    uniqueid: str
    channel: str


@dataclass(frozen=True, slots=True)
class UserEvent(SwitchEvent):
    """A ``UserEvent`` raised by the dialplan (e.g. the safety net announcing itself)."""

    name: str
    uniqueid: str
    fields: Mapping[str, str]


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _state(h: Mapping[str, str]) -> int:
    return _int(h.get("ChannelState")) or 0


def _channel_created(h: Mapping[str, str]) -> SwitchEvent:
    return ChannelCreated(
        uniqueid=h.get("Uniqueid", ""),
        linkedid=h.get("Linkedid", ""),
        channel=h.get("Channel", ""),
        caller_number=h.get("CallerIDNum", ""),
        caller_name=h.get("CallerIDName", ""),
        exten=h.get("Exten", ""),
        context=h.get("Context", ""),
        state=_state(h),
    )


def _new_state(h: Mapping[str, str]) -> SwitchEvent:
    return ChannelStateChanged(
        uniqueid=h.get("Uniqueid", ""),
        channel=h.get("Channel", ""),
        state=_state(h),
        state_desc=h.get("ChannelStateDesc", ""),
    )


def _hangup(h: Mapping[str, str]) -> SwitchEvent:
    return ChannelHungUp(
        uniqueid=h.get("Uniqueid", ""),
        linkedid=h.get("Linkedid", ""),
        channel=h.get("Channel", ""),
        cause=_int(h.get("Cause")),
        cause_text=h.get("Cause-txt", ""),
    )


def _dtmf(h: Mapping[str, str]) -> SwitchEvent:
    return DtmfReceived(uniqueid=h.get("Uniqueid", ""), digit=h.get("Digit", ""), direction=h.get("Direction", ""))


def _bridge_enter(h: Mapping[str, str]) -> SwitchEvent:
    return BridgeEntered(uniqueid=h.get("Uniqueid", ""), bridge_id=h.get("BridgeUniqueid", ""))


def _bridge_leave(h: Mapping[str, str]) -> SwitchEvent:
    return BridgeLeft(uniqueid=h.get("Uniqueid", ""), bridge_id=h.get("BridgeUniqueid", ""))


def _device(h: Mapping[str, str]) -> SwitchEvent:
    return DeviceStateChanged(device=h.get("Device", ""), state=h.get("State", ""))


def _queue_join(h: Mapping[str, str]) -> SwitchEvent:
    return QueueCallerJoined(
        uniqueid=h.get("Uniqueid", ""), queue=h.get("Queue", ""), position=_int(h.get("Position")) or 0
    )


def _queue_leave(h: Mapping[str, str]) -> SwitchEvent:
    return QueueCallerLeft(uniqueid=h.get("Uniqueid", ""), queue=h.get("Queue", ""), abandoned=False)


def _queue_abandon(h: Mapping[str, str]) -> SwitchEvent:
    return QueueCallerLeft(uniqueid=h.get("Uniqueid", ""), queue=h.get("Queue", ""), abandoned=True)


def _dial_begin(h: Mapping[str, str]) -> SwitchEvent:
    return DialStarted(
        uniqueid=h.get("Uniqueid", ""),
        dest_uniqueid=h.get("DestUniqueid", ""),
        dest_channel=h.get("DestChannel", ""),
        dial_string=h.get("DialString", ""),
    )


def _dial_end(h: Mapping[str, str]) -> SwitchEvent:
    return DialEnded(
        uniqueid=h.get("Uniqueid", ""),
        dest_uniqueid=h.get("DestUniqueid", ""),
        dest_channel=h.get("DestChannel", ""),
        status=h.get("DialStatus", ""),
    )


def _conf_join(h: Mapping[str, str]) -> SwitchEvent:
    return ConferenceJoined(h.get("Conference", ""), h.get("Uniqueid", ""), h.get("Channel", ""))


def _conf_leave(h: Mapping[str, str]) -> SwitchEvent:
    return ConferenceLeft(h.get("Conference", ""), h.get("Uniqueid", ""), h.get("Channel", ""))


_USER_EVENT_SKIP = frozenset({"Event", "UserEvent", "Privilege", "Uniqueid"})


def _user_event(h: Mapping[str, str]) -> SwitchEvent:
    fields = {k: v for k, v in h.items() if k not in _USER_EVENT_SKIP and isinstance(v, str)}
    return UserEvent(name=h.get("UserEvent", ""), uniqueid=h.get("Uniqueid", ""), fields=fields)


TRANSLATORS: dict[str, Callable[[Mapping[str, str]], SwitchEvent]] = {
    "Newchannel": _channel_created,
    "Newstate": _new_state,
    "Hangup": _hangup,
    "DTMFEnd": _dtmf,
    "BridgeEnter": _bridge_enter,
    "BridgeLeave": _bridge_leave,
    "DeviceStateChange": _device,
    "QueueCallerJoin": _queue_join,
    "QueueCallerLeave": _queue_leave,
    "QueueCallerAbandon": _queue_abandon,
    "UserEvent": _user_event,
    "DialBegin": _dial_begin,
    "DialEnd": _dial_end,
    "ConfbridgeJoin": _conf_join,
    "ConfbridgeLeave": _conf_leave,
}


def from_ami(headers: Mapping[str, str]) -> SwitchEvent | None:
    """The typed event for an AMI event's headers, or ``None`` if the controller ignores it."""
    translate = TRANSLATORS.get(headers.get("Event", ""))
    return translate(headers) if translate is not None else None

"""The controller's picture of the switch: live channels, device states, queue callers.

Kept up to date from typed events (:meth:`SwitchView.apply`, pure and fast: it is the AMI
hot path measured by scripts/bench_ami_ingest.py) and rebuilt from scratch after every
(re)connect from the switch's own lists (:meth:`SwitchView.replace`), so nothing that
happened while the link was down leaves it wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cc_core.switch.events import (
    BridgeEntered,
    BridgeLeft,
    ChannelCreated,
    ChannelHungUp,
    ChannelStateChanged,
    DeviceStateChanged,
    QueueCallerJoined,
    QueueCallerLeft,
    SwitchEvent,
)


@dataclass(slots=True)
class ChannelInfo:
    """One live channel as the switch reports it."""

    uniqueid: str
    linkedid: str
    channel: str
    caller_number: str = ""
    exten: str = ""
    context: str = ""
    state: int = 0
    bridge_id: str = ""


@dataclass
class SwitchView:
    """Channels by uniqueid, device states by device, callers waiting per queue."""

    channels: dict[str, ChannelInfo] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)
    queue_callers: dict[str, set[str]] = field(default_factory=dict)
    applied: int = 0

    def apply(self, event: SwitchEvent) -> None:
        """Update the view with one event (unknown kinds are ignored)."""
        self.applied += 1
        match event:
            case ChannelStateChanged(uniqueid=uid, state=state):
                chan = self.channels.get(uid)
                if chan is not None:
                    chan.state = state
            case ChannelCreated():
                self.channels[event.uniqueid] = ChannelInfo(
                    uniqueid=event.uniqueid,
                    linkedid=event.linkedid,
                    channel=event.channel,
                    caller_number=event.caller_number,
                    exten=event.exten,
                    context=event.context,
                    state=event.state,
                )
            case ChannelHungUp(uniqueid=uid):
                self.channels.pop(uid, None)
                for callers in self.queue_callers.values():
                    callers.discard(uid)
            case DeviceStateChanged(device=device, state=state):
                self.devices[device] = state
            case BridgeEntered(uniqueid=uid, bridge_id=bridge):
                chan = self.channels.get(uid)
                if chan is not None:
                    chan.bridge_id = bridge
            case BridgeLeft(uniqueid=uid, bridge_id=bridge):
                chan = self.channels.get(uid)
                if chan is not None and chan.bridge_id == bridge:
                    chan.bridge_id = ""
            case QueueCallerJoined(uniqueid=uid, queue=queue):
                self.queue_callers.setdefault(queue, set()).add(uid)
            case QueueCallerLeft(uniqueid=uid, queue=queue):
                self.queue_callers.get(queue, set()).discard(uid)

    def replace(
        self,
        channels: list[ChannelInfo],
        devices: dict[str, str],
        queue_callers: dict[str, set[str]],
    ) -> None:
        """Replace the whole view with what the switch listed after a (re)connect."""
        self.channels = {c.uniqueid: c for c in channels}
        self.devices = dict(devices)
        self.queue_callers = {q: set(c) for q, c in queue_callers.items()}

    def summary(self) -> dict[str, int]:
        return {
            "channels": len(self.channels),
            "devices": len(self.devices),
            "queue_callers": sum(len(c) for c in self.queue_callers.values()),
        }

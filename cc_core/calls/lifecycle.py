"""The call record's lifecycle from switch events: hang-ups, and calls that ended unseen.

Hang-up cause and time come from AMI's ``Hangup`` event. After the AMI link comes back, calls
the database still holds open but the switch no longer has are closed, so an outage of the
link never leaves a call "in progress" for ever.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import UTC, datetime

from cc_core.bus import EventBus
from cc_core.calls.store import CallStore
from cc_core.db.writer import DbRun
from cc_core.switch.events import ChannelHungUp, SwitchResynced, UserEvent
from cc_core.switch.view import SwitchView

log = logging.getLogger(__name__)

UNSEEN_END = "ended while the controller was disconnected"
FALLBACK_CONTEXT = "hotline-fallback"
# Hang-ups of calls not (yet) in the database, kept briefly: a caller can hang up in the
# milliseconds between the AGI session's start and its arrival row being committed.
EARLY_HANGUPS_KEPT = 1000


class CallLifecycle:
    """Subscribes to the bus and keeps the call records' ends right."""

    def __init__(self, store: CallStore, view: SwitchView, bus: EventBus, *, db: DbRun = asyncio.to_thread) -> None:
        self.store = store
        # Where writes run: the controller's DbWriter (batched, in order), else a worker thread.
        self.db = db
        self.view = view
        self._early_hangups: OrderedDict[str, tuple[ChannelHungUp, datetime]] = OrderedDict()
        bus.subscribe(ChannelHungUp, self.on_hangup)
        bus.subscribe(SwitchResynced, self.on_resync)
        bus.subscribe(UserEvent, self.on_user_event)

    async def register_arrival(
        self, uniqueid: str, linkedid: str, caller_number: str, dialed_number: str, channel: str, at: datetime
    ) -> int:
        """Write the call's arrival; apply a hang-up that overtook it."""
        call_id = await self.db(self.store.call_arrived, uniqueid, linkedid, caller_number, dialed_number, channel, at)
        early = self._early_hangups.pop(uniqueid, None)
        if early is not None:
            event, when = early
            await self.db(self.store.call_ended, uniqueid, event.cause, event.cause_text, when)
        return call_id

    async def on_hangup(self, event: ChannelHungUp) -> None:
        now = datetime.now(UTC)
        known = await self.db(self.store.call_ended, event.uniqueid, event.cause, event.cause_text, now)
        if not known:
            self._early_hangups[event.uniqueid] = (event, now)
            while len(self._early_hangups) > EARLY_HANGUPS_KEPT:
                self._early_hangups.popitem(last=False)

    async def on_user_event(self, event: UserEvent) -> None:
        """The dialplan announces a caller it took into its safety net (extensions.conf)."""
        if event.name == "HotlineFallback" and event.uniqueid:
            await self.db(self.store.mark_fallback, event.uniqueid, datetime.now(UTC))

    async def on_resync(self, event: SwitchResynced) -> None:
        open_calls = await asyncio.to_thread(self.store.open_calls)
        # Callers the safety net took while the controller was away are still in its queue.
        for uid in open_calls:
            channel = self.view.channels.get(uid)
            if channel is not None and channel.context == FALLBACK_CONTEXT:
                await self.db(self.store.mark_fallback, uid, datetime.now(UTC))
        gone = [uid for uid in open_calls if uid not in self.view.channels]
        for uid in gone:
            await self.db(self.store.call_ended, uid, None, UNSEEN_END, datetime.now(UTC))
        if gone:
            log.info("closed calls that ended while disconnected", extra={"count": len(gone)})

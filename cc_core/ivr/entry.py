"""The hotline's first IVR path (issue 2): greet, read the caller's digits, record them.

This is the foundation's end-to-end path; the YAML flow runtime of the IVR issue replaces the
fixed greeting with the flow chosen by the dialed number. The call record is written through
:class:`cc_core.calls.store.CallStore` (off the event loop).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from cc_core.calls.lifecycle import CallLifecycle
from cc_core.calls.store import CallStore
from cc_core.switch.fastagi import AgiSession

log = logging.getLogger(__name__)

DIGIT_TIMEOUT_MS = 5000
MAX_DIGITS = 8


class HotlineEntry:
    """The FastAGI handler for ``agi://…/hotline``."""

    def __init__(self, store: CallStore, lifecycle: CallLifecycle, sounds_dir: str) -> None:
        self.store = store
        self.lifecycle = lifecycle
        self.sounds_dir = sounds_dir.rstrip("/")

    async def __call__(self, session: AgiSession) -> None:
        if session.script != "hotline":
            log.warning("unknown AGI script", extra={"script": session.script})
            await session.set_variable("HOTLINE_NEXT", "fallback")
            return
        now = datetime.now(UTC)
        await self.lifecycle.register_arrival(
            session.uniqueid,
            session.headers.get("agi_linkedid", "") or session.uniqueid,
            session.caller_number,
            session.dialed_number,
            session.channel,
            now,
        )
        log.info(
            "hotline call",
            extra={
                "uniqueid": session.uniqueid,
                "caller": session.caller_number,
                "dnis": session.dialed_number,
            },
        )
        digits, timed_out = await session.get_data(f"{self.sounds_dir}/greeting", DIGIT_TIMEOUT_MS, MAX_DIGITS)
        await asyncio.to_thread(self.store.add_digits, session.uniqueid, digits, datetime.now(UTC))
        log.info("caller digits", extra={"uniqueid": session.uniqueid, "digits": digits, "timed_out": timed_out})
        await session.stream_file(f"{self.sounds_dir}/thanks")
        await session.set_variable("HOTLINE_NEXT", "hangup")

"""The hotline's front door on FastAGI: each call runs the IVR flow of its dialed number (T6).

The call record gets the arrival, the flow and its version, every node the caller passed
(with timestamps), the keys pressed in menus, the survey score and how the call left the IVR.
Values a caller keys in (ID-card numbers) are never written to the record or the logs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from cc_core.calls.lifecycle import CallLifecycle
from cc_core.calls.store import CallStore
from cc_core.calls.voicemail import VoicemailStore
from cc_core.db.writer import DbRun
from cc_core.http_policy import DEFAULT_POLICY, HttpPolicy
from cc_core.ivr.agi_driver import AgiDriver, Recording
from cc_core.ivr.prompts import PromptLibrary
from cc_core.ivr.registry import FlowRegistry
from cc_core.ivr.runtime import CallContext, End, Step, ToNumber, ToQueue, Visit, run
from cc_core.switch.fastagi import AgiHangup, AgiSession

log = logging.getLogger(__name__)


class HotlineEntry:
    """The FastAGI handler for ``agi://…/hotline``."""

    def __init__(
        self,
        store: CallStore,
        voicemails: VoicemailStore,
        lifecycle: CallLifecycle,
        registry: FlowRegistry,
        prompts: PromptLibrary,
        *,
        number_flows: Mapping[str, str],
        default_flow: str,
        fallback_queue: str,
        to_inside: Callable[[Path], str],
        voicemail_dir: Path,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        watchdog: float = 15.0,
        db: DbRun = asyncio.to_thread,
        http_policy: HttpPolicy = DEFAULT_POLICY,
    ) -> None:
        self.store = store
        self.db = db  # where the call record's writes run (see CallLifecycle)
        self.voicemails = voicemails
        self.lifecycle = lifecycle
        self.registry = registry
        self.prompts = prompts
        self.number_flows = dict(number_flows)
        self.default_flow = default_flow
        self.fallback_queue = fallback_queue
        self.to_inside = to_inside
        self.voicemail_dir = voicemail_dir
        self.clock = clock
        self.watchdog = watchdog
        self.http: aiohttp.ClientSession | None = None
        # The hosts http nodes may call ([ivr] http_allow).
        self.http_policy = http_policy

    async def start(self) -> None:
        """Open the HTTP client every call's http nodes share.

        Shared for its connection pool only: it keeps no cookies (a cookie one caller's answer
        set must never be sent with another caller's request, issue 11 item 8), and reads no
        proxy settings from the environment."""
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()

    async def __call__(self, session: AgiSession) -> None:
        if session.script != "hotline":
            log.warning("unknown AGI script", extra={"script": session.script})
            await session.set_variable("HOTLINE_NEXT", "fallback")
            return
        uid = session.uniqueid
        await self.lifecycle.register_arrival(
            uid,
            session.headers.get("agi_linkedid", "") or uid,
            session.caller_number,
            session.dialed_number,
            session.channel,
            datetime.now(UTC),
        )
        flow_name = self.number_flows.get(session.dialed_number, self.default_flow)
        flows = self.registry.snapshot()  # this call keeps these versions to the end
        log.info("hotline call", extra={"uniqueid": uid, "caller": session.caller_number, "flow": flow_name})
        if flow_name not in flows:
            log.error("no loadable IVR flow; caller goes to the safety net", extra={"flow": flow_name})
            await self.db(self.store.set_ivr_exit, uid, "fallback", flow_name, datetime.now(UTC))
            await session.set_variable("HOTLINE_NEXT", "fallback")
            return
        flow = flows[flow_name]
        await self.db(self.store.set_flow, uid, flow.name, flow.version, datetime.now(UTC))
        context = CallContext(caller_number=session.caller_number, dialed_number=session.dialed_number)
        steps = run(flows, flow_name, context, self.registry.calendars, self.clock, self.fallback_queue)
        last_visit: list[Visit] = []

        async def record_step(visit: Visit) -> None:
            last_visit[:] = [visit]
            await self.db(
                self.store.add_step, uid, datetime.now(UTC), visit.flow, visit.node, visit.kind, dict(visit.detail)
            )
            if visit.kind == "survey_answer" and visit.detail.get("score"):
                await self.db(self.store.set_survey, uid, int(visit.detail["score"]), datetime.now(UTC))

        async def record_key(key: str) -> None:
            await self.db(self.store.add_digits, uid, key, datetime.now(UTC))

        async def save_message(recording: Recording) -> int | None:
            where = last_visit[0] if last_visit else Visit(flow.name, "", "voicemail")
            return await asyncio.to_thread(
                self.voicemails.add,
                uid,
                session.caller_number,
                where.flow,
                where.node,
                recording.file_inside,
                recording.duration_s,
                datetime.now(UTC),
            )

        assert self.http is not None, "HotlineEntry.start() was not called"
        driver = AgiDriver(
            session,
            self.prompts,
            self.http,
            to_inside=self.to_inside,
            voicemail_dir=self.voicemail_dir,
            record_step=record_step,
            save_message=save_message,
            record_key=record_key,
            watchdog=self.watchdog,
            http_policy=self.http_policy,
        )
        try:
            final = await driver.drive(steps)
        except AgiHangup:
            await self.db(self.store.set_ivr_exit, uid, "abandoned", _node(last_visit), datetime.now(UTC))
            raise
        exit_kind, detail = _exit(final)
        await self.db(self.store.set_ivr_exit, uid, exit_kind, detail, datetime.now(UTC))


def _node(visits: list[Visit]) -> str:
    return visits[0].node if visits else ""


def _exit(step: Step) -> tuple[str, str]:
    match step:
        case ToQueue(queue=queue):
            return "queue", queue
        case ToNumber(number=number):
            return "transfer", number
        case End():
            return "hangup", ""
    return "fallback", ""

"""The ACD at work: the router's decisions carried out on the switch (issue 4; T4, T5, T7, T9, T10).

The pure parts decide — :mod:`cc_core.acd.agent_state` (an agent's state after an event) and
:mod:`cc_core.acd.router` (which waiting caller goes to which agent). This module keeps their
input up to date from the switch's events and carries their output out through the switch's
typed interface (:mod:`cc_core.switch.actions`, decision 0015) and FastAGI (decision 0009):

* A caller the IVR sends to a queue waits in the dialplan's ``hotline-queue`` loop with music.
  Each pass asks the controller over FastAGI (``agi://…/wait``) what next: the controller may
  announce the position and the expected wait, offer a callback or a message after the queue's
  ``max_wait``, act on a key the caller pressed, or send the caller to ring an agent.
* When an agent becomes free while the caller listens to music, the controller moves the caller
  to ``hotline-connect`` (AMI ``Redirect``). Ringing is the dialplan's ``Dial``: the ring stops by
  itself when the caller hangs up, no channel is left behind, and recording (``MixMonitor``)
  starts only when the agent answers.
* The outcome of each ring comes back as AMI ``DialEnd``: answered, not answered (the agent is
  paused after the queue's N misses in a row), unreachable (paused at once), or cancelled.
* When the agent hangs up, the caller goes on to the survey (``agi://…/survey``) and the agent
  into wrap-up, which an APScheduler job ends (T4).
* A caller who hangs up while waiting, or asks for a callback, lands on the callback list; the
  controller places callbacks when agents are free and nobody waits (T10).

If the controller is away, each of these places in the dialplan falls back by itself: the loop's
FastAGI fails and the caller goes to the safety net's queue (P1).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from cc_core.acd import agent_state as sm
from cc_core.acd.model import Agent, AgentState, Contact, QueueConfig, RouterState, WaitingList
from cc_core.acd.router import route
from cc_core.acd.store import AgentStore
from cc_core.bus import EventBus
from cc_core.calls.callbacks import CallbackStore
from cc_core.calls.recordings import RecordingStore
from cc_core.calls.store import CallStore, NotServedError
from cc_core.db.writer import DbRun
from cc_core.errors import HotlineError
from cc_core.ivr.flow import Prompt
from cc_core.ivr.runtime import (
    RECORD_BEEP,
    SURVEY_KEYS,
    SURVEY_LEVELS,
    SURVEY_PROMPT,
    AskKey,
    End,
    RecordMessage,
    Say,
    Step,
    Visit,
)
from cc_core.logs import mask_personal_data
from cc_core.switch.actions import (
    Endpoint,
    Originate,
    Outside,
    Phone,
    Place,
    Redirect,
    SetVariables,
    SwitchControl,
    SwitchUnavailable,
)
from cc_core.switch.events import ChannelHungUp, DeviceStateChanged, DialEnded, DialStarted, SwitchResynced, UserEvent
from cc_core.switch.fastagi import AgiHangup, AgiSession
from cc_core.switch.numbers import is_dialable
from cc_core.switch.view import SwitchView

log = logging.getLogger(__name__)

# Device states in which a phone cannot be rung (AMI DeviceStateChange).
DOWN_STATES = frozenset({"UNAVAILABLE", "INVALID"})
# How often the controller re-runs the router without any event (holds running out) and looks for
# callbacks to place.
TICK_S = 1.0
# A talk time assumed before the queue has calls of its own, for the expected-wait figure.
DEFAULT_HANDLE_S = 180.0
MOBILE_PREFIX = "m:"


class AgentError(HotlineError):
    """An agent's request refused (unknown agent or extension, already logged in…); one line."""


class SummaryRefused(AgentError):
    """An agent tried to write the summary of a call they did not serve (issue 11 item 4)."""


@dataclass(frozen=True, slots=True)
class AcdPrompts:
    """What waiting callers hear (Simplified Chinese; ``{position}`` and ``{minutes}`` filled in)."""

    position: str = "您前面还有{position}位来电，预计等待约{minutes}分钟，请耐心等候。"
    next_in_line: str = "您是下一位，坐席人员将尽快为您服务。"
    keys: str = "如需预约回电请按1，留言请按2。"
    offer: str = "当前等待时间较长。预约回电请按1，留言请按2，继续等待请不要挂机。"
    callback_confirm: str = "已为您登记回电，我们将尽快与您联系。再见。"
    message_thanks: str = "您的留言已收到，谢谢，再见。"
    survey_thanks: str = "感谢您的评价，再见。"


@dataclass
class Waiter:
    """A caller in a queue, as the controller follows them from arrival to the agent."""

    uniqueid: str
    channel: str
    number: str
    contact: Contact
    queued_at: datetime
    # waiting: in the list; assigned: an agent was chosen, the caller not yet sent; redirecting:
    # the AMI Redirect is on its way; dialing: the dialplan rings the agent; returning: the ring
    # failed and the caller is on the way back to the loop; connected: talking to an agent;
    # transferring: on the way back to the loop after a blind transfer; transferred: sent to an
    # outside number.
    state: str = "waiting"
    agent: str | None = None
    agent_leg: str | None = None
    in_agi: bool = False
    announced_at: datetime | None = None
    offered_at: datetime | None = None
    served_by: list[str] = field(default_factory=list)
    # Set when the switch reported the end of a ring (DialEnd): the caller's next FastAGI pass
    # can arrive before that event has been handled.
    ring_over: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class AgentLeg:
    """The channel an agent is rung or talks on, and the call it belongs to."""

    agent: str
    call: str
    queue: str
    uniqueid: str = ""
    callback_attempt: int | None = None


class Acd:
    """Agents, waiting callers and the router, wired to the switch."""

    def __init__(
        self,
        *,
        switch: SwitchControl,
        bus: EventBus,
        view: SwitchView,
        calls: CallStore,
        agent_store: AgentStore,
        recordings: RecordingStore,
        callbacks: CallbackStore,
        queues: dict[str, QueueConfig],
        agents: dict[str, Agent],
        queue_settings: dict[str, dict[str, float]],
        extensions: set[str],
        trunk: str,
        steps_driver: Callable[[AgiSession, str, Generator[Step, Any, None]], Awaitable[Step]],
        host_path: Callable[[str], Path],
        tags_of: Callable[[str], frozenset[str]] = lambda _number: frozenset(),
        callback_queue: str = "general",
        callback_delay_s: float = 120.0,
        prompts: AcdPrompts | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        db: DbRun = asyncio.to_thread,
    ) -> None:
        # The switch, through its typed interface only (issue 12 item 5, decision 0015).
        self.switch = switch
        # Where the call-path writes run: the controller's DbWriter (batched, in order).
        self.db = db
        self.view = view
        self.calls = calls
        self.agent_store = agent_store
        self.recordings = recordings
        self.callbacks = callbacks
        self.queues = queues
        self.agents = agents
        self.queue_settings = queue_settings
        self.known_extensions = extensions
        self.trunk = trunk
        self.drive = steps_driver
        self.host_path = host_path
        self.text = prompts or AcdPrompts()
        self.tags_of = tags_of
        self.callback_delay = timedelta(seconds=callback_delay_s)
        self.callback_queue = callback_queue if callback_queue in queues else next(iter(queues), "")
        self.clock = clock
        self.extension: dict[str, str] = {}  # agent → where they are logged in
        self.waiting = WaitingList(queues)
        self.waiters: dict[str, Waiter] = {}
        self.legs: dict[str, AgentLeg] = {}  # agent → their current leg
        self.rr_cursor: dict[str, str] = {}
        self.handle_times: dict[str, deque[float]] = {}
        self.connected_at: dict[str, datetime] = {}  # agent → when the current call was answered
        self.routed = 0
        self._last_call: dict[str, str] = {}  # agent → the call they last talked on (for the summary)
        self._recorded: set[str] = set()  # channels with a recording running (HotlineRecording)
        # Each recorded channel's file, to close it at hang-up without listing every open recording.
        self._recording_files: dict[str, str] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._wrapup_timer: Callable[[str, datetime], None] = lambda _agent, _when: None
        bus.subscribe(DialStarted, self.on_dial_started)
        bus.subscribe(DialEnded, self.on_dial_ended)
        bus.subscribe(ChannelHungUp, self.on_hangup)
        bus.subscribe(DeviceStateChanged, self.on_device)
        bus.subscribe(UserEvent, self.on_user_event)
        bus.subscribe(SwitchResynced, self.on_resync)

    # ---- set-up -------------------------------------------------------------------------------

    def on_wrapup_scheduled(self, timer: Callable[[str, datetime], None]) -> None:
        """Who arms a timer at the end of an agent's wrap-up (the controller's APScheduler)."""
        self._wrapup_timer = timer

    async def restore(self) -> None:
        """Agents as the database last saw them (a controller restart must not log everyone out).

        Ringing agents are available again (the ring was the previous process's); agents on a
        call keep it until the resync shows whether their channel still exists.
        """
        rows = await asyncio.to_thread(self.agent_store.current)
        now = self.clock()
        for agent_id, row in rows.items():
            agent = self.agents.get(agent_id)
            if agent is None or row.state is AgentState.OFFLINE:
                continue
            state = AgentState.AVAILABLE if row.state is AgentState.RINGING else row.state
            self.agents[agent_id] = replace(
                agent,
                state=state,
                state_since=row.state_since,
                pause_reason=row.pause_reason,
                wrapup_until=row.wrapup_until,
                active_voice=1 if state is AgentState.ON_CALL else 0,
            )
            if row.extension:
                self.extension[agent_id] = row.extension
            if state is AgentState.WRAP_UP and row.wrapup_until is not None:
                self._wrapup_timer(agent_id, row.wrapup_until)
        log.info("agents restored", extra={"logged_in": len(self.extension), "at": now.isoformat()})

    # ---- agents' requests -----------------------------------------------------------------------

    def _agent(self, agent_id: str) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise AgentError(f"unknown agent {agent_id!r}")
        return agent

    def endpoint(self, extension: str) -> Endpoint:
        """What an agent logged in on ``extension`` is rung on: their SIP phone, or a mobile
        (``m:<number>``) through the trunk."""
        if extension.startswith(MOBILE_PREFIX):
            return Outside(extension[len(MOBILE_PREFIX) :], self.trunk)
        return Phone(extension)

    def dial_string(self, extension: str) -> str:
        """How the switch's dialplan rings an extension (the switch's own syntax)."""
        return self.switch.dial_string(self.endpoint(extension))

    def device_reachable(self, extension: str) -> bool:
        if extension.startswith(MOBILE_PREFIX):
            return True  # the carrier's network: nothing to watch
        return self.view.devices.get(self.switch.phone_device(extension), "UNAVAILABLE") not in DOWN_STATES

    async def login(self, agent_id: str, extension: str | None = None) -> Agent:
        """Log an agent in on an extension (their own SIP phone by default, another desk's phone,
        or ``m:<mobile number>`` rung through the trunk). Refused for an unknown agent or
        extension, an agent already logged in, or an extension another agent uses."""
        agent = self._agent(agent_id)
        ext = (extension or agent_id).strip()
        if ext.startswith(MOBILE_PREFIX):
            number = ext[len(MOBILE_PREFIX) :]
            # ASCII digits only (issue 11 item 6): it becomes Dial(PJSIP/<number>@trunk) and an
            # Originate's Channel; str.isdigit() also took '²' and '١'.
            if not is_dialable(number) or not 5 <= len(number.lstrip("+")):
                raise AgentError(f"mobile extension {mask_personal_data(ext)!r} is not a phone number")
            if not self.trunk:
                raise AgentError("no trunk with a host is configured: agents cannot log in on a mobile")
        elif ext not in self.known_extensions:
            raise AgentError(f"unknown extension {ext!r}: no such SIP phone is configured")
        if agent.state is not AgentState.OFFLINE:
            raise AgentError(f"agent {agent_id} is already logged in on {self.extension.get(agent_id, '?')}")
        holder = next((a for a, e in self.extension.items() if e == ext and a != agent_id), None)
        if holder is not None:
            raise AgentError(f"extension {ext} is in use by agent {holder}")
        self.extension[agent_id] = ext
        self._apply(agent_id, sm.login(agent, self.clock(), self.device_reachable(ext)), reason="login")
        return self.agents[agent_id]

    async def logout(self, agent_id: str) -> Agent:
        agent = self._agent(agent_id)
        try:
            changed = sm.logout(agent, self.clock())
        except sm.AgentStateError as exc:
            raise AgentError(str(exc)) from exc
        self._apply(agent_id, changed, reason="logout")
        self.extension.pop(agent_id, None)
        return changed

    async def pause(self, agent_id: str, reason: str) -> Agent:
        return await self._request(agent_id, lambda a, now: sm.pause(a, now, reason), reason)

    async def resume(self, agent_id: str) -> Agent:
        return await self._request(agent_id, sm.resume, "resume")

    async def chat_started(self, agent_id: str) -> Agent:
        """A chat (WeChat, issue 7) opened for the agent: their load grows (least_occupied)."""
        return await self._request(agent_id, sm.chat_started, "chat started")

    async def chat_ended(self, agent_id: str) -> Agent:
        return await self._request(agent_id, sm.chat_ended, "chat ended")

    async def end_wrapup(self, agent_id: str) -> Agent:
        return await self._request(agent_id, sm.end_wrapup_early, "wrap-up ended early")

    async def extend_wrapup(self, agent_id: str, seconds: int) -> Agent:
        changed = await self._request(agent_id, lambda a, now: sm.extend_wrapup(a, now, seconds), "wrap-up extended")
        if changed.wrapup_until is not None:
            self._wrapup_timer(agent_id, changed.wrapup_until)
        return changed

    async def call_back_now(self, agent_id: str, callback_id: int) -> None:
        """The agent asks to call a citizen on the callback list back now (T10, the workstation's
        立即回拨): their phone rings first, then the citizen, as for an automatic callback.
        Refused unless the callback is open and the agent is available on a reachable phone (in
        that order: a closed callback is the answer whatever the agent is doing, e.g. already
        ringing for an automatic callback)."""
        self._agent(agent_id)  # an unknown agent is refused first
        callback = await asyncio.to_thread(self.callbacks.get, callback_id)
        if callback is None or callback.status != "open":
            raise AgentError(f"callback {callback_id} is not open")
        agent = self._agent(agent_id)  # read after the look-up: the state may have moved meanwhile
        if agent.state is not AgentState.AVAILABLE:
            raise AgentError(f"agent {agent_id} must be available to call back (now {agent.state.value})")
        if not agent.device_reachable:
            raise AgentError(f"agent {agent_id}'s phone is not reachable")
        if not self.trunk or not self.switch.connected:
            raise AgentError("calls cannot be placed now (no trunk, or the switch is not connected)")
        if not await asyncio.to_thread(self.callbacks.claim, callback_id, self.clock()):
            raise AgentError(f"callback {callback_id} was just taken by someone else")
        await self._place(callback_id, callback.number, agent_id)

    def reconfigure(
        self,
        queues: dict[str, QueueConfig],
        queue_settings: dict[str, dict[str, float]],
        agents: dict[str, Agent],
        extensions: set[str],
    ) -> None:
        """Take edited agents and queues without a restart (the admin page, cc_core/acd/roster.py).

        Queue names stay the same (the roster refuses to add or remove one); callers waiting are
        ordered again by the new queue settings. An agent's static fields (name, skills, team,
        tags, queues, chats) change at once and their state is kept; a new agent starts logged
        out; a removed agent must be logged out (the caller checks)."""
        self.queues = queues
        self.queue_settings = queue_settings
        self.waiting = self.waiting.rebuilt(queues)
        for agent_id in list(self.agents):
            if agent_id not in agents:
                del self.agents[agent_id]
                self.extension.pop(agent_id, None)
        for agent_id, configured in agents.items():
            current = self.agents.get(agent_id)
            if current is None:
                self.agents[agent_id] = configured
                continue
            self.agents[agent_id] = replace(
                current,
                name=configured.name,
                skills=configured.skills,
                team=configured.team,
                tags=configured.tags,
                queues=configured.queues,
                chat_capacity=configured.chat_capacity,
            )
        self.known_extensions = extensions
        self.dispatch()

    def last_call(self, agent_id: str) -> str | None:
        """The call the agent last talked on (their wrap-up is about it)."""
        return self._last_call.get(agent_id)

    async def summary(self, agent_id: str, text: str, call: str | None = None) -> str:
        """Store the agent's wrap-up summary on the call (their last one unless ``call`` is given).

        Only on a call the agent served (issue 11 item 4): one the record names them on, or the
        call they last talked on here (a consulted agent's, which the record does not name).
        Another agent's call raises :class:`SummaryRefused`, and its summary stays as it was."""
        self._agent(agent_id)
        last = self._last_call.get(agent_id)
        uid = call or last
        if uid is None:
            raise AgentError(f"agent {agent_id} has no call to write a summary for")
        if not text.strip():
            raise AgentError("the summary is empty")
        try:
            known = await self.db(self.calls.set_summary, uid, agent_id, text.strip(), self.clock(), served=uid == last)
        except NotServedError as exc:
            raise SummaryRefused(
                f"只能为自己接待的通话写小结 (agent {agent_id} did not serve call {uid}; "
                "only an agent who served a call writes its summary)"
            ) from exc
        if not known:
            raise AgentError(f"unknown call {uid}")
        return uid

    async def _request(self, agent_id: str, change: Callable[[Agent, datetime], Agent], reason: str) -> Agent:
        agent = self._agent(agent_id)
        try:
            changed = change(agent, self.clock())
        except sm.AgentStateError as exc:
            raise AgentError(str(exc)) from exc
        self._apply(agent_id, changed, reason=reason)
        return changed

    def snapshot(self) -> dict[str, Any]:
        """Agents, legs and waiting callers, for the status page and the CLI (numbers masked)."""
        now = self.clock()
        return {
            "agents": {
                a.id: {
                    "name": a.name,
                    "state": a.state.value,
                    "since": a.state_since.isoformat(),
                    "extension": self.extension.get(a.id),
                    "pause_reason": a.pause_reason,
                    "wrapup_until": a.wrapup_until.isoformat() if a.wrapup_until else None,
                    "missed_in_row": a.missed_in_row,
                    "reachable": a.device_reachable,
                }
                for a in sorted(self.agents.values(), key=lambda a: a.id)
            },
            "waiting": [
                {
                    "uniqueid": w.uniqueid,
                    "queue": w.contact.queue,
                    "caller": mask_personal_data(w.number),
                    "state": w.state,
                    "agent": w.agent,
                    "waited_s": round((now - w.queued_at).total_seconds(), 1),
                }
                for w in self.waiters.values()
                if w.state != "connected"
            ],
            "routed": self.routed,
        }

    # ---- state changes --------------------------------------------------------------------------

    def _apply(self, agent_id: str, changed: Agent, *, reason: str | None = None, call: str | None = None) -> None:
        """Keep the agent's new state at once (the next decision must see it), store the change in
        the background, and route (an agent may have come free)."""
        before = self.agents[agent_id]
        self.agents[agent_id] = changed
        if changed.state is not before.state or changed.wrapup_until != before.wrapup_until:
            self._spawn(self._record(before, changed, reason, call))
        if changed.state is AgentState.WRAP_UP and changed.wrapup_until is not None:
            self._wrapup_timer(agent_id, changed.wrapup_until)
        self.dispatch()

    async def _record(self, before: Agent, changed: Agent, reason: str | None, call: str | None) -> None:
        last = self._last_call.get(changed.id)
        if before.state is AgentState.WRAP_UP and changed.state is not AgentState.WRAP_UP and last is not None:
            try:
                await self.db(self.calls.set_wrapup, last, changed.id, changed.state_since, None)
            except Exception:
                log.exception("wrap-up end not stored", extra={"agent": changed.id})
        try:
            await self.db(
                self.agent_store.record,
                changed.id,
                changed.state_since if changed.state is not before.state else self.clock(),
                before.state.value,
                changed.state.value,
                reason=changed.pause_reason or reason,
                call_uniqueid=call,
                pause_reason=changed.pause_reason,
                wrapup_until=changed.wrapup_until,
                extension=self.extension.get(changed.id),
            )
        except Exception:  # the database is down: routing goes on, the report misses a line
            log.exception("agent state change not stored", extra={"agent": changed.id})

    def _set(self, agent_id: str, change: Callable[[Agent], Agent], reason: str, call: str | None = None) -> bool:
        """Apply a switch event to an agent, in the background; a change that makes no sense in the
        agent's state (a late or repeated event) is logged and ignored."""
        agent = self.agents.get(agent_id)
        if agent is None:
            return False
        try:
            changed = change(agent)
        except sm.AgentStateError as exc:
            log.info("agent event ignored: %s", exc)
            return False
        self._apply(agent_id, changed, reason=reason, call=call)
        return True

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ACD task failed", exc_info=task.exception())

    # ---- routing ----------------------------------------------------------------------------------

    async def tick(self) -> None:
        """Time passes: wrap-ups that are over end, holds that ran out free their callers."""
        self.dispatch(time_passed=True)

    def _end_due_wrapups(self, now: datetime) -> None:
        for agent_id, agent in list(self.agents.items()):
            ticked = sm.tick(agent, now)
            if ticked is not agent:
                self.agents[agent_id] = ticked
                self._spawn(self._record(agent, ticked, "wrap-up over", None))

    def dispatch(self, *, time_passed: bool = False) -> None:
        """Run the router and carry its assignments out (synchronously decided: no double offer).

        Wrap-ups that are over end first (every second from :meth:`tick`, and before any routing
        so an agent whose wrap-up just ran out is seen as free)."""
        if not self.waiting and not time_passed:
            return
        now = self.clock()
        self._end_due_wrapups(now)
        if not self.waiting:
            return
        result = route(RouterState(self.agents, self.waiting, self.queues, self.rr_cursor), now)
        if not result.assignments:
            return
        self.rr_cursor = dict(result.rr_cursor)
        self.waiting = self.waiting.removed({contact_id for contact_id, _ in result.assignments})
        for contact_id, agent_id in result.assignments:
            waiter = self.waiters[contact_id]
            before = self.agents[agent_id]
            offered = sm.offer(before, now)
            self.agents[agent_id] = offered
            self._spawn(self._record(before, offered, "offer", contact_id))
            waiter.state, waiter.agent = "assigned", agent_id
            self.legs[agent_id] = AgentLeg(agent_id, contact_id, waiter.contact.queue)
            self.routed += 1
            log.info("caller assigned", extra={"uniqueid": contact_id, "agent": agent_id})
            if not waiter.in_agi:
                waiter.state = "redirecting"
                self._spawn(self._redirect(waiter, agent_id))

    def _ring_vars(self, waiter: Waiter, agent_id: str) -> dict[str, str]:
        queue = self.queues[waiter.contact.queue]
        return {
            "HOTLINE_DIAL": self.dial_string(self.extension.get(agent_id, agent_id)),
            "HOTLINE_RING_S": str(queue.ring_timeout_s),
            "HOTLINE_AGENT": agent_id,
        }

    async def _redirect(self, waiter: Waiter, agent_id: str) -> None:
        """Move a caller listening to music to ring the agent (hotline-connect)."""
        try:
            # A refused variable means the channel is gone: the Redirect then fails as well.
            await self.switch.send(SetVariables(waiter.channel, self._ring_vars(waiter, agent_id)))
            ok = (await self.switch.send(Redirect(waiter.channel, Place("hotline-connect", agent_id)))).ok
        except SwitchUnavailable as exc:
            log.warning("redirect to agent failed", extra={"uniqueid": waiter.uniqueid, "error": str(exc)})
            ok = False
        if ok:
            if waiter.state == "redirecting":
                waiter.state = "dialing"
                waiter.ring_over.clear()
            return
        # The caller hung up in between, or the link is down: the agent must not stay "ringing".
        self._cancel_offer(waiter, agent_id)

    def _cancel_offer(self, waiter: Waiter, agent_id: str) -> None:
        self.legs.pop(agent_id, None)
        self._set(agent_id, lambda a: sm.ring_cancelled(a, self.clock()), "ring cancelled", waiter.uniqueid)
        if waiter.uniqueid in self.waiters and waiter.uniqueid in self.view.channels:
            waiter.state, waiter.agent = "waiting", None
            self.waiting = self.waiting.added(waiter.contact)
            self.dispatch()

    # ---- the caller's wait (FastAGI "wait") ---------------------------------------------------

    async def wait(self, session: AgiSession) -> None:
        """One pass of a waiting caller through the loop: decide what the caller does next."""
        uid = session.uniqueid
        waiter = self.waiters.get(uid)
        if waiter is None:
            waiter = await self._join(session)
            if waiter is None:
                await session.set_variable("HOTLINE_NEXT", "fallback")
                return
        if waiter.state == "redirecting":
            # The Redirect is on its way: let the caller go back to the music, where it lands.
            await self._next_wait(session, 2)
            return
        waiter.in_agi = True
        try:
            if waiter.state == "transferring":
                # An agent's blind transfer brought the caller back here (callcontrol).
                waiter.state = "waiting"
                self.waiting = self.waiting.added(waiter.contact)
                self.dispatch()
            if waiter.state == "dialing":
                await self._ring_outcome(waiter)
            if waiter.state == "returning":
                waiter.state, waiter.agent = "waiting", None
                self.waiting = self.waiting.added(waiter.contact)
                self.dispatch()
            if await self._connect_if_assigned(session, waiter):
                return
            key = await session.get_variable("HOTLINE_KEY") or ""
            if key in ("1", "2") and waiter.state == "waiting":
                await self._leave(session, waiter, "callback" if key == "1" else "message")
                return
            await self._announce(session, waiter)
            if await self._connect_if_assigned(session, waiter):
                return
            await self._next_wait(session, self._wait_seconds(waiter))
        except AgiHangup:
            pass
        finally:
            waiter.in_agi = False

    async def _ring_outcome(self, waiter: Waiter) -> None:
        """The caller is back from ringing an agent (Dial returned without an answer): wait briefly
        for the switch's DialEnd, which says whether it was a miss; without it (the AMI link is
        down), the ring counts as cancelled and the caller is offered again."""
        try:
            await asyncio.wait_for(waiter.ring_over.wait(), 3.0)
        except TimeoutError:
            agent_id = waiter.agent
            log.warning("no DialEnd for a ring; taking it as cancelled", extra={"uniqueid": waiter.uniqueid})
            if agent_id is not None:
                self.legs.pop(agent_id, None)
                self._set(
                    agent_id, lambda a: sm.ring_cancelled(a, self.clock()), "ring outcome unknown", waiter.uniqueid
                )
            waiter.agent, waiter.state = None, "returning"

    async def _join(self, session: AgiSession) -> Waiter | None:
        """A caller enters the queue (or, after a controller restart, is found there again)."""
        queue = await session.get_variable("HOTLINE_QUEUE") or ""
        if queue not in self.queues:
            log.error("caller sent to an unknown queue: safety net", extra={"queue": queue})
            return None
        skill = await session.get_variable("HOTLINE_SKILL") or None
        try:
            priority = int(await session.get_variable("HOTLINE_PRIORITY") or 0)
        except ValueError:
            priority = 0
        now = self.clock()
        since = await self._queued_since(session, now)
        number = session.caller_number
        config = self.queues[queue]
        preferred: str | None = None
        if number and config.returning_window_s > 0:
            since_window = now - timedelta(seconds=config.returning_window_s)
            preferred = await asyncio.to_thread(self.calls.last_agent, number, since_window)
        requested = await session.get_variable("HOTLINE_REQUESTED_AGENT") or None
        contact = Contact(
            id=session.uniqueid,
            queue=queue,
            arrived_at=since,
            skill=skill if skill and any(skill in a.skills for a in self.agents.values()) else None,
            priority=priority,
            caller_number=number,
            caller_tags=self.tags_of(number),
            requested_agent=requested if requested in self.agents else None,
            preferred_agent=preferred if preferred in self.agents else None,
        )
        waiter = Waiter(session.uniqueid, session.channel, number, contact, since)
        # The caller is inside this FastAGI pass until it returns: an agent found meanwhile (by
        # the dispatch below, or by another event while the record is written) is handed over by
        # the pass itself (HOTLINE_NEXT=connect), never by an AMI Redirect. A Redirect landing in
        # a running pass raced with the dialplan after it and sometimes hung the caller up (seen
        # about once in 500 calls under load, docs/PERFORMANCE.md).
        waiter.in_agi = True
        self.waiters[waiter.uniqueid] = waiter
        self.waiting = self.waiting.added(contact)
        try:
            await self.db(self.calls.queue_entered, waiter.uniqueid, queue, skill, priority, now)
            log.info("caller queued", extra={"uniqueid": waiter.uniqueid, "queue": queue, "returning_to": preferred})
            self.dispatch()
        except BaseException:
            waiter.in_agi = False
            raise
        return waiter

    async def _queued_since(self, session: AgiSession, now: datetime) -> datetime:
        """When the caller entered the queue: kept on the channel, so a restarted controller keeps
        the caller's place in line."""
        stamp = await session.get_variable("HOTLINE_QUEUED_AT")
        if stamp:
            try:
                return datetime.fromtimestamp(float(stamp), UTC)
            except (ValueError, OverflowError):
                pass
        await session.set_variable("HOTLINE_QUEUED_AT", f"{now.timestamp():.6f}")
        return now

    async def _connect_if_assigned(self, session: AgiSession, waiter: Waiter) -> bool:
        if waiter.state != "assigned" or waiter.agent is None:
            return False
        for name, value in self._ring_vars(waiter, waiter.agent).items():
            await session.set_variable(name, value)
        waiter.state = "dialing"
        waiter.ring_over.clear()
        await session.set_variable("HOTLINE_NEXT", "connect")
        return True

    async def _next_wait(self, session: AgiSession, seconds: float) -> None:
        await session.set_variable("HOTLINE_WAIT_S", str(max(1, round(seconds))))
        await session.set_variable("HOTLINE_NEXT", "wait")

    def _wait_seconds(self, waiter: Waiter) -> float:
        settings = self.queue_settings.get(waiter.contact.queue, {})
        every = float(settings.get("announce_every", 60))
        now = self.clock()
        waited = (now - waiter.queued_at).total_seconds()
        until_offer = float(settings.get("max_wait", 600)) - waited
        if waiter.offered_at is None and until_offer > 0:
            return min(every, until_offer)
        return every

    def position(self, waiter: Waiter) -> int:
        """How many callers of the same queue are ahead (0: next in line)."""
        ahead = 0
        for contact in self.waiting:
            if contact.id == waiter.uniqueid:
                return ahead
            if contact.queue == waiter.contact.queue:
                ahead += 1
        return ahead

    def expected_wait_s(self, waiter: Waiter) -> float:
        """Callers ahead × the queue's recent talk time ÷ the agents logged in to it."""
        queue = waiter.contact.queue
        times = self.handle_times.get(queue)
        handle = sorted(times)[len(times) // 2] if times else DEFAULT_HANDLE_S
        serving = sum(1 for a in self.agents.values() if a.state is not AgentState.OFFLINE and queue in a.queues)
        return (self.position(waiter) + 1) * handle / max(1, serving)

    async def _announce(self, session: AgiSession, waiter: Waiter) -> None:
        settings = self.queue_settings.get(waiter.contact.queue, {})
        now = self.clock()
        every = timedelta(seconds=float(settings.get("announce_every", 60)))
        steps: list[Step] = []
        waited = (now - waiter.queued_at).total_seconds()
        if waiter.offered_at is None and waited >= float(settings.get("max_wait", 600)):
            waiter.offered_at = now
            await self.db(self.calls.add_event, waiter.uniqueid, "callback_offer", {}, now)
            answer = await self._run(session, [AskKey(Prompt(text=self.text.offer), 5.0, "12")])
            if answer in ("1", "2"):
                await self._leave(session, waiter, "callback" if answer == "1" else "message")
                raise AgiHangup("caller left the queue")
            waiter.announced_at = now
            return
        if waiter.announced_at is not None and now - waiter.announced_at < every:
            return
        if waiter.announced_at is None and waiter.agent is None and self._free_agent_for(waiter.contact):
            return  # about to be served: no announcement in the way
        waiter.announced_at = now
        ahead = self.position(waiter)
        if ahead == 0:
            text = self.text.next_in_line
        else:
            minutes = max(1, round(self.expected_wait_s(waiter) / 60))
            text = self.text.position.format(position=ahead, minutes=minutes)
        steps.append(Say(Prompt(text=text + self.text.keys)))
        await self.db(self.calls.add_event, waiter.uniqueid, "wait_announce", {"ahead": ahead}, now)
        await self._run(session, steps)

    def _free_agent_for(self, contact: Contact) -> bool:
        return any(a.state is AgentState.AVAILABLE and contact.queue in a.queues for a in self.agents.values())

    async def _run(self, session: AgiSession, steps: list[Step]) -> Any:
        """Run a few IVR steps on the caller (prompts, a key, a message); return the last answer."""
        answers: list[Any] = []

        def generator() -> Generator[Step, Any, None]:
            for step in steps:
                answers.append((yield step))
            yield End(None)

        final = await self.drive(session, "acd", generator())
        del final
        return answers[-1] if answers else None

    async def _leave(self, session: AgiSession, waiter: Waiter, how: str) -> None:
        """The caller leaves the queue by a key: a callback request, or a message (T10)."""
        self.waiting = self.waiting.removed({waiter.uniqueid})
        self.waiters.pop(waiter.uniqueid, None)
        now = self.clock()
        await self.db(self.calls.add_event, waiter.uniqueid, "left_queue", {"how": how}, now)
        if how == "callback" and is_dialable(waiter.number):  # else: a message instead
            await asyncio.to_thread(self.callbacks.request, waiter.number, waiter.uniqueid, "requested", now)
            await self._say_and_hang_up(session, self.text.callback_confirm)
            return

        def message() -> Generator[Step, Any, None]:
            yield Visit("acd", waiter.contact.queue, "voicemail")
            yield RecordMessage(RECORD_BEEP, 120)
            yield End(Prompt(text=self.text.message_thanks))

        await self.drive(session, "message", message())

    async def _say_and_hang_up(self, session: AgiSession, text: str) -> None:
        def bye() -> Generator[Step, Any, None]:
            yield End(Prompt(text=text))

        await self.drive(session, "acd", bye())

    # ---- the survey after the agent hung up (FastAGI "survey") -----------------------------------

    async def survey(self, session: AgiSession) -> None:
        uid = session.uniqueid
        waiter = self.waiters.pop(uid, None)
        agent = waiter.served_by[-1] if waiter and waiter.served_by else await session.get_variable("HOTLINE_AGENT")
        score: list[str] = []

        def steps() -> Generator[Step, Any, None]:
            key = ""
            for _attempt in range(2):
                key = yield AskKey(SURVEY_PROMPT, 6.0, SURVEY_KEYS)
                if key:
                    break
            score.append(key or "")
            yield Visit(
                "acd", "post_call_survey", "survey_answer", {"score": key, "level": SURVEY_LEVELS.get(key or "")}
            )
            yield End(Prompt(text=self.text.survey_thanks) if key else None)

        try:
            await self.drive(session, "survey", steps())
        except AgiHangup:
            pass
        if score and score[0]:
            await self.db(self.calls.set_survey, uid, int(score[0]), self.clock(), agent or None)

    # ---- switch events ----------------------------------------------------------------------------

    async def on_dial_started(self, event: DialStarted) -> None:
        waiter = self.waiters.get(event.uniqueid)
        if waiter is None or waiter.agent is None:
            return
        leg = self.legs.get(waiter.agent)
        if leg is not None and leg.call == waiter.uniqueid:
            leg.uniqueid = event.dest_uniqueid
        waiter.state = "dialing"
        waiter.ring_over.clear()
        await self.db(self.calls.add_event, waiter.uniqueid, "ring", {"agent": waiter.agent}, self.clock())

    def _agent_on(self, channel: str) -> str | None:
        """The logged-in agent whose phone a channel (``PJSIP/1001-0000002a``) belongs to."""
        ext = self.switch.endpoint_of_channel(channel)
        return next((a for a, e in self.extension.items() if e == ext), None)

    def _adopt(self, agent_id: str, call: str, leg_uid: str, reason: str) -> None:
        """Take over a call an agent is already talking on, which this process did not connect
        (it was restarted, or the AMI link was down when the agent answered)."""
        now = self.clock()
        agent = self.agents[agent_id]
        self.legs[agent_id] = AgentLeg(agent_id, call, next(iter(self.queues)), leg_uid)
        self.connected_at.setdefault(agent_id, now)
        self._last_call[agent_id] = call
        if agent.state is AgentState.AVAILABLE:
            self._set(agent_id, lambda a: sm.answered(sm.offer(a, now), now), reason, call)
        log.info("call adopted", extra={"agent": agent_id, "uniqueid": call})
        self._spawn(self._adopted(call, agent_id, now))

    async def _adopted(self, call: str, agent_id: str, now: datetime) -> None:
        # The answer may not have reached the database before a restart (a kept one stays).
        try:
            await self.db(self.calls.agent_answered, call, agent_id, now)
            await self.db(self.calls.add_event, call, "adopted", {"agent": agent_id}, now)
        except Exception:
            log.exception("adopted call not stored", extra={"uniqueid": call})

    async def on_dial_ended(self, event: DialEnded) -> None:
        # Every change in memory comes before the first await: the caller's next FastAGI pass
        # (right after Dial returns) must find the outcome already applied.
        waiter = self.waiters.get(event.uniqueid)
        if waiter is None and event.status == "ANSWER":
            # A ring this process did not start (it began before a restart): the agent is on it.
            agent_id = self._agent_on(event.dest_channel)
            if agent_id is not None and agent_id not in self.legs and event.uniqueid not in self.waiters:
                if self.agents[agent_id].state is AgentState.AVAILABLE:
                    self._adopt(agent_id, event.uniqueid, event.dest_uniqueid, "answered a ring from before a restart")
            return
        if waiter is None or waiter.agent is None:
            return
        agent_id, status, now, uid = waiter.agent, event.status, self.clock(), waiter.uniqueid
        queue = self.queues[waiter.contact.queue]
        waiter.ring_over.set()
        if status == "ANSWER":
            waiter.state = "connected"
            waiter.served_by.append(agent_id)
            self.connected_at[agent_id] = now
            self._last_call[agent_id] = uid
            self._set(agent_id, lambda a: sm.answered(a, now), "answered", uid)
        else:
            self.legs.pop(agent_id, None)
            waiter.agent = None
            if status == "CANCEL":
                self._set(agent_id, lambda a: sm.ring_cancelled(a, now), "caller hung up while ringing", uid)
            else:
                if status == "CHANUNAVAIL":
                    self._set(agent_id, lambda a: sm.unreachable(a, now), "device unreachable", uid)
                else:  # NOANSWER, BUSY, CONGESTION: a miss
                    self._set(agent_id, lambda a: sm.not_answered(a, now, queue), "no answer", uid)
                waiter.contact = replace(waiter.contact, declined=waiter.contact.declined | {agent_id})
                waiter.state = "returning"  # the dialplan brings the caller back to the loop's FastAGI
        await self.db(self.calls.add_event, uid, "ring_result", {"agent": agent_id, "status": status}, now)
        if status == "ANSWER":
            await self.db(self.calls.agent_answered, uid, agent_id, now)

    async def on_hangup(self, event: ChannelHungUp) -> None:
        uid = event.uniqueid
        if uid in self._recorded:
            # A recorded leg: an agent's is closed with the agent's call below; others (a third
            # party, an outside number a caller was transferred to) here.
            self._recorded.discard(uid)
            if not any(leg.uniqueid == uid for leg in self.legs.values()):
                self._spawn(self._finish_recordings(uid))
        waiter = self.waiters.get(uid)
        if waiter is not None:
            await self._caller_gone(waiter)
            return
        for agent_id, leg in list(self.legs.items()):
            if leg.uniqueid and leg.uniqueid == uid:
                if self.agents[agent_id].state is AgentState.ON_CALL:
                    await self._agent_leg_ended(agent_id, leg)
                # else: a ring that ended; DialEnd (or the originate's answer) tells how
                return

    async def _caller_gone(self, waiter: Waiter) -> None:
        self.waiters.pop(waiter.uniqueid, None)
        self.waiting = self.waiting.removed({waiter.uniqueid})
        if waiter.state in ("assigned", "redirecting") and waiter.agent is not None:
            # Chosen but not yet ringing: free the agent (when ringing, DialEnd CANCEL does).
            self.legs.pop(waiter.agent, None)
            agent_id = waiter.agent
            self._set(agent_id, lambda a: sm.ring_cancelled(a, self.clock()), "caller hung up", waiter.uniqueid)
        if waiter.state != "connected" and not waiter.served_by:
            now = self.clock()
            await self.db(self.calls.add_event, waiter.uniqueid, "abandoned", {}, now)
            if waiter.number:
                try:
                    await asyncio.to_thread(self.callbacks.request, waiter.number, waiter.uniqueid, "abandoned", now)
                except ValueError as exc:
                    log.info("no callback for this caller: %s", exc)

    async def _agent_leg_ended(self, agent_id: str, leg: AgentLeg) -> None:
        self.legs.pop(agent_id, None)
        now = self.clock()
        queue = self.queues.get(leg.queue) or next(iter(self.queues.values()))
        started = self.connected_at.pop(agent_id, None)
        if started is not None:
            self.handle_times.setdefault(leg.queue, deque(maxlen=20)).append((now - started).total_seconds())
        await self.db(self.calls.add_event, leg.call, "agent_left", {"agent": agent_id}, now)
        self._set(agent_id, lambda a: sm.call_ended(a, now, queue), "call ended", leg.call)
        self._spawn(self._finish_recordings(leg.uniqueid))

    async def _finish_recordings(self, leg: str) -> None:
        """Close the recording of a leg once MixMonitor has written its last bytes."""
        file = self._recording_files.pop(leg, None)
        if file is not None:
            files = [file]
        else:  # started before a restart of the controller: look it up
            views = await asyncio.to_thread(self.recordings.open_recordings)
            files = [v.file for v in views if v.file.endswith(f"/{leg}.wav")]
        for file in files:
            await asyncio.sleep(1.0)  # MixMonitor closes the file from its own thread after the hang-up
            await asyncio.to_thread(self.recordings.finished, file, self.clock(), self.host_path(file))

    async def _finish_orphan_recordings(self) -> None:
        """After a resync: recordings still open whose channel is gone (it hung up while the
        controller was away or the link was down) are closed."""
        for view in await asyncio.to_thread(self.recordings.open_recordings):
            leg = view.file.rsplit("/", 1)[-1].removesuffix(".wav")
            if leg in self.view.channels or any(x.uniqueid == leg for x in self.legs.values()):
                continue
            try:
                await asyncio.to_thread(self.recordings.finished, view.file, self.clock(), self.host_path(view.file))
            except OSError as exc:  # left open; the next resync tries again
                log.warning("recording not closed: %s", exc, extra={"file": view.file})

    async def on_user_event(self, event: UserEvent) -> None:
        if event.name == "HotlineCallbackResult":
            await self.callback_result(event)
        elif event.name == "HotlineRecording":
            self._recorded.add(event.uniqueid)
            fields = event.fields
            call = fields.get("Call", "") or event.uniqueid
            if fields.get("File"):
                self._recording_files[event.uniqueid] = fields["File"]
            await self.db(
                self.recordings.started,
                call,
                fields.get("Agent") or None,
                fields.get("Leg") or "agent",
                fields.get("File", ""),
                self.clock(),
            )

    async def on_device(self, event: DeviceStateChanged) -> None:
        ext = self.switch.endpoint_of_device(event.device)
        if ext is None:
            return
        now = self.clock()
        for agent_id, where in list(self.extension.items()):
            if where != ext:
                continue
            agent = self.agents[agent_id]
            if event.state in DOWN_STATES and agent.device_reachable:
                self._set(agent_id, lambda a: sm.unreachable(a, now), "device unreachable")
            elif event.state not in DOWN_STATES and not agent.device_reachable:
                self._set(agent_id, lambda a: sm.reachable(a, now), "device reachable")

    async def on_resync(self, event: SwitchResynced) -> None:
        """After the AMI link came back: legs and callers whose channels are gone ended meanwhile."""
        for agent_id, leg in list(self.legs.items()):
            if leg.uniqueid and leg.uniqueid not in self.view.channels:
                await self._agent_leg_ended(agent_id, leg)
        for waiter in list(self.waiters.values()):
            if waiter.uniqueid not in self.view.channels:
                await self._caller_gone(waiter)
        self._spawn(self._finish_orphan_recordings())
        # Agents with no leg known (a controller restart): one the database says is on a call
        # keeps it if their phone still has a channel, else the call ended meanwhile; one who is
        # available but whose phone talks on a call the hotline placed (the answer came just
        # before the restart, or while the controller was away) is on that call.
        for agent_id, agent in list(self.agents.items()):
            if agent_id in self.legs or agent.state not in (AgentState.ON_CALL, AgentState.AVAILABLE):
                continue
            ext = self.extension.get(agent_id, agent_id)
            chan = next(
                (
                    c
                    for c in self.view.channels.values()
                    if self.switch.endpoint_of_channel(c.channel) == ext
                    and (agent.state is AgentState.ON_CALL or c.linkedid != c.uniqueid)
                ),
                None,
            )
            if chan is not None:
                self._adopt(agent_id, chan.linkedid, chan.uniqueid, "on a call found after a resync")
            elif agent.state is AgentState.ON_CALL:
                now = self.clock()
                queue = next(iter(self.queues.values()))
                self._set(agent_id, partial(_call_ended, now=now, queue=queue), "call ended while away")
        for agent_id, ext in self.extension.items():
            reachable = self.device_reachable(ext)
            if reachable != self.agents[agent_id].device_reachable:
                now = self.clock()
                change = sm.reachable if reachable else sm.unreachable
                self._set(agent_id, partial(_at, change, now), "device state after resync")
        self.dispatch()

    # ---- callbacks (T10) ----------------------------------------------------------------------------

    async def place_callbacks(self) -> None:
        """Call back citizens when agents are free and nobody waits: agent first, then the citizen."""
        if self.waiting or not self.trunk or not self.switch.connected:
            return
        now = self.clock()
        free = sorted(
            (a for a in self.agents.values() if a.state is AgentState.AVAILABLE and a.device_reachable),
            key=lambda a: a.idle_key,
        )
        if not free:
            return
        # A callback becomes due callback_delay after it was asked for (or its last attempt's retry).
        for callback in await asyncio.to_thread(self.callbacks.due, now - self.callback_delay, len(free)):
            if not free:
                return
            if not await asyncio.to_thread(self.callbacks.claim, callback.id, now):
                continue
            agent = free.pop(0)
            await self._place(callback.id, callback.number, agent.id)

    async def _place(self, callback_id: int, number: str, agent_id: str) -> None:
        now = self.clock()
        if not is_dialable(number):
            # Never dialled (issue 11 item 6): it would become the Originate's Exten and the
            # dialplan's Dial(PJSIP/<number>@trunk). The agent is not rung; the callback is closed.
            log.warning("callback refused: not a dialable number", extra={"callback": callback_id})
            await asyncio.to_thread(self.callbacks.cancel, callback_id, now, "号码无法拨打 (not a dialable number)")
            return
        before = self.agents[agent_id]
        try:
            offered = sm.offer(before, now)
        except sm.AgentStateError:
            await asyncio.to_thread(self.callbacks.release_stale, now + timedelta(seconds=1))
            return
        self.agents[agent_id] = offered
        self._spawn(self._record(before, offered, "callback", None))
        leg_uid = f"cb-{callback_id}-{secrets.token_hex(4)}"
        attempt = await asyncio.to_thread(self.callbacks.attempt_started, callback_id, agent_id, now, leg_uid)
        queue_name = self.callback_queue
        self.legs[agent_id] = AgentLeg(agent_id, leg_uid, queue_name, leg_uid, attempt)
        queue = self.queues[queue_name]
        log.info(
            "placing a callback",
            extra={"callback": callback_id, "agent": agent_id, "number": mask_personal_data(number)},
        )
        self._spawn(self._originate_callback(callback_id, attempt, number, agent_id, leg_uid, queue))

    async def _originate_callback(
        self, callback_id: int, attempt: int, number: str, agent_id: str, leg_uid: str, queue: QueueConfig
    ) -> None:
        action = Originate(
            endpoint=self.endpoint(self.extension.get(agent_id, agent_id)),
            to=Place("hotline-callback", number),
            ring_s=queue.ring_timeout_s,
            caller_id=f"回电 <{number}>",
            channel_id=leg_uid,
            variables={
                "HOTLINE_CALLBACK": str(callback_id),
                "HOTLINE_ATTEMPT": str(attempt),
                "HOTLINE_AGENT_ID": agent_id,
                "HOTLINE_CALL": leg_uid,
                "HOTLINE_LEG": "callback",
            },
        )
        try:
            ok = (await self.switch.originate(action)).answered
        except SwitchUnavailable as exc:
            log.warning("callback originate failed", extra={"callback": callback_id, "error": str(exc)})
            ok = False
        now = self.clock()
        if ok:
            self.connected_at[agent_id] = now
            self._set(agent_id, lambda a: sm.answered(a, now), "callback answered", leg_uid)
            return
        self.legs.pop(agent_id, None)
        queue_cfg = queue
        self._set(agent_id, lambda a: sm.not_answered(a, now, queue_cfg), "callback not answered")
        await asyncio.to_thread(self.callbacks.attempt_finished, attempt, "agent_no_answer", now)

    async def callback_result(self, event: UserEvent) -> None:
        """The dialplan reports how the citizen's leg of a callback went (HotlineCallbackResult)."""
        fields = event.fields
        try:
            attempt = int(fields.get("Attempt", ""))
        except ValueError:
            return
        status = fields.get("DialStatus", "")
        result = {"ANSWER": "reached", "BUSY": "citizen_busy", "NOANSWER": "citizen_no_answer"}.get(status, "failed")
        await asyncio.to_thread(
            self.callbacks.attempt_finished, attempt, result, self.clock(), fields.get("Citizen") or None
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _call_ended(agent: Agent, *, now: datetime, queue: QueueConfig) -> Agent:
    return sm.call_ended(agent, now, queue)


def _at(change: Callable[[Agent, datetime], Agent], now: datetime, agent: Agent) -> Agent:
    return change(agent, now)

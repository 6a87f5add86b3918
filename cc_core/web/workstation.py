"""The agent workstation and the supervisor wallboard over the web (issue 6 items 3 and 4; T1,
T3, T4, T9, T10).

The handlers are thin: each acts through :class:`~cc_core.acd.service.Acd` and
:class:`~cc_core.acd.callcontrol.CallControl`, the same objects the phone side and ``hotline
agent`` use, so the web can do nothing the controller would not allow (a refusal is a 409 with
the controller's reason). The agent's actions are the table of :mod:`cc_core.web.agent_actions`,
which the control site (``hotline agent …``) serves too: the same names, bodies and refusals.
The agent acted on is always the session's own (``users.agent_id``), never one named in the
request; supervisors act on others by id, with their own routes and roles.

What the pages show is built by :class:`Views` (``GET /api/agent``, ``GET /api/wallboard``) and
pushed by :mod:`cc_core.web.live` over the WebSocket when it changes. Callers' numbers are shown
whole to the agent who serves them (they need them) and masked on the wallboard.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

from cc_core.acd.callcontrol import CallControl
from cc_core.acd.model import Agent, AgentState
from cc_core.acd.service import Acd, AgentError
from cc_core.acd.store import AgentStore
from cc_core.calendars.days import local_day as beijing_day
from cc_core.calendars.days import local_day_bounds as beijing_day_bounds
from cc_core.calls.callbacks import CallbackStore
from cc_core.calls.store import CallStore
from cc_core.ivr.flow import Flow
from cc_core.ivr.labels import path_labels
from cc_core.logs import mask_personal_data
from cc_core.web import agent_actions
from cc_core.web.security import current, json_error, read_json, requires

MAX_BODY = 16 * 1024
# The wallboard's day figures come from the database; several supervisors and the WebSocket
# share one answer for this long, unless what the wallboard shows from memory changed meanwhile.
FIGURES_TTL_S = 2.0


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _ivr_path(steps: Sequence[tuple[datetime, str, str, str]], flows: Mapping[str, Flow]) -> list[dict[str, Any]]:
    """The call's IVR path for the pop-up: each step with the words an agent reads (``label``:
    what the caller chose, from the menus' prompts) beside its ids (shown on hover)."""
    labels = path_labels(flows, [(flow, node, kind) for _at, flow, node, kind in steps])
    return [
        {"at": _iso(at), "flow": flow, "node": node, "kind": kind, "label": label}
        for (at, flow, node, kind), label in zip(steps, labels, strict=True)
    ]


@dataclass
class Views:
    """Builds what the agent's screen and the wallboard show, from the ACD and the records."""

    acd: Acd
    control: CallControl
    calls: CallStore
    agent_store: AgentStore
    callbacks: CallbackStore
    queue_titles: dict[str, str] = field(default_factory=dict)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # The flows now served (FlowRegistry.snapshot): the pop-up labels the IVR path with the
    # words of the menus the caller chose from (cc_core/ivr/labels.py).
    flows: Callable[[], Mapping[str, Flow]] = lambda: {}
    _figures: tuple[float, tuple[Any, ...], dict[str, Any]] | None = None

    # ---- the agent ----------------------------------------------------------------------------

    def _agent_json(self, agent: Agent, now: datetime) -> dict[str, Any]:
        return {
            "id": agent.id,
            "name": agent.name,
            "state": agent.state.value,
            "since": _iso(agent.state_since),
            "time_in_state_s": round(max(0.0, (now - agent.state_since).total_seconds()), 1),
            "extension": self.acd.extension.get(agent.id),
            "pause_reason": agent.pause_reason,
            "wrapup_until": _iso(agent.wrapup_until),
            "reachable": agent.device_reachable,
        }

    def agent_key(self, agent_id: str) -> tuple[Any, ...]:
        """What the agent's screen depends on in memory (a change means: send it again)."""
        agent = self.acd.agents.get(agent_id)
        if agent is None:
            return ()
        leg = self.acd.legs.get(agent_id)
        call = leg.call if leg is not None else None
        return (
            agent.state,
            agent.state_since,
            agent.wrapup_until,
            agent.pause_reason,
            self.acd.extension.get(agent_id),
            call,
            json.dumps(self.control.room_state(call), sort_keys=True) if call else None,
        )

    def agent_view(self, agent_id: str) -> dict[str, Any]:
        """``GET /api/agent`` (runs in a worker thread: it reads the database)."""
        now = self.clock()
        agent = self.acd.agents.get(agent_id)
        if agent is None:
            raise AgentError(f"unknown agent {agent_id}")
        leg = self.acd.legs.get(agent_id)
        call: dict[str, Any] | None = None
        if leg is not None and agent.state in (AgentState.RINGING, AgentState.ON_CALL):
            call = self._call_json(leg.call, agent.state is AgentState.RINGING)
        wrapup: dict[str, Any] | None = None
        last = self.acd.last_call(agent_id)
        if agent.state is AgentState.WRAP_UP and last is not None:
            record = self.calls.get(last)
            wrapup = {
                "call": last,
                "number": record.caller_number if record else None,
                "until": _iso(agent.wrapup_until),
                "summary": record.summary if record else None,
                "extended": agent.wrapup_extended,
            }
        start, _end = beijing_day_bounds(beijing_day(now))
        figures = self.calls.day_figures(beijing_day(now), agent_id)
        states = self.agent_store.time_in_states(agent_id, start, now)
        return {
            "agent": self._agent_json(agent, now),
            "call": call,
            "wrapup": wrapup,
            "callbacks": [
                {
                    "id": c.id,
                    "number": c.number,
                    "reason": c.reason,
                    "status": c.status,
                    "attempts": c.attempts,
                    "created_at": _iso(c.created_at),
                    "next_attempt_at": _iso(c.next_attempt_at),
                }
                for c in self.callbacks.active(limit=30)
            ],
            "figures": {
                "answered": figures.answered,
                "talk_s_avg": figures.avg_talk_s,
                "survey_avg": figures.survey_avg,
                "survey_count": figures.survey_count,
                "satisfied_rate": figures.satisfied_rate,
                "paused_s": round(states.get(AgentState.PAUSED.value, 0.0), 1),
                "on_call_s": round(states.get(AgentState.ON_CALL.value, 0.0), 1),
            },
            "server_time": now.isoformat(),
        }

    def _call_json(self, uniqueid: str, ringing: bool) -> dict[str, Any]:
        record = self.calls.get(uniqueid)
        waiter = self.acd.waiters.get(uniqueid)
        number = record.caller_number if record else (waiter.number if waiter else "")
        callback = _callback_id(uniqueid)
        if not number and callback is not None:  # a callback: the agent is rung first
            found = self.callbacks.get(callback)
            number = found.number if found is not None else ""
        return {
            "uniqueid": uniqueid,
            "number": number,
            "queue": (record.queue if record else None) or (waiter.contact.queue if waiter else None),
            "arrived_at": _iso(record.arrived_at) if record else None,
            "connected_at": _iso(record.connected_at) if record else None,
            "ringing": ringing,
            "ivr_path": _ivr_path(self.calls.ivr_path(uniqueid), self.flows()),
            # Earlier contacts of this citizen on every channel, through their contact (issue 12
            # item 4): "uniqueid" is the call's, or the conversation's id for a chat.
            "history": [
                {
                    "channel": h.channel,
                    "uniqueid": h.ref,
                    "arrived_at": _iso(h.started_at),
                    "agent_id": h.agent_id,
                    "summary": h.summary,
                    "survey_score": h.survey_score,
                    "status": h.status,
                    "queue": h.queue,
                }
                for h in self.calls.contacts.history_of_call(uniqueid, number)
            ],
            "room": self.control.room_state(uniqueid),
            "callback": callback,
        }

    # ---- the wallboard ------------------------------------------------------------------------

    def wallboard_key(self) -> tuple[Any, ...]:
        acd = self.acd
        return (
            tuple((a.id, a.state, a.state_since, a.pause_reason) for a in acd.agents.values()),
            tuple(sorted((w.uniqueid, w.state, w.agent or "") for w in acd.waiters.values())),
        )

    def _day_figures(self, now: datetime) -> dict[str, Any]:
        """Today's figures (``answered`` counts calls going on: ``in_progress`` of them; the
        ``waiting`` are in a queue now). Read again when the agents or callers changed: a cached
        answer from before an agent took a call showed that call as neither answered nor
        anything else until the cache ran out (issue 11)."""
        day = beijing_day(now)
        key = (day, self.wallboard_key())
        cached = self._figures
        if cached is not None and cached[1] == key and time.monotonic() - cached[0] < FIGURES_TTL_S:
            return cached[2]
        stats = self.calls.day_stats(day)
        figures = self.calls.day_figures(day)
        result = {
            **{k: v for k, v in asdict(stats).items() if k != "day"},
            "day": day.isoformat(),
            "avg_wait_s": figures.avg_wait_s,
            "avg_talk_s": figures.avg_talk_s,
            "survey_avg": figures.survey_avg,
            "survey_count": figures.survey_count,
            "satisfied_rate": figures.satisfied_rate,
        }
        self._figures = (time.monotonic(), key, result)
        return result

    def wallboard(self) -> dict[str, Any]:
        """``GET /api/wallboard`` (runs in a worker thread: the day's figures read the database)."""
        now = self.clock()
        acd = self.acd
        queues: dict[str, dict[str, Any]] = {
            name: {"name": name, "title": self.queue_titles.get(name, name), "waiting": 0, "longest_wait_s": 0.0}
            for name in acd.queues
        }
        callers: dict[str, list[dict[str, Any]]] = {name: [] for name in acd.queues}
        for waiter in acd.waiters.values():
            if waiter.state in ("connected", "transferred"):
                continue
            name = waiter.contact.queue
            waited = round(max(0.0, (now - waiter.queued_at).total_seconds()), 1)
            entry = queues.setdefault(name, {"name": name, "title": name, "waiting": 0, "longest_wait_s": 0.0})
            entry["waiting"] += 1
            entry["longest_wait_s"] = max(entry["longest_wait_s"], waited)
            callers.setdefault(name, []).append(
                {
                    "caller": mask_personal_data(waiter.number),
                    "waited_s": waited,
                    "state": waiter.state,
                    "agent": waiter.agent,
                }
            )
        return {
            "queues": [
                {**q, "callers": sorted(callers.get(q["name"], []), key=lambda c: -c["waited_s"])}
                for q in queues.values()
            ],
            "agents": [self._agent_json(a, now) for a in sorted(acd.agents.values(), key=lambda a: a.id)],
            "today": self._day_figures(now),
            "server_time": now.isoformat(),
        }


def _callback_id(leg_uid: str) -> int | None:
    """The callback a callback's agent leg belongs to (``cb-<id>-<random>``, Acd._place)."""
    parts = leg_uid.split("-")
    if len(parts) == 3 and parts[0] == "cb" and parts[1].isdigit():
        return int(parts[1])
    return None


VIEWS_KEY = web.AppKey("views", Views)


async def body(request: web.Request) -> dict[str, Any]:
    """A request's JSON object (400 otherwise; 413 over :data:`MAX_BODY`)."""
    return await read_json(request, MAX_BODY)


def _my_agent(request: web.Request) -> str:
    view = current(request)
    assert view is not None
    if not view.user.agent_id or view.user.agent_id not in request.app[VIEWS_KEY].acd.agents:
        raise web.HTTPConflict(
            text=dumps(
                {"error": "此账号未关联坐席 (this account is not linked to an agent: hotline user add --agent)"}
            ),
            content_type="application/json",
        )
    return view.user.agent_id


def _ok(**extra: Any) -> web.Response:
    return web.json_response({"ok": True, **extra}, dumps=dumps)


@requires("agent")
async def agent_state(request: web.Request) -> web.Response:
    """The agent's own screen: state, the call on it (number, IVR path, history), wrap-up,
    callbacks and today's figures."""
    agent_id = _my_agent(request)
    views = request.app[VIEWS_KEY]
    return web.json_response(await asyncio.to_thread(views.agent_view, agent_id), dumps=dumps)


@requires("agent")
async def agent_action(request: web.Request) -> web.Response:
    """Log in or out, pause with a reason, resume, open or close a chat, save the summary
    (cc_core/web/agent_actions.py: the table the control site serves too)."""
    return await _agent_do(request, "", request.match_info["action"])


@requires("agent")
async def wrapup_action(request: web.Request) -> web.Response:
    """Finish the wrap-up now, or extend it once (``{"seconds"}``, default 60)."""
    return await _agent_do(request, "wrapup", request.match_info["action"])


@requires("agent")
async def call_action(request: web.Request) -> web.Response:
    """Act on the call the agent is on: hold, transfers, consultation, three-way, hang up (T3)."""
    return await _agent_do(request, "call", request.match_info["action"])


@requires("agent")
async def call_back(request: web.Request) -> web.Response:
    """Call a citizen on the callback list back now: the agent's phone first, then the citizen."""
    return await _agent_do(request, "callbacks", "call", {"id": request.match_info["id"]})


async def _agent_do(request: web.Request, group: str, verb: str, path: dict[str, str] | None = None) -> web.Response:
    """One agent action of the table, on the session's own agent (never one the request names)."""
    agent_id = _my_agent(request)
    views = request.app[VIEWS_KEY]
    data = await body(request)
    try:
        done = await agent_actions.dispatch(
            views.acd, views.control, agent_id, group, verb, data, path, workstation=True
        )
    except agent_actions.ActionRefused as exc:
        return json_error(exc.status, exc.message)
    return _ok(**(done.extra or {}))


@requires("supervisor", "admin")
async def wallboard(request: web.Request) -> web.Response:
    """Queues, agents by state and today's figures (the same data the WebSocket pushes)."""
    return web.json_response(await asyncio.to_thread(request.app[VIEWS_KEY].wallboard), dumps=dumps)


@requires("supervisor", "admin")
async def supervise(request: web.Request) -> web.Response:
    """A supervisor pauses (with a reason) or logs out an agent."""
    acd = request.app[VIEWS_KEY].acd
    agent_id = request.match_info["agent"]
    if agent_id not in acd.agents:
        return json_error(404, f"没有这个坐席 (no agent {agent_id})")
    data = await body(request)
    view = current(request)
    assert view is not None
    try:
        match request.match_info["action"]:
            case "pause":
                try:  # the same check as the agent's own pause (agent_actions: one reason field)
                    reason = agent_actions.ACTIONS["pause"].validate(data)["reason"]
                except agent_actions.ActionRefused as exc:
                    return json_error(exc.status, exc.message)
                await acd.pause(agent_id, f"{reason}（{view.user.username}）")
            case "logout":
                await acd.logout(agent_id)
            case other:
                return json_error(404, f"unknown action {other}")
    except AgentError as exc:
        return json_error(409, str(exc))
    return _ok()


def add_workstation_routes(app: web.Application, views: Views) -> None:
    app[VIEWS_KEY] = views
    app.router.add_get("/api/agent", agent_state)
    app.router.add_post("/api/agent/call/{action}", call_action)
    app.router.add_post("/api/agent/callbacks/{id}/call", call_back)
    app.router.add_post("/api/agent/wrapup/{action}", wrapup_action)
    app.router.add_post("/api/agent/{action}", agent_action)
    app.router.add_get("/api/wallboard", wallboard)
    app.router.add_post("/api/supervisor/agents/{agent}/{action}", supervise)

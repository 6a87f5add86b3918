"""The controller's command endpoint on loopback: agents' log-in, pause, wrap-up, and control of
the call they are on (issue 4 items 1 and 6; T3, T4), and the whole health report.

It is served on a site of its own, ``127.0.0.1:[controller] control_port``, never on the web
port the agents' LAN reaches (issue 11 item 8c): :func:`make_control_site`.

``hotline agent …`` talks to it; the web workstation (cc_core/web/workstation.py) serves the same
agent actions behind personal logins: both dispatch through the one table of
:mod:`cc_core.web.agent_actions` (the same names, bodies and refusals; issue 12 item 7), under
``agents/{agent}/…`` here and ``/api/agent/…`` there. Every request here carries
the installation's control token (``var/secrets.json``, mode 0600) as a bearer token, compared in
constant time; without it the answer is 401 and nothing is done (P2). Refusals come back as 409
with the controller's reason (a summary of a call the agent did not serve: 403); bad requests as
400 with one Chinese-then-English line; an unknown action as 404.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cc_core.acd.callcontrol import CallControl
from cc_core.acd.model import Agent
from cc_core.acd.service import Acd
from cc_core.web import agent_actions
from cc_core.web.health import HEALTH_KEY, HealthHolder, HealthSource, health_full
from cc_core.web.security import json_error, read_json

TOKEN_KEY = web.AppKey("control_token", str)
ACD_KEY = web.AppKey("acd", Acd)
CALLS_KEY = web.AppKey("call_control", CallControl)
MAX_BODY = 16 * 1024


def _agent_json(agent: Agent, acd: Acd) -> dict[str, Any]:
    return {
        "id": agent.id,
        "state": agent.state.value,
        "since": agent.state_since.isoformat(),
        "extension": acd.extension.get(agent.id),
        "pause_reason": agent.pause_reason,
        "wrapup_until": agent.wrapup_until.isoformat() if agent.wrapup_until else None,
    }


@web.middleware
async def _auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    given = request.headers.get("Authorization", "")
    expected = "Bearer " + request.app[TOKEN_KEY]
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return web.json_response({"error": "未授权 (missing or wrong control token)"}, status=401)
    return await handler(request)


async def _act(request: web.Request, group: str, verb: str, path: dict[str, str] | None = None) -> web.Response:
    """One agent action of the table (cc_core/web/agent_actions.py, the one the workstation
    serves), for the agent named in the path; after a change of state the answer carries the
    agent's state (``hotline agent`` prints it), after a call action the call's id."""
    acd = request.app[ACD_KEY]
    agent_id = request.match_info["agent"]
    data = await read_json(request, MAX_BODY)
    try:
        done = await agent_actions.dispatch(acd, request.app[CALLS_KEY], agent_id, group, verb, data, path)
    except agent_actions.ActionRefused as exc:
        return json_error(exc.status, exc.message)
    answer: dict[str, Any] = {"ok": True, **(done.extra or {})}
    if done.agent is not None:
        answer["agent"] = _agent_json(done.agent, acd)
    return web.json_response(answer, dumps=lambda v: json.dumps(v, ensure_ascii=False))


async def agent_action(request: web.Request) -> web.Response:
    """Log in or out, pause, resume, open or close a chat, save the summary."""
    return await _act(request, "", request.match_info["action"])


async def wrapup_action(request: web.Request) -> web.Response:
    """Finish the wrap-up now, or extend it once."""
    return await _act(request, "wrapup", request.match_info["action"])


async def call_action(request: web.Request) -> web.Response:
    """Call control on the agent's current call (T3): hold, transfers, consultation, three-way."""
    return await _act(request, "call", request.match_info["action"])


async def call_back(request: web.Request) -> web.Response:
    """Call a citizen on the callback list back now (the agent's phone first)."""
    return await _act(request, "callbacks", "call", {"id": request.match_info["id"]})


async def acd_status(request: web.Request) -> web.Response:
    return web.json_response(request.app[ACD_KEY].snapshot())


def make_control_app(acd: Acd, calls: CallControl, token: str, health: HealthSource | None = None) -> web.Application:
    """The sub-application mounted at ``/api/control`` (every route behind the token); with
    ``health``, the whole health report at ``/api/control/health``."""
    app = web.Application(middlewares=[_auth], client_max_size=MAX_BODY)
    app[TOKEN_KEY] = token
    app[ACD_KEY] = acd
    app[CALLS_KEY] = calls
    app.router.add_post("/agents/{agent}/call/{action}", call_action)
    app.router.add_post("/agents/{agent}/wrapup/{action}", wrapup_action)
    app.router.add_post("/agents/{agent}/callbacks/{id}/call", call_back)
    app.router.add_post("/agents/{agent}/{action}", agent_action)
    app.router.add_get("/acd", acd_status)
    if health is not None:
        app[HEALTH_KEY] = HealthHolder(health)
        app.router.add_get("/health", health_full)
    return app


def make_control_site(acd: Acd, calls: CallControl, token: str, health: HealthSource) -> web.Application:
    """The loopback-only site's application: ``/api/control/…`` and nothing else."""
    site = web.Application(client_max_size=MAX_BODY)
    site.add_subapp("/api/control/", make_control_app(acd, calls, token, health))
    return site

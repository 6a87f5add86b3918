"""The controller's command endpoint on loopback: agents' log-in, pause, wrap-up, and control of
the call they are on (issue 4 items 1 and 6; T3, T4), and the whole health report.

It is served on a site of its own, ``127.0.0.1:[controller] control_port``, never on the web
port the agents' LAN reaches (issue 11 item 8c): :func:`make_control_site`.

``hotline agent …`` talks to it; the web workstation (cc_core/web/workstation.py) calls the same
:class:`~cc_core.acd.service.Acd` methods behind personal logins. Every request here carries
the installation's control token (``var/secrets.json``, mode 0600) as a bearer token, compared in
constant time; without it the answer is 401 and nothing is done (P2). Refusals come back as 409
with one Chinese-and-English line; bad requests as 400.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cc_core.acd.callcontrol import CallControl
from cc_core.acd.model import Agent
from cc_core.acd.service import Acd, AgentError
from cc_core.web.health import HEALTH_KEY, HealthHolder, HealthSource, health_full

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


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=len(raw))
    if not raw:
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"请求不是 JSON (not JSON: {exc})"}), content_type="application/json"
        ) from exc
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "请求须为 JSON 对象 (a JSON object)"}), content_type="application/json"
        )
    return data


def _text(data: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"缺少 {key} (missing {key})"}), content_type="application/json"
        )
    return value


async def agent_action(request: web.Request) -> web.Response:
    acd = request.app[ACD_KEY]
    agent_id = request.match_info["agent"]
    action = request.match_info["action"]
    data = await _body(request)
    try:
        match action:
            case "login":
                agent = await acd.login(agent_id, _text(data, "extension", required=False))
            case "logout":
                agent = await acd.logout(agent_id)
            case "pause":
                agent = await acd.pause(agent_id, _text(data, "reason") or "")
            case "resume":
                agent = await acd.resume(agent_id)
            case "chat-start":
                agent = await acd.chat_started(agent_id)
            case "chat-end":
                agent = await acd.chat_ended(agent_id)
            case "wrapup-done":
                agent = await acd.end_wrapup(agent_id)
            case "wrapup-more":
                seconds = data.get("seconds", 60)
                if not isinstance(seconds, int) or not 1 <= seconds <= 600:
                    raise web.HTTPBadRequest(
                        text=json.dumps({"error": "seconds 须为 1–600 的整数 (an integer 1–600)"}),
                        content_type="application/json",
                    )
                agent = await acd.extend_wrapup(agent_id, seconds)
            case "summary":
                call = await acd.summary(agent_id, _text(data, "text") or "", _text(data, "call", required=False))
                return web.json_response({"ok": True, "call": call})
            case _:
                raise web.HTTPNotFound(
                    text=json.dumps({"error": f"unknown action {action}"}), content_type="application/json"
                )
    except AgentError as exc:
        return web.json_response({"error": str(exc)}, status=409)
    return web.json_response({"ok": True, "agent": _agent_json(agent, acd)})


async def call_action(request: web.Request) -> web.Response:
    """Call control on the agent's current call (T3): hold, transfers, consultation, three-way."""
    control = request.app[CALLS_KEY]
    agent_id = request.match_info["agent"]
    action = request.match_info["action"]
    data = await _body(request)
    try:
        call = await control.perform(agent_id, action, data.get("to") if isinstance(data.get("to"), str) else None)
    except KeyError:
        raise web.HTTPNotFound(
            text=json.dumps({"error": f"unknown call action {action}"}), content_type="application/json"
        ) from None
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "缺少 to (missing to)"}), content_type="application/json"
        ) from None
    except AgentError as exc:
        return web.json_response({"error": str(exc)}, status=409)
    return web.json_response({"ok": True, "call": call})


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

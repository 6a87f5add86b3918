"""The OpenAPI 3.1 description of the web API, built from the routes themselves (issue 6 item 1),
with what each one takes and answers (issue 11 item 10).

Every ``/api`` route's method, path parameters, summary (its handler's docstring) and the roles
:func:`~cc_core.web.security.requires` lets through (``x-roles``) are read from the running
application, so the document cannot drift from the code. What each operation takes (path
parameters' patterns, query parameters, the JSON or multipart body) and every status it may
answer with, with the body's schema, come from :data:`OPERATIONS` below: the fuzzer
(tests/web/test_fuzz_api.py, schemathesis) sends what this document allows, and what it does
not, to every route with a session of each role, and fails on any 5xx and on any answer — status,
content type or body — that the document does not list. ``docs/web-api.md`` has the same shapes
in prose, and the role table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from cc_core import __version__
from cc_core.web import agent_actions

_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
JSON = "application/json"
TEXT = "text/plain"

Schema = dict[str, Any]
# A status's description, and its body's schema by media type (None: no body).
Answer = tuple[str, Mapping[str, Schema] | None]


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
N_STR, N_INT, N_NUM = _nullable(STR), _nullable(INT), _nullable(NUM)


def obj(required: dict[str, Schema] | None = None, optional: dict[str, Schema] | None = None) -> Schema:
    """A JSON object with these keys (``required`` always there; more keys are allowed)."""
    props = {**(required or {}), **(optional or {})}
    schema: Schema = {"type": "object", "properties": props}
    if required:
        schema["required"] = sorted(required)
    return schema


def body_of(required: dict[str, Schema] | None = None, optional: dict[str, Schema] | None = None) -> Schema:
    """A request body: exactly these keys (an unknown one is a mistake the server may refuse)."""
    return {**obj(required, optional), "additionalProperties": False}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


ERROR = obj({"error": STR})
OK = obj({"ok": {"const": True}})
SESSION = obj(
    {
        "user": obj({"username": STR, "name": STR, "role": STR, "agent_id": N_STR}),
        "csrf_token": STR,
        "expires_at": STR,
    }
)
AGENT_ROW = obj(
    {"id": STR, "name": STR, "state": STR, "since": N_STR, "time_in_state_s": NUM, "pause_reason": N_STR},
    {"extension": N_STR, "wrapup_until": N_STR, "reachable": BOOL},
)
AGENT_VIEW = obj(
    {
        "agent": AGENT_ROW,
        "call": _nullable(obj({"uniqueid": STR, "number": STR, "ringing": BOOL, "ivr_path": array(obj())})),
        "wrapup": _nullable(obj({"call": STR, "extended": BOOL})),
        "callbacks": array(obj({"id": INT, "number": STR, "status": STR, "attempts": INT})),
        "figures": obj({"answered": INT}),
        "server_time": STR,
    }
)
WALLBOARD = obj(
    {
        "queues": array(obj({"name": STR, "waiting": INT, "longest_wait_s": NUM, "callers": array(obj())})),
        "agents": array(AGENT_ROW),
        "today": obj(),
        "server_time": STR,
    }
)
RECORDING_HIT = obj(
    {"id": INT, "uniqueid": STR, "leg": STR, "agent_id": N_STR, "started_at": STR, "duration_s": N_NUM},
    {"caller_number": N_STR, "queue": N_STR, "survey_score": N_INT, "summary": N_STR},
)
RECORDING = obj(
    {"id": INT, "uniqueid": STR, "leg": STR, "status": STR, "started_at": STR},
    {"hold_at": N_STR, "hold_by": N_STR, "hold_reason": N_STR, "purged_at": N_STR, "state": N_STR},
)
HOLD = obj({"recording_id": INT, "held": BOOL, "at": N_STR, "by": N_STR, "reason": N_STR, "purged_at": N_STR})
AUDIT_ENTRY = obj(
    {"id": INT, "at": STR, "actor": STR, "role": STR, "action": STR, "target": STR, "ip": STR, "allowed": BOOL}
)
PROBLEM = obj({"file": STR, "line": INT, "message": STR})
CHECKED = obj({"ok": BOOL, "problems": array(PROBLEM), "warnings": array(STR)})
REFUSED_FILE = obj({"error": STR, "problems": array(PROBLEM)})
YAML_FILE = obj({"name": STR, "file": STR, "yaml": STR})
SIP_ACCOUNT = obj({"agent": STR, "username": STR, "password": STR, "sip_port": INT})

AUDIO: dict[str, Schema] = {"audio/wav": STR, "audio/ogg": STR, "application/octet-stream": STR}
FLOW_NAME: Schema = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"}
AGENT_ID: Schema = {"type": "string", "pattern": "^[0-9]{3,6}$"}
RECORD_ID: Schema = {"type": "string", "pattern": "^[0-9]{1,9}$"}
AGENT_FIELDS: dict[str, Schema] = {
    "name": STR,
    "skills": {"type": "object", "additionalProperties": INT},
    "team": STR,
    "tags": array(STR),
    "queues": array(STR),
    "chat_capacity": INT,
}
QUEUE_FIELDS: dict[str, Schema] = {
    "title": STR,
    "strategy": STR,
    "ring_timeout": NUM,
    "wrapup": NUM,
    "max_missed_before_pause": INT,
    "max_wait": NUM,
    "returning_window_hours": NUM,
    "returning_wait": NUM,
    "requested_wait": NUM,
    "announce_every": NUM,
    "priority_tags": array(STR),
}
FILTERS = ("from", "to", "caller", "agent", "queue", "min_duration", "max_duration", "score", "ivr_node")


@dataclass(frozen=True)
class Operation:
    """What one route takes and answers, beyond what the route itself tells."""

    responses: Mapping[str, Answer]
    path: dict[str, Schema] = field(default_factory=dict)
    query: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    body: Schema | None = None  # JSON
    multipart: Schema | None = None


def _json(description: str, schema: Schema = ERROR) -> Answer:
    return description, {JSON: schema}


BAD = _json("请求有误 (bad request: the error says which field)")
CONFLICT = _json("当前状态不允许 (the state does not allow it; the reason in error)")
NOT_FOUND = _json("没有这个对象 (no such thing)")
TOO_LARGE = ("请求体过大 (body too large)", {TEXT: STR, JSON: ERROR})
SWITCH_DOWN = _json("交换机未能更新 (the switch did not take the change)")
# aiohttp's own answer when a path parameter holds a ``/`` or the like: no route matches.
NO_ROUTE = ("没有这个地址 (no such path)", {TEXT: STR, JSON: ERROR})


def _agent_action(body: Schema, actions: list[str]) -> Operation:
    return Operation(
        {"200": _json("已完成 (done)", OK), "400": BAD, "404": NOT_FOUND, "409": CONFLICT, "413": TOO_LARGE},
        path={"action": {"type": "string", "enum": actions}},
        body=body,
    )


YAML_PUT: dict[str, Answer] = {
    "200": _json("已写入并重新加载 (written and reloaded)", obj({"ok": BOOL, "name": STR})),
    "400": BAD,
    "404": NO_ROUTE,
    "413": TOO_LARGE,
    "415": _json("不是 UTF-8 文本 (not UTF-8 text)"),
    "422": _json("有错误，未写入 (problems; nothing was written)", REFUSED_FILE),
}

# (method, path as routed) → what it takes and answers. Routes not listed here get the bare
# minimum (200 and the role refusals), and the fuzz test fails on them.
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("POST", "/api/login"): Operation(
        {
            "200": _json("已登录 (logged in; the session cookie is set)", SESSION),
            "400": BAD,
            "401": _json("用户名或密码错误 (wrong user name or password)"),
            "415": _json("须为 application/json (JSON only)"),
            "429": _json("失败次数过多 (too many failures; Retry-After)"),
            "503": _json("登录繁忙 (too many logins at once; Retry-After)"),
        },
        body={**body_of({"username": {**STR, "maxLength": 64}, "password": {**STR, "maxLength": 256}})},
    ),
    ("POST", "/api/logout"): Operation({"200": _json("已退出 (logged out)", OK)}),
    ("GET", "/api/openapi.json"): Operation(
        {"200": _json("本文档 (this document)", obj({"openapi": STR, "paths": obj()}))}
    ),
    ("GET", "/api/session"): Operation({"200": _json("当前登录 (the session)", SESSION)}),
    ("GET", "/api/ws"): Operation(
        {
            "101": ("实时更新 (the WebSocket of live updates)", None),
            "400": ("不是 WebSocket 握手 (not a WebSocket upgrade)", {TEXT: STR, JSON: ERROR}),
            "409": _json("账号未关联坐席 (the account is not linked to an agent)"),
        }
    ),
    ("GET", "/api/agent"): Operation({"200": _json("坐席工作台 (the agent's screen)", AGENT_VIEW), "409": CONFLICT}),
    # The agent actions' verbs and bodies are read from their one table (issue 12 item 7).
    ("POST", "/api/agent/{action}"): _agent_action(agent_actions.body_schema(""), agent_actions.verbs("")),
    ("POST", "/api/agent/call/{action}"): _agent_action(agent_actions.body_schema("call"), agent_actions.verbs("call")),
    ("POST", "/api/agent/callbacks/{id}/call"): Operation(
        {"200": _json("已开始回拨 (the callback is placed)", OK), "400": BAD, "404": NO_ROUTE, "409": CONFLICT},
        path={"id": RECORD_ID},
    ),
    ("POST", "/api/agent/wrapup/{action}"): _agent_action(
        agent_actions.body_schema("wrapup"), agent_actions.verbs("wrapup")
    ),
    ("GET", "/api/wallboard"): Operation({"200": _json("班长看板 (the wallboard)", WALLBOARD)}),
    ("POST", "/api/supervisor/agents/{agent}/{action}"): Operation(
        {"200": _json("已完成 (done)", OK), "400": BAD, "404": NOT_FOUND, "409": CONFLICT, "413": TOO_LARGE},
        path={"agent": AGENT_ID, "action": {"type": "string", "enum": ["pause", "logout"]}},
        body=body_of(optional={"reason": {**STR, "maxLength": 64}}),
    ),
    ("GET", "/api/recordings"): Operation(
        {"200": _json("检索结果 (recordings found)", obj({"recordings": array(RECORDING_HIT)})), "400": BAD},
        query=(*FILTERS, "limit", "offset"),
    ),
    ("GET", "/api/recordings/{id}"): Operation(
        {"200": _json("录音 (one recording)", RECORDING), "404": NOT_FOUND}, path={"id": RECORD_ID}
    ),
    ("GET", "/api/recordings/{id}/audio"): Operation(
        {
            "200": ("录音音频 (the audio)", AUDIO),
            "206": ("所请求的一段 (the range asked for)", AUDIO),
            "404": NOT_FOUND,
            "410": _json("已按保存期限清除 (purged)"),
            # aiohttp's file answer keeps the file's type on a 416 (with no body).
            "416": ("范围无效 (range not satisfiable)", {**AUDIO, TEXT: STR, JSON: ERROR}),
            "503": _json("审计日志不可写，不播放 (the audit log cannot be written: no audio)"),
        },
        path={"id": RECORD_ID},
        headers=("Range",),
    ),
    ("GET", "/api/recordings/{id}/download"): Operation(
        {
            "200": ("录音文件 (the file, as an attachment)", AUDIO),
            "404": NOT_FOUND,
            "410": _json("已按保存期限清除 (purged)"),
            "503": _json("审计日志不可写 (the audit log cannot be written: no file)"),
        },
        path={"id": RECORD_ID},
    ),
    ("POST", "/api/recordings/{id}/hold"): Operation(
        {"200": _json("已保全 (held)", HOLD), "400": BAD, "404": NOT_FOUND, "409": CONFLICT},
        path={"id": RECORD_ID},
        body=body_of({"reason": STR}),
    ),
    ("DELETE", "/api/recordings/{id}/hold"): Operation(
        {"200": _json("已解除保全 (hold cleared)", HOLD), "400": BAD, "404": NOT_FOUND, "409": CONFLICT},
        path={"id": RECORD_ID},
        body=body_of({"reason": STR}),
    ),
    ("GET", "/api/audit"): Operation(
        {"200": _json("审计日志 (the audit log)", obj({"entries": array(AUDIT_ENTRY)})), "400": BAD},
        query=("from", "to", "actor", "action", "target", "limit"),
    ),
    ("GET", "/api/admin/flows"): Operation(
        {"200": _json("流程文件 (the flow files)", obj({"flows": array(obj({"name": STR, "file": STR}))}))}
    ),
    ("POST", "/api/admin/flows/validate"): Operation(
        {"200": _json("检查结果 (problems and warnings)", CHECKED), "400": BAD, "413": TOO_LARGE},
        body=body_of({"name": FLOW_NAME, "yaml": STR}),
    ),
    ("POST", "/api/admin/flows/upload"): Operation(
        {**YAML_PUT, "404": NOT_FOUND},
        multipart=obj({"file": {"type": "string", "format": "binary"}}),
    ),
    ("GET", "/api/admin/flows/{name}"): Operation(
        {"200": _json("流程文本 (the flow's YAML)", YAML_FILE), "400": BAD, "404": NOT_FOUND},
        path={"name": FLOW_NAME},
    ),
    ("PUT", "/api/admin/flows/{name}"): Operation(YAML_PUT, path={"name": FLOW_NAME}, body=body_of({"yaml": STR})),
    ("GET", "/api/admin/flows/{name}/graph"): Operation(
        {"200": ("流程图 (the flow's graph)", {"image/svg+xml": STR}), "400": BAD, "404": NOT_FOUND},
        path={"name": FLOW_NAME},
    ),
    ("GET", "/api/admin/calendars"): Operation(
        {
            "200": _json(
                "日历文件 (the calendars)", obj({"calendars": array(obj({"name": STR})), "warnings": array(STR)})
            )
        }
    ),
    ("POST", "/api/admin/calendars/validate"): Operation(
        {"200": _json("检查结果 (problems and warnings)", CHECKED), "400": BAD, "413": TOO_LARGE},
        body=body_of({"name": FLOW_NAME, "yaml": STR}),
    ),
    ("GET", "/api/admin/calendars/{name}"): Operation(
        {"200": _json("日历文本 (the calendar's YAML)", YAML_FILE), "400": BAD, "404": NOT_FOUND},
        path={"name": FLOW_NAME},
    ),
    ("PUT", "/api/admin/calendars/{name}"): Operation(YAML_PUT, path={"name": FLOW_NAME}, body=body_of({"yaml": STR})),
    ("GET", "/api/admin/agents"): Operation(
        {"200": _json("坐席 (the configured agents)", obj({"agents": array(obj({"id": STR, "name": STR}))}))}
    ),
    ("POST", "/api/admin/agents"): Operation(
        {
            "201": _json("已添加；SIP 密码只显示这一次 (added; the SIP password, shown once)", SIP_ACCOUNT),
            "400": BAD,
            "409": CONFLICT,
            "413": TOO_LARGE,
            "503": SWITCH_DOWN,
        },
        body=body_of({"id": AGENT_ID}, AGENT_FIELDS),
    ),
    ("PUT", "/api/admin/agents/{agent}"): Operation(
        {
            "200": _json("已保存 (saved)", obj({"ok": BOOL, "agent": STR})),
            "400": BAD,
            "409": CONFLICT,
            "413": TOO_LARGE,
            "503": SWITCH_DOWN,
        },
        path={"agent": AGENT_ID},
        body=body_of(optional=AGENT_FIELDS),
    ),
    ("DELETE", "/api/admin/agents/{agent}"): Operation(
        {"200": _json("已删除 (removed)", obj({"ok": BOOL, "agent": STR})), "409": CONFLICT, "503": SWITCH_DOWN},
        path={"agent": AGENT_ID},
    ),
    ("POST", "/api/admin/agents/{agent}/sip-password"): Operation(
        {
            "200": _json("新的 SIP 密码，只显示这一次 (the new SIP password, shown once)", SIP_ACCOUNT),
            "404": NOT_FOUND,
            "503": SWITCH_DOWN,
        },
        path={"agent": AGENT_ID},
    ),
    ("GET", "/api/admin/queues"): Operation(
        {"200": _json("队列 (the configured queues)", obj({"queues": array(obj({"name": STR}))}))}
    ),
    ("PUT", "/api/admin/queues/{name}"): Operation(
        {
            "200": _json("已保存 (saved)", obj({"ok": BOOL, "queue": STR})),
            "400": BAD,
            "409": CONFLICT,
            "413": TOO_LARGE,
            "503": SWITCH_DOWN,
        },
        path={"name": FLOW_NAME},
        body=body_of(optional=QUEUE_FIELDS),
    ),
}


def _operation(method: str, path: str, handler: Any, index: int) -> dict[str, Any]:
    doc = (handler.__doc__ or "").strip()
    roles = list(getattr(handler, "roles", ()))
    spec = OPERATIONS.get((method, path), Operation({}))
    responses: dict[str, Any] = {"200": {"description": "成功 (OK)"}} if not spec.responses else {}
    for status, (description, media) in sorted(spec.responses.items()):
        responses[status] = {"description": description}
        if media is not None:
            responses[status]["content"] = {kind: {"schema": schema} for kind, schema in media.items()}
    operation: dict[str, Any] = {
        "summary": doc.splitlines()[0] if doc else method + " " + path,
        "operationId": f"{method.lower()}_{getattr(handler, '__name__', 'handler')}_{index}",
        "responses": responses,
    }
    if doc:
        operation["description"] = doc
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": spec.path.get(name, STR)}
        for name in _PARAM.findall(path)
    ]
    parameters += [{"name": name, "in": "query", "required": False, "schema": STR} for name in spec.query]
    parameters += [{"name": name, "in": "header", "required": False, "schema": STR} for name in spec.headers]
    if roles:
        operation["x-roles"] = roles
        operation["security"] = [{"session": []}]
        responses["401"] = _response("未登录或登录已过期 (no session)", obj({"error": STR, "expired": BOOL}))
        responses["403"] = _response("角色无权 (wrong role, or missing CSRF token)", ERROR)
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        parameters.append(
            {"name": "X-CSRF-Token", "in": "header", "required": bool(roles), "schema": {"type": "string"}}
        )
    if parameters:
        operation["parameters"] = parameters
    if spec.body is not None:
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": spec.body}}}
    elif spec.multipart is not None:
        operation["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": spec.multipart}}}
    return operation


def _response(description: str, schema: Schema) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def build_openapi(app: web.Application) -> dict[str, Any]:
    """The OpenAPI document of ``app``'s ``/api`` routes."""
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = str(info.get("formatter") or info.get("path") or "")
        if not path.startswith("/api") or route.method in ("HEAD", "*"):
            continue
        operation = _operation(route.method, path, route.handler, sum(len(ops) for ops in paths.values()))
        paths.setdefault(_PARAM.sub(r"{\1}", path), {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hotline 热线系统 API",
            "version": __version__,
            "description": "Sessions by cookie (POST /api/login); see docs/web-api.md.",
        },
        "components": {"securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": "hotline_session"}}},
        "paths": dict(sorted(paths.items())),
    }


async def openapi_json(request: web.Request) -> web.Response:
    """This document (no login needed: it describes the API, it holds no data)."""
    return web.json_response(build_openapi(request.app))


def add_openapi_route(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi_json)

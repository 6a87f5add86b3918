"""Admin pages' API: IVR flows (validate, publish, upload, graph) and the configured agents and
queues (issue 6 item 5; O-requirements on flows).

A flow an admin sends is validated exactly as a reload would: the candidate file is placed in a
scratch copy of ``ivr_flows/`` (the other flows, prompts and calendars linked, not copied) and the
whole folder is loaded, so a ``goto`` to another flow, a missing prompt or an unreachable node
is found with its line before anything is written. Only a flow without problems is written
(atomically: a temporary file renamed over the old one) and the controller reloads; calls in
progress keep the version they started with (the registry hands each call a snapshot).
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from cc_core.acd.roster import AGENT_FIELDS, QUEUE_FIELDS, RosterError, RosterInvalid
from cc_core.calendars import MAX_FILE_BYTES as MAX_CALENDAR_BYTES
from cc_core.calendars import CalendarError, load_calendar
from cc_core.errors import HotlineError
from cc_core.ivr.graph import GraphError, render_graph
from cc_core.ivr.loader import MAX_FILE_BYTES, load_flows
from cc_core.ivr.registry import FlowRegistry, calendar_warnings
from cc_core.settings import Settings
from cc_core.web.security import audit, json_error, read_json, requires
from cc_core.web.workstation import dumps

FLOW_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
UPLOAD_TYPES = (".yaml", ".yml")
# Parts of an upload looked at before the file field: a form has one or two.
MAX_UPLOAD_PARTS = 8


@dataclass
class FlowAdmin:
    """Where flows live and how the controller takes a new set."""

    folder: Path
    registry: FlowRegistry
    reload: Callable[[], Awaitable[None]]
    current_settings: Callable[[], Settings]
    new_sip_password: Callable[[str], Awaitable[str]]
    save_agent: Callable[[str, dict[str, Any], bool], Awaitable[str | None]]
    remove_agent: Callable[[str], Awaitable[None]]
    save_queue: Callable[[str, dict[str, Any]], Awaitable[None]]

    @property
    def settings(self) -> Settings:
        return self.current_settings()

    @property
    def calendars(self) -> Path:
        return self.folder / "calendars"

    def validate_calendar(self, name: str, data: bytes) -> tuple[list[dict[str, Any]], list[str]]:
        """Problems (with line) and warnings (years without holidays) of a calendar's new text."""
        with tempfile.TemporaryDirectory(prefix="hotline-calendar-check-") as scratch:
            path = Path(scratch) / f"{name}.yaml"
            path.write_bytes(data)
            try:
                calendar = load_calendar(path)
            except CalendarError as exc:
                return [{"file": path.name, "line": exc.line or 1, "message": exc.message}], []
        return [], calendar_warnings({name: calendar}, self.registry.today())

    def write_calendar(self, name: str, data: bytes) -> Path:
        self.calendars.mkdir(parents=True, exist_ok=True)
        return _atomic_write(self.calendars / f"{name}.yaml", data)

    def validate(self, name: str, data: bytes) -> tuple[list[dict[str, Any]], list[str]]:
        """Problems (file, line, message) and warnings the flow ``name`` with content ``data``
        would have in this folder; no problems means it can be published (blocking)."""
        with tempfile.TemporaryDirectory(prefix="hotline-flow-check-") as scratch:
            root = Path(scratch)
            for item in self.folder.iterdir():
                if item.name in (f"{name}.yaml", f"{name}.yml") or item.name.startswith("."):
                    continue
                (root / item.name).symlink_to(item.resolve())
            (root / f"{name}.yaml").write_bytes(data)
            _flows, problems = load_flows(root, http=self.registry.http_policy)
        # A problem in another file (one whose goto names this flow) counts too: publishing
        # this one would break it.
        found = [
            {"file": p.file.name, "line": p.line, "message": f"{p.path}: {p.message}" if p.path else p.message}
            for p in sorted(problems, key=lambda p: (p.file.name != f"{name}.yaml", p.file.name, p.line))
        ]
        return found, []

    def write(self, name: str, data: bytes) -> Path:
        """Write the flow file atomically (blocking)."""
        target = _atomic_write(self.folder / f"{name}.yaml", data)
        old_yml = self.folder / f"{name}.yml"
        if old_yml.exists():  # one file per flow name
            old_yml.unlink()
        return target


def _atomic_write(target: Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``target``, flush it to disk, rename it over."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o644)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


FLOWS_KEY = web.AppKey("flow_admin", FlowAdmin)


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not FLOW_NAME.match(name):
        raise web.HTTPBadRequest(
            text=dumps({"error": "流程名只能含小写字母、数字和下划线 (a-z, 0-9, _)"}), content_type="application/json"
        )
    return name


def _flow_file(admin: FlowAdmin, name: str) -> Path | None:
    for suffix in UPLOAD_TYPES:
        path = admin.folder / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def _yaml_bytes(text: Any) -> bytes:
    if not isinstance(text, str):
        raise web.HTTPBadRequest(text=dumps({"error": "缺少 yaml (missing yaml)"}), content_type="application/json")
    data = text.encode("utf-8")
    if len(data) > MAX_FILE_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_FILE_BYTES, actual_size=len(data))
    return data


@requires("admin")
async def list_flows(request: web.Request) -> web.Response:
    """The flow files and which version of each serves calls."""
    admin = request.app[FLOWS_KEY]
    loaded = admin.registry.snapshot()
    files = sorted(p for p in admin.folder.iterdir() if p.suffix in UPLOAD_TYPES and not p.name.startswith("."))
    return web.json_response(
        {
            "flows": [
                {
                    "name": p.stem,
                    "file": p.name,
                    "loaded": p.stem in loaded,
                    "version": loaded[p.stem].version[:12] if p.stem in loaded else None,
                }
                for p in files
            ],
            "problems": admin.registry.last_report.problems[:50],
        },
        dumps=dumps,
    )


@requires("admin")
async def get_flow(request: web.Request) -> web.Response:
    """The YAML text of one flow file."""
    admin = request.app[FLOWS_KEY]
    name = _name(request)
    path = _flow_file(admin, name)
    if path is None:
        return json_error(404, f"没有流程 {name} (no such flow)")
    text = (await asyncio.to_thread(path.read_bytes)).decode("utf-8", errors="replace")
    return web.json_response({"name": name, "file": path.name, "yaml": text}, dumps=dumps)


@requires("admin")
async def validate_flow(request: web.Request) -> web.Response:
    """Check a flow's YAML without writing it: problems with file and line."""
    admin = request.app[FLOWS_KEY]
    data = await read_json(request, MAX_FILE_BYTES * 2)
    name = data.get("name")
    if not isinstance(name, str) or not FLOW_NAME.match(name):
        return json_error(400, "流程名只能含小写字母、数字和下划线 (a-z, 0-9, _)")
    problems, warnings = await asyncio.to_thread(admin.validate, name, _yaml_bytes(data.get("yaml")))
    return web.json_response({"ok": not problems, "problems": problems, "warnings": warnings}, dumps=dumps)


async def _publish(request: web.Request, name: str, data: bytes, how: str) -> web.Response:
    admin = request.app[FLOWS_KEY]
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return json_error(415, "流程文件须为 UTF-8 文本 (the file must be UTF-8 text)")
    problems, _warnings = await asyncio.to_thread(admin.validate, name, data)
    if problems:
        return web.json_response(
            {"error": "流程有错误，未发布 (the flow has problems; nothing was written)", "problems": problems},
            status=422,
            dumps=dumps,
        )
    await asyncio.to_thread(admin.write, name, data)
    await admin.reload()
    flow = admin.registry.snapshot().get(name)
    version = flow.version[:12] if flow is not None else None
    await audit(request, "publish_flow", name, {"how": how, "version": version, "bytes": len(data)})
    return web.json_response({"ok": flow is not None, "name": name, "version": version}, dumps=dumps)


@requires("admin")
async def put_flow(request: web.Request) -> web.Response:
    """Publish a flow: validate, write atomically, reload (calls in progress are not disturbed)."""
    name = _name(request)
    data = await read_json(request, MAX_FILE_BYTES * 2)
    return await _publish(request, name, _yaml_bytes(data.get("yaml")), "edit")


@requires("admin")
async def upload_flow(request: web.Request) -> web.Response:
    """Publish an uploaded ``.yaml`` file (multipart field ``file``; at most 256 KiB, UTF-8).

    A body that is not multipart is a 415; a malformed one (no boundary, torn, a bad part
    header) a 400 with the reason, never a 500 (issue 11, found by schemathesis)."""
    if not request.content_type.startswith("multipart/"):
        return json_error(415, "请以 multipart/form-data 上传文件 (upload as multipart/form-data)")
    try:
        found = await _upload(request)
    except (ValueError, HttpProcessingError) as exc:
        reason = " ".join(str(getattr(exc, "message", "") or exc).split())[:200]
        return json_error(400, f"上传内容格式错误 (malformed multipart body: {reason})")
    if isinstance(found, web.Response):
        return found
    stem, data = found
    if b"\x00" in data:
        return json_error(415, "这不是文本文件 (not a text file)")
    return await _publish(request, stem, data, "upload")


async def _upload(request: web.Request) -> tuple[str, bytes] | web.Response:
    """The flow name and bytes of the upload's ``file`` part, or the refusal to answer.

    Raises ValueError or HttpProcessingError (aiohttp's) for a body that is not well-formed
    multipart."""
    reader = await request.multipart()
    for _ in range(MAX_UPLOAD_PARTS):
        part = await reader.next()
        if part is None:
            break
        if isinstance(part, BodyPartReader) and part.name == "file":
            filename = part.filename or ""
            stem, suffix = os.path.splitext(os.path.basename(filename))
            if suffix.lower() not in UPLOAD_TYPES:
                return json_error(415, "只接受 .yaml 或 .yml 文件 (only .yaml or .yml files)")
            if not FLOW_NAME.match(stem):
                return json_error(400, "文件名只能含小写字母、数字和下划线 (file name: a-z, 0-9, _)")
            data = bytearray()
            while chunk := await part.read_chunk(64 * 1024):
                data.extend(chunk)
                if len(data) > MAX_FILE_BYTES:
                    return json_error(413, f"文件过大，上限 {MAX_FILE_BYTES // 1024} KiB (the file is too large)")
            # Read on to the closing boundary: a body cut short (no closing boundary) raises
            # here rather than publishing the piece that came.
            for _ in range(MAX_UPLOAD_PARTS):
                if await reader.next() is None:
                    return stem, bytes(data)
            break
    return json_error(400, "缺少文件字段 file，或表单项过多 (missing the file field, or too many parts)")


@requires("admin")
async def flow_graph(request: web.Request) -> web.StreamResponse:
    """The loaded version of a flow as an SVG picture (Chinese labels)."""
    admin = request.app[FLOWS_KEY]
    name = _name(request)
    flow = admin.registry.snapshot().get(name)
    if flow is None:
        return json_error(404, f"流程 {name} 未加载 (not loaded)")

    def draw() -> bytes:
        with tempfile.TemporaryDirectory(prefix="hotline-graph-") as scratch:
            return render_graph(flow, Path(scratch) / f"{name}.svg").read_bytes()

    try:
        svg = await asyncio.to_thread(draw)
    except GraphError as exc:
        return json_error(500, str(exc))
    return web.Response(
        body=svg,
        content_type="image/svg+xml",
        headers={"Cache-Control": "no-store", "Content-Security-Policy": "script-src 'none'"},
    )


@requires("admin")
async def list_agents(request: web.Request) -> web.Response:
    """The configured agents with skills, team and queues (hotline.toml [[agents]])."""
    settings = request.app[FLOWS_KEY].settings
    return web.json_response(
        {
            "agents": [
                {
                    "id": a.id,
                    "name": a.name,
                    "skills": a.skills,
                    "team": a.team,
                    "tags": a.tags,
                    "queues": a.queues,
                    "chat_capacity": a.chat_capacity,
                }
                for a in settings.agents
            ]
        },
        dumps=dumps,
    )


@requires("admin")
async def list_queues(request: web.Request) -> web.Response:
    """The configured queues and their strategies (hotline.toml [[queues]])."""
    settings = request.app[FLOWS_KEY].settings
    return web.json_response({"queues": [q.model_dump() for q in settings.queues]}, dumps=dumps)


@requires("admin")
async def list_calendars(request: web.Request) -> web.Response:
    """The business-hours calendars (holidays, make-up workdays, hours, the emergency switch)."""
    admin = request.app[FLOWS_KEY]
    folder = admin.calendars
    files = sorted(p for p in folder.glob("*.yaml") if not p.name.startswith(".")) if folder.is_dir() else []
    loaded = admin.registry.calendars
    return web.json_response(
        {
            "calendars": [{"name": p.stem, "file": p.name, "loaded": p.stem in loaded} for p in files],
            "warnings": admin.registry.last_report.warnings,
        },
        dumps=dumps,
    )


@requires("admin")
async def get_calendar(request: web.Request) -> web.Response:
    """The YAML text of one calendar file."""
    admin = request.app[FLOWS_KEY]
    name = _name(request)
    path = admin.calendars / f"{name}.yaml"
    if not path.is_file():
        return json_error(404, f"没有日历 {name} (no such calendar)")
    text = (await asyncio.to_thread(path.read_bytes)).decode("utf-8", errors="replace")
    return web.json_response({"name": name, "file": path.name, "yaml": text}, dumps=dumps)


def _calendar_bytes(text: Any) -> bytes:
    if not isinstance(text, str):
        raise web.HTTPBadRequest(text=dumps({"error": "缺少 yaml (missing yaml)"}), content_type="application/json")
    data = text.encode("utf-8")
    if len(data) > MAX_CALENDAR_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_CALENDAR_BYTES, actual_size=len(data))
    return data


@requires("admin")
async def validate_calendar(request: web.Request) -> web.Response:
    """Check a calendar's YAML without writing it: problems with line, and missing years."""
    admin = request.app[FLOWS_KEY]
    data = await read_json(request, MAX_FILE_BYTES * 2)
    name = data.get("name")
    if not isinstance(name, str) or not FLOW_NAME.match(name):
        return json_error(400, "日历名只能含小写字母、数字和下划线 (a-z, 0-9, _)")
    problems, warnings = await asyncio.to_thread(admin.validate_calendar, name, _calendar_bytes(data.get("yaml")))
    return web.json_response({"ok": not problems, "problems": problems, "warnings": warnings}, dumps=dumps)


@requires("admin")
async def put_calendar(request: web.Request) -> web.Response:
    """Publish a calendar: validate, write atomically, reload (time switches use it at once)."""
    admin = request.app[FLOWS_KEY]
    name = _name(request)
    data = _calendar_bytes((await read_json(request, MAX_FILE_BYTES * 2)).get("yaml"))
    problems, warnings = await asyncio.to_thread(admin.validate_calendar, name, data)
    if problems:
        return web.json_response(
            {"error": "日历有错误，未发布 (the calendar has problems; nothing was written)", "problems": problems},
            status=422,
            dumps=dumps,
        )
    await asyncio.to_thread(admin.write_calendar, name, data)
    await admin.reload()
    await audit(request, "publish_calendar", name, {"bytes": len(data)})
    return web.json_response({"ok": name in admin.registry.calendars, "name": name, "warnings": warnings}, dumps=dumps)


@requires("admin")
async def new_sip_password(request: web.Request) -> web.Response:
    """Give an agent's SIP phone account a new password, shown in this answer only."""
    admin = request.app[FLOWS_KEY]
    agent_id = request.match_info["agent"]
    try:
        password = await admin.new_sip_password(agent_id)
    except KeyError:
        return json_error(404, f"没有这个坐席 (no agent {agent_id})")
    except (HotlineError, TimeoutError) as exc:
        return json_error(503, f"交换机未能更新 SIP 账号 (the switch did not take it: {exc})")
    await audit(request, "sip_password_reset", agent_id, {})
    sw = admin.settings.switch
    return web.json_response(
        {"agent": agent_id, "username": agent_id, "password": password, "sip_port": sw.sip_port},
        headers={"Cache-Control": "no-store"},
        dumps=dumps,
    )


AGENT_ID = re.compile(r"^[0-9]{3,6}$")


def _fields(data: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    """The editable fields of an agent or queue edit; 400 for an unknown field or a null.

    A null has no TOML form (the settings file could not be written: a 500 before); every other
    JSON value can be written, and the settings' own validation then names what it refuses."""
    unknown = sorted(set(data) - set(allowed) - {"id"})
    if unknown:
        raise web.HTTPBadRequest(
            text=dumps({"error": f"未知字段 (unknown fields): {', '.join(unknown)}"}), content_type="application/json"
        )
    fields = {k: data[k] for k in allowed if k in data}
    for name, value in fields.items():
        _no_null(value, name)
    return fields


def _no_null(value: Any, where: str) -> None:
    if value is None:
        raise web.HTTPBadRequest(
            text=dumps({"error": f"{where} 不能为 null ({where} may not be null; leave the field out to keep it)"}),
            content_type="application/json",
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _no_null(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _no_null(item, f"{where}[{index}]")


async def _roster_call(request: web.Request, action: str, target: str, work: Awaitable[Any]) -> Any:
    try:
        result = await work
    except RosterInvalid as exc:  # a value the settings refuse, named by its key: bad input
        raise web.HTTPBadRequest(text=dumps({"error": str(exc)}), content_type="application/json") from exc
    except RosterError as exc:
        raise web.HTTPConflict(text=dumps({"error": str(exc)}), content_type="application/json") from exc
    except (HotlineError, TimeoutError) as exc:
        raise web.HTTPServiceUnavailable(
            text=dumps({"error": f"已保存，但交换机未能更新 (saved, the switch did not take it: {exc})"}),
            content_type="application/json",
        ) from exc
    await audit(request, action, target, {})
    return result


@requires("admin")
async def create_agent(request: web.Request) -> web.Response:
    """Add an agent (id, name, skills, team, tags, queues, chats); the SIP password is in this
    answer only."""
    admin = request.app[FLOWS_KEY]
    data = await read_json(request, MAX_FILE_BYTES * 2)
    agent_id = data.get("id")
    if not isinstance(agent_id, str) or not AGENT_ID.match(agent_id):
        return json_error(400, "工号须为 3–6 位数字 (the agent id is 3–6 digits)")
    fields = _fields(data, AGENT_FIELDS)
    password = await _roster_call(request, "agent_created", agent_id, admin.save_agent(agent_id, fields, True))
    return web.json_response(
        {"agent": agent_id, "username": agent_id, "password": password, "sip_port": admin.settings.switch.sip_port},
        status=201,
        headers={"Cache-Control": "no-store"},
        dumps=dumps,
    )


@requires("admin")
async def update_agent(request: web.Request) -> web.Response:
    """Change an agent's name, skills and levels, team, tags, queues or chats (at once, also
    while they are on a call)."""
    admin = request.app[FLOWS_KEY]
    agent_id = request.match_info["agent"]
    fields = _fields(await read_json(request, MAX_FILE_BYTES * 2), AGENT_FIELDS)
    await _roster_call(request, "agent_changed", agent_id, admin.save_agent(agent_id, fields, False))
    return web.json_response({"ok": True, "agent": agent_id}, dumps=dumps)


@requires("admin")
async def delete_agent(request: web.Request) -> web.Response:
    """Remove a logged-out agent and their SIP account."""
    admin = request.app[FLOWS_KEY]
    agent_id = request.match_info["agent"]
    await _roster_call(request, "agent_removed", agent_id, admin.remove_agent(agent_id))
    return web.json_response({"ok": True, "agent": agent_id}, dumps=dumps)


@requires("admin")
async def update_queue(request: web.Request) -> web.Response:
    """Change a queue's strategy, ring timeout, wrap-up, maximum wait and the like."""
    admin = request.app[FLOWS_KEY]
    name = _name(request)
    fields = _fields(await read_json(request, MAX_FILE_BYTES * 2), QUEUE_FIELDS)
    await _roster_call(request, "queue_changed", name, admin.save_queue(name, fields))
    return web.json_response({"ok": True, "queue": name}, dumps=dumps)


def add_admin_routes(app: web.Application, admin: FlowAdmin) -> None:
    app[FLOWS_KEY] = admin
    app.router.add_get("/api/admin/flows", list_flows)
    app.router.add_post("/api/admin/flows/validate", validate_flow)
    app.router.add_post("/api/admin/flows/upload", upload_flow)
    app.router.add_get("/api/admin/flows/{name}", get_flow)
    app.router.add_put("/api/admin/flows/{name}", put_flow)
    app.router.add_get("/api/admin/flows/{name}/graph", flow_graph)
    app.router.add_get("/api/admin/calendars", list_calendars)
    app.router.add_post("/api/admin/calendars/validate", validate_calendar)
    app.router.add_get("/api/admin/calendars/{name}", get_calendar)
    app.router.add_put("/api/admin/calendars/{name}", put_calendar)
    app.router.add_post("/api/admin/agents/{agent}/sip-password", new_sip_password)
    app.router.add_get("/api/admin/agents", list_agents)
    app.router.add_post("/api/admin/agents", create_agent)
    app.router.add_put("/api/admin/agents/{agent}", update_agent)
    app.router.add_delete("/api/admin/agents/{agent}", delete_agent)
    app.router.add_get("/api/admin/queues", list_queues)
    app.router.add_put("/api/admin/queues/{name}", update_queue)

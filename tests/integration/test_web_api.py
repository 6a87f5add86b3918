"""The web API on the real controller (issue 6; T1, T3, T4, T10): an agent's session drives a real
call (pop with number and IVR path, hang-up from the workstation, wrap-up, summary), the
wallboard and the live WebSocket see it, a supervisor pauses the agent, and the admin's flow
endpoints check what is uploaded (type, size, CSRF, validation with lines) before anything is
written. The browser on top of these is tested in tests/web/test_browser.py.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from tests.harness.acd import place, record, stores, wait_agent
from tests.harness.ami import AmiPeer
from tests.harness.calls import call_store, wait_node, wait_until
from tests.harness.flows import calendar_text
from tests.harness.hotline import Hotline
from tests.harness.loop import LoopThread
from tests.harness.sipp import register_args, run_sipp
from tests.harness.web import WebClient, ensure_user
from tests.harness.world import World
from tests.integration.test_ivr_calls import start_call, today_in_beijing

pytestmark = pytest.mark.switch

WRAP = "12344"  # the acd_wrap flow: queue "wrap", 8 s of wrap-up


def client(hotline: Hotline, username: str, role: str, agent_id: str | None = None) -> WebClient:
    password = ensure_user(hotline.settings.database_url, username, role, agent_id)
    web = WebClient(hotline.settings.controller.web_port)
    assert web.login(username, password) == 200
    return web


def poll(web: WebClient, path: str, check: Any, timeout: float = 20.0, what: str = "") -> dict[str, Any]:
    """GET ``path`` until ``check(answer)`` holds (the controller's state, with a deadline)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        status, last = web.json("GET", path)
        assert status == 200, (status, last)
        if check(last):
            return dict(last)
        time.sleep(0.1)
    raise AssertionError(f"{what or path} not reached in {timeout} s: {last}")


def test_an_agent_session_works_a_real_call(acd: Hotline, world: World, cc_ami: AmiPeer, loop: LoopThread) -> None:
    agent = client(acd, "web1001", "agent", "1001")
    supervisor = client(acd, "websup", "supervisor")
    world.phone("1001").answers_after(0.5).plays("").hangs_up_after(3600)  # stays (0 hangs up at once)
    # Today's counts before this call: the database is the session's, earlier tests answered calls.
    answered_before = agent.json("GET", "/api/agent")[1]["figures"]["answered"]
    board_before = supervisor.json("GET", "/api/wallboard")[1]["today"]["answered"]
    status, answer = agent.json("POST", "/api/agent/login", {})
    assert status == 200, answer
    assert agent.json("GET", "/api/agent")[1]["agent"]["state"] == "available"
    caller = "13800009001"
    call, uid, _since = place(world, cc_ami, WRAP, caller)
    screen = poll(agent, "/api/agent", lambda a: a["call"] is not None, what="the call pop-up")
    pop = screen["call"]
    assert pop["uniqueid"] == uid and pop["number"] == caller and pop["queue"] == "wrap"
    assert [n["node"] for n in pop["ivr_path"]] == [node for _at, _f, node, _k in call_store(acd).ivr_path(uid)]
    assert pop["ivr_path"], "the caller came through the IVR"
    wait_agent(acd, "1001", "on_call")
    # The live socket sends the agent's screen at once.
    first = loop.run(_first_message(acd, agent), timeout=20)
    assert first["type"] == "agent" and first["data"]["call"]["uniqueid"] == uid
    board = poll(supervisor, "/api/wallboard", lambda b: _agent_row(b, "1001")["state"] == "on_call")
    assert {q["name"] for q in board["queues"]} >= {"wrap"}
    status, answer = agent.json("POST", "/api/agent/call/hangup", {})
    assert status == 200 and answer["call"] == uid
    screen = poll(agent, "/api/agent", lambda a: a["wrapup"] is not None, what="wrap-up")
    assert screen["wrapup"]["call"] == uid and screen["agent"]["state"] == "wrap_up"
    text = "咨询养老金领取条件；<b>已解答</b>"
    assert agent.json("POST", "/api/agent/summary", {"text": text, "call": uid})[0] == 200
    # Another agent cannot overwrite it: 403 with the reason, the summary unchanged (issue 11 item 4).
    other = client(acd, "web1002", "agent", "1002")
    status, refused = other.json("POST", "/api/agent/summary", {"text": "篡改的小结", "call": uid})
    assert status == 403 and "1002" in refused["error"], refused
    stored = call_store(acd).get(uid)
    assert stored is not None and stored.summary == text
    assert [d for _at, kind, d in stored.events if kind == "summary"] == [{"agent": "1001"}]
    assert agent.json("POST", "/api/agent/wrapup/extend", {"seconds": 30})[0] == 200
    status, refused = agent.json("POST", "/api/agent/wrapup/extend", {"seconds": 30})
    assert status == 409 and "extended" in refused["error"]
    assert agent.json("POST", "/api/agent/wrapup/finish", {})[0] == 200
    assert record(acd, uid, "wrapup").summary == text
    call.hang_up()
    # Today's figures count the call, for the agent and on the wallboard.
    screen = poll(agent, "/api/agent", lambda a: a["figures"]["answered"] >= answered_before + 1, what="own figures")
    assert screen["figures"]["answered"] == answered_before + 1
    assert screen["agent"]["state"] == "available"
    board = poll(supervisor, "/api/wallboard", lambda b: b["today"]["answered"] >= board_before + 1)
    assert board["today"]["answered"] == board_before + 1
    assert 0.0 <= board["today"]["answered_rate"] <= 1.0
    # The supervisor pauses the agent, then logs them out.
    status, _ = supervisor.json("POST", "/api/supervisor/agents/1001/pause", {"reason": "培训"})
    assert status == 200
    state = agent.json("GET", "/api/agent")[1]["agent"]
    assert state["state"] == "paused" and state["pause_reason"].startswith("培训")
    assert supervisor.json("POST", "/api/supervisor/agents/1001/logout", {})[0] == 200
    assert agent.json("GET", "/api/agent")[1]["agent"]["state"] == "offline"
    # Call controls without a call are refused with the controller's reason, not a crash.
    status, refused = agent.json("POST", "/api/agent/call/hold", {})
    assert status == 409 and "not on a call" in refused["error"]
    # A callback id past the database's integers is a 400, not a 500 (issue 11: odd values).
    status, refused = agent.json("POST", "/api/agent/callbacks/99999999999999999999/call", {})
    assert status == 400 and "out of range" in refused["error"]


def _agent_row(board: dict[str, Any], agent_id: str) -> dict[str, Any]:
    return next(a for a in board["agents"] if a["id"] == agent_id)


async def _first_message(hotline: Hotline, web: WebClient, origin: str | None = None) -> dict[str, Any]:
    url = f"http://127.0.0.1:{hotline.settings.controller.web_port}/api/ws"
    async with (
        aiohttp.ClientSession(headers={"Cookie": web.cookie}) as session,
        session.ws_connect(url, origin=origin) as ws,
    ):
        message = await ws.receive(timeout=10)
        return dict(json.loads(message.data))


def test_an_account_without_an_agent_and_a_closed_socket(controller: Hotline, loop: LoopThread) -> None:
    lonely = client(controller, "webnoagent", "agent")
    status, answer = lonely.json("GET", "/api/agent")
    assert status == 409 and "agent" in answer["error"]
    # A supervisor's socket gets the wallboard; once logged out, a new socket is refused.
    supervisor = client(controller, "websup2", "supervisor")
    first = loop.run(_first_message(controller, supervisor), timeout=20)
    assert first["type"] == "wallboard" and "today" in first["data"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as cross_site:
        loop.run(_first_message(controller, supervisor, origin="http://evil.example"), timeout=20)
    assert cross_site.value.status == 403
    cookie = supervisor.cookie
    assert supervisor.json("POST", "/api/logout", {})[0] == 200
    supervisor.cookie = cookie
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        loop.run(_first_message(controller, supervisor), timeout=20)
    assert refused.value.status == 401


def test_flow_uploads_are_checked_before_anything_is_written(controller: Hotline) -> None:
    admin = client(controller, "webadmin", "admin")
    main = controller.settings.flows_path / "main.yaml"
    original = main.read_text(encoding="utf-8")
    status, flows = admin.json("GET", "/api/admin/flows")
    assert status == 200 and any(f["name"] == "main" and f["loaded"] for f in flows["flows"])
    status, got = admin.json("GET", "/api/admin/flows/main")
    assert status == 200 and got["yaml"] == original
    broken = original.replace('"2": business_menu', '"2": no_such_node')
    line = next(i for i, text in enumerate(broken.splitlines(), 1) if "no_such_node" in text)
    status, checked = admin.json("POST", "/api/admin/flows/validate", {"name": "main", "yaml": broken})
    assert status == 200 and checked["ok"] is False
    assert any(
        p["file"] == "main.yaml" and p["line"] == line and "no_such_node" in p["message"] for p in checked["problems"]
    )
    # Refused: no CSRF token; a broken flow; the wrong type; too large; not UTF-8. Nothing written.
    assert admin.json("PUT", "/api/admin/flows/main", {"yaml": broken}, csrf=False)[0] == 403
    status, answer = admin.json("PUT", "/api/admin/flows/main", {"yaml": broken})
    assert status == 422 and answer["problems"]
    assert admin.upload("/api/admin/flows/upload", "main.txt", original.encode())[0] == 415
    assert admin.upload("/api/admin/flows/upload", "main.yaml", b"#" * (300 * 1024))[0] == 413
    assert admin.upload("/api/admin/flows/upload", "main.yaml", "欢迎".encode("gbk"))[0] == 415
    assert admin.upload("/api/admin/flows/upload", "Main Flow.yaml", original.encode())[0] == 400
    assert main.read_text(encoding="utf-8") == original
    # The graph of the loaded flow.
    status, svg = admin.request("GET", "/api/admin/flows/main/graph")
    assert status == 200 and admin.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg
    # A good upload is written and published (the same content: calls are not disturbed).
    status, published = admin.upload("/api/admin/flows/upload", "main.yaml", original.encode())
    assert status == 200 and published["ok"] is True and published["version"]
    assert main.read_text(encoding="utf-8") == original
    entries = [e for e in _audit(controller) if e["action"] == "publish_flow"]
    assert entries and entries[0]["actor"] == "webadmin"


def _audit(hotline: Hotline) -> list[dict[str, Any]]:
    auditor = client(hotline, "webaudit", "auditor")
    status, answer = auditor.json("GET", "/api/audit?limit=200")
    assert status == 200
    return list(answer["entries"])


def test_admin_publishes_a_holiday_and_the_next_call_hears_it(
    controller: Hotline, world: World, cc_ami: AmiPeer
) -> None:
    """Calendars through the admin API: a broken one is refused with its line, nothing written;
    today published as a holiday sends the next caller to the holiday notice (T6)."""
    admin = client(controller, "webadmin", "admin")
    path = controller.settings.flows_path / "calendars" / "beijing.yaml"
    original = path.read_text(encoding="utf-8")
    status, listed = admin.json("GET", "/api/admin/calendars")
    assert status == 200 and [c["name"] for c in listed["calendars"]] == ["beijing"]
    assert admin.json("GET", "/api/admin/calendars/beijing")[1]["yaml"] == original
    broken = original + "\nholidays_typo: []\n"
    line = len(broken.splitlines())
    status, answer = admin.json("PUT", "/api/admin/calendars/beijing", {"yaml": broken})
    assert status == 422 and answer["problems"][0]["line"] == line, answer
    assert path.read_text(encoding="utf-8") == original
    holiday = calendar_text([today_in_beijing()], False)
    try:
        status, answer = admin.json("PUT", "/api/admin/calendars/beijing", {"yaml": holiday})
        assert status == 200 and answer["ok"] is True, answer
        call, uid, _mark = start_call(world, cc_ami, "13800009011")
        path_taken = wait_node(call_store(controller), uid, "holiday_notice")
        assert path_taken[:4] == ["welcome", "hours", "holiday", "holiday_notice"]
        call.hang_up()
    finally:
        assert admin.json("PUT", "/api/admin/calendars/beijing", {"yaml": original})[0] == 200
    assert path.read_text(encoding="utf-8") == original


def test_a_new_sip_password_is_shown_once_and_the_switch_takes_it(controller: Hotline) -> None:
    """An admin resets the SIP password of agent 1004 (whose phone the world leaves unregistered):
    the answer shows it once, the switch accepts it at once and refuses the old one (P2)."""
    admin = client(controller, "webadmin", "admin")
    old = controller.secrets.agent_password("1004")
    status, answer = admin.json("POST", "/api/admin/agents/1004/sip-password", {})
    assert status == 200 and answer["username"] == "1004", answer
    new = answer["password"]
    assert new != old and len(new) >= 24
    assert admin.headers["cache-control"] == "no-store"
    controller.secrets.agent_passwords["1004"] = new  # the harness's copy, for later tests
    status, agents = admin.request("GET", "/api/admin/agents")
    assert status == 200 and new.encode() not in agents
    ok = run_sipp(controller.settings.switch.sip_port, *register_args("1004", new), timeout=30)
    assert ok.returncode == 0, ok.stdout[-1500:] + ok.stderr[-1500:]
    refused = run_sipp(controller.settings.switch.sip_port, *register_args("1004", old), timeout=30)
    assert refused.returncode != 0
    assert admin.json("POST", "/api/admin/agents/9999/sip-password", {})[0] == 404
    entries = [e for e in _audit(controller) if e["action"] == "sip_password_reset"]
    assert entries and entries[0]["target"] == "1004" and new not in json.dumps(entries, ensure_ascii=False)


def test_admin_adds_changes_and_removes_an_agent_and_tunes_a_queue(controller: Hotline) -> None:
    """Agents and queues edited on the admin API (BRIEF: admins edit queues and agents): the
    settings file keeps its comments, the switch takes a new agent's SIP account at once and
    drops a removed one's, the ACD sees the changes without a restart; bad values and a
    logged-in agent's removal are refused with nothing written."""
    admin = client(controller, "webadmin", "admin")
    config = controller.config
    marker = "# 管理员的注释 (kept by web edits)\n"
    config.write_text(marker + config.read_text(encoding="utf-8"), encoding="utf-8")
    before = config.read_text(encoding="utf-8")
    body = {"id": "1005", "name": "新坐席", "skills": {"consult": 3}, "queues": ["general"], "team": "二组"}
    try:
        status, created = admin.json("POST", "/api/admin/agents", body)
        assert status == 201, created
        password = created["password"]
        assert len(password) >= 24 and admin.headers["cache-control"] == "no-store"
        text = config.read_text(encoding="utf-8")
        assert text.startswith(marker) and 'id = "1005"' in text and password not in text
        assert acd_agent(controller, "1005")["state"] == "offline"
        ok = run_sipp(controller.settings.switch.sip_port, *register_args("1005", password), timeout=30)
        assert ok.returncode == 0, ok.stdout[-1500:] + ok.stderr[-1500:]
        assert admin.json("POST", "/api/admin/agents", body)[0] == 409  # exists already
        # A change, then bad values: refused, nothing written.
        status, _ = admin.json("PUT", "/api/admin/agents/1005", {"skills": {"complaint": 5}, "name": "王芳"})
        assert status == 200
        agents = {a["id"]: a for a in admin.json("GET", "/api/admin/agents")[1]["agents"]}
        assert agents["1005"]["skills"] == {"complaint": 5} and agents["1005"]["name"] == "王芳"
        assert acd_agent(controller, "1005")["name"] == "王芳"
        kept = config.read_text(encoding="utf-8")
        status, refused = admin.json("PUT", "/api/admin/agents/1005", {"skills": {"complaint": 9}})
        assert status == 400 and "skills" in refused["error"]
        assert admin.json("PUT", "/api/admin/agents/1005", {"queues": ["no_such_queue"]})[0] == 400
        # A name that would add an endpoint to pjsip.conf (issue 11 item 2): 400 naming the field.
        status, refused = admin.json("PUT", "/api/admin/agents/1005", {"name": "x\n[evil]\ntype=endpoint"})
        assert status == 400 and "name" in refused["error"] and "坐席姓名不能含控制字符" in refused["error"]
        assert admin.json("PUT", "/api/admin/agents/1005", {"password": "x"})[0] == 400
        assert config.read_text(encoding="utf-8") == kept
        # A queue's settings.
        queues = {q["name"]: q for q in admin.json("GET", "/api/admin/queues")[1]["queues"]}
        old_timeout = queues["rr"]["ring_timeout"]
        assert admin.json("PUT", "/api/admin/queues/rr", {"ring_timeout": old_timeout + 5})[0] == 200
        queues = {q["name"]: q for q in admin.json("GET", "/api/admin/queues")[1]["queues"]}
        assert queues["rr"]["ring_timeout"] == old_timeout + 5
        assert admin.json("PUT", "/api/admin/queues/rr", {"ring_timeout": 1})[0] == 400
        assert admin.json("PUT", "/api/admin/queues/rr", {"ring_timeout": old_timeout})[0] == 200
        # A logged-in agent cannot be removed; a logged-out one can, and their phone is refused.
        agent_cmd(controller, "1001", "login")
        assert admin.json("DELETE", "/api/admin/agents/1001", {})[0] == 409
        agent_cmd(controller, "1001", "logout")
        assert admin.json("DELETE", "/api/admin/agents/1005", {})[0] == 200
        assert "1005" not in {a["id"] for a in admin.json("GET", "/api/admin/agents")[1]["agents"]}
        gone = run_sipp(controller.settings.switch.sip_port, *register_args("1005", password), timeout=30)
        assert gone.returncode != 0
        actions = [e["action"] for e in _audit(controller)]
        assert {"agent_created", "agent_changed", "agent_removed", "queue_changed"} <= set(actions)
    finally:
        if "1005" in {a["id"] for a in admin.json("GET", "/api/admin/agents")[1]["agents"]}:
            admin.json("DELETE", "/api/admin/agents/1005", {})
    assert config.read_text(encoding="utf-8") == before


def acd_agent(hotline: Hotline, agent_id: str) -> dict[str, Any]:
    from tests.harness.acd import status as acd_status

    agents: dict[str, dict[str, Any]] = acd_status(hotline)["agents"]
    return agents[agent_id]


def agent_cmd(hotline: Hotline, agent_id: str, action: str) -> None:
    from tests.harness.acd import agent as control_agent

    control_agent(hotline, agent_id, action)


def test_an_agent_calls_a_citizen_back_from_the_list(acd: Hotline, world: World, cc_ami: AmiPeer) -> None:
    """T10 from the workstation: 立即回拨 rings the agent first (the screen shows the citizen's
    number and the callback), then the citizen; the callback closes as done."""
    agent = client(acd, "web1001", "agent", "1001")
    _, callbacks = stores(acd)
    citizen = "13800009021"
    # Not due for ten minutes: only the agent's request places it now.
    callback = callbacks.request(citizen, "web-callback-1", "abandoned", datetime.now(UTC) + timedelta(minutes=10))
    world.phone("1001").answers_after(1).hangs_up_after(3)
    world.phone(citizen).answers_after(0.5)
    assert agent.json("POST", "/api/agent/login", {})[0] == 200
    poll(agent, "/api/agent", lambda a: any(c["id"] == callback for c in a["callbacks"]), what="the list")
    status, answer = agent.json("POST", f"/api/agent/callbacks/{callback}/call", {})
    assert status == 200, answer
    screen = poll(agent, "/api/agent", lambda a: a["call"] is not None, what="the callback on screen")
    assert screen["call"]["number"] == citizen and screen["call"]["callback"] == callback
    done = wait_until(
        lambda: (c := callbacks.get(callback)) is not None and c.status == "done" and c, 40, "the callback done"
    )
    assert done.agent_id == "1001"  # type: ignore[union-attr]
    status, refused = agent.json("POST", f"/api/agent/callbacks/{callback}/call", {})
    assert status == 409 and "not open" in refused["error"]

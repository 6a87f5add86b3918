"""The agent workstation's and the supervisor's handlers (cc_core/web/workstation.py; issue 6 items
3 and 4; T1, T3, T4, T10): their own tests (issue 12, "First: tests that would catch a broken
refactor").

Over the product's whole web API in-process (tests/web/served.py: the real controller's ACD, call
control and views, an AMI stand-in that answers Success, SQLite), with real sessions: every agent
action and its refusal (a 409 with the controller's reason), every bad input (a 400 with a
Chinese-then-English message, never a 500), the agent acted on is always the session's own, and
the supervisor's pause and log-out. Each test starts with agent 1001 logged out and its phone
registered.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cc_core.acd.model import AgentState
from cc_core.auth.store import UserStore
from tests.harness.loop import LoopThread
from tests.harness.web import WebClient
from tests.web.served import AGENT, PASSWORD, Served, serve


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, LoopThread]]:
    loop = LoopThread()
    try:
        with serve(tmp_path_factory.mktemp("workstation") / "home", loop) as served:
            yield served, loop
    finally:
        loop.close()


@pytest.fixture
def served(running: tuple[Served, LoopThread]) -> Iterator[Served]:
    """The server with 1001 and 1002 logged out and their phones registered, before and after."""
    served, loop = running
    acd = served.controller.acd

    async def reset() -> None:
        for agent_id in ("1001", "1002"):
            served.controller.view.devices[f"PJSIP/{agent_id}"] = "NOT_INUSE"
            if acd.agents[agent_id].state is not AgentState.OFFLINE:
                await acd.logout(agent_id)

    loop.run(reset())
    yield served
    loop.run(reset())


def agent_state(served: Served, agent_id: str = AGENT) -> tuple[str, str | None]:
    agent = served.controller.acd.agents[agent_id]
    return agent.state.value, agent.pause_reason


def post(served: Served, path: str, body: Any = None, role: str = "agent") -> tuple[int, Any]:
    return served.client(role).json("POST", path, {} if body is None else body)


# ---- the agent's own state ---------------------------------------------------------------------------


def test_log_in_pause_resume_and_log_out_act_on_the_session_agent(served: Served) -> None:
    assert post(served, "/api/agent/login") == (200, {"ok": True})
    assert (agent_state(served), served.controller.acd.extension.get(AGENT)) == (("available", None), AGENT)
    assert agent_state(served, "1002") == ("offline", None)  # only the session's own agent
    assert post(served, "/api/agent/pause", {"reason": " 培训 "}) == (200, {"ok": True})
    assert agent_state(served) == ("paused", "培训")
    assert post(served, "/api/agent/resume") == (200, {"ok": True})
    assert agent_state(served) == ("available", None)
    status, view = served.client("agent").json("GET", "/api/agent")
    assert status == 200
    assert {k: view["agent"][k] for k in ("id", "name", "state", "extension", "reachable")} == {
        "id": AGENT,
        "name": "张丽",
        "state": "available",
        "extension": AGENT,
        "reachable": True,
    }
    assert (view["call"], view["wrapup"]) == (None, None)
    assert post(served, "/api/agent/logout") == (200, {"ok": True})
    assert agent_state(served) == ("offline", None)


def test_a_login_on_another_desk_and_refusals_are_409_with_the_reason(served: Served) -> None:
    status, answer = post(served, "/api/agent/login", {"extension": "9999"})
    assert (status, answer) == (409, {"error": "unknown extension '9999': no such SIP phone is configured"})
    assert post(served, "/api/agent/login", {"extension": "1002"}) == (200, {"ok": True})
    assert served.controller.acd.extension[AGENT] == "1002"
    status, answer = post(served, "/api/agent/login")
    assert (status, answer) == (409, {"error": "agent 1001 is already logged in on 1002"})
    status, answer = post(served, "/api/agent/wrapup/finish")
    assert (status, answer) == (409, {"error": "agent 1001: cannot end wrap-up while available: only when wrap up"})
    status, answer = post(served, "/api/agent/wrapup/extend", {"seconds": 30})
    assert status == 409 and answer["error"].startswith("agent 1001: cannot extend wrap-up while available")
    assert agent_state(served) == ("available", None)


@pytest.mark.parametrize(
    ("path", "body", "error"),
    [
        ("/api/agent/pause", {}, "缺少 reason (missing reason)"),
        ("/api/agent/pause", {"reason": "   "}, "缺少 reason (missing reason)"),
        ("/api/agent/pause", {"reason": 3}, "缺少 reason (missing reason)"),
        ("/api/agent/pause", {"reason": "长" * 65}, "reason 过长 (longer than 64 characters)"),
        ("/api/agent/login", {"extension": 1002}, "extension 须为文本 (extension must be text)"),
        ("/api/agent/wrapup/extend", {"seconds": 0}, "seconds 须为 1–600 的整数 (an integer 1–600)"),
        ("/api/agent/wrapup/extend", {"seconds": 601}, "seconds 须为 1–600 的整数 (an integer 1–600)"),
        ("/api/agent/wrapup/extend", {"seconds": True}, "seconds 须为 1–600 的整数 (an integer 1–600)"),
        ("/api/agent/wrapup/extend", {"seconds": 1.5}, "seconds 须为 1–600 的整数 (an integer 1–600)"),
        ("/api/agent/summary", {"text": "咨询", "call": 7}, "call 须为文本 (call must be text)"),
        ("/api/agent/summary", {}, "缺少 text (missing text)"),
        ("/api/agent/summary", {"text": "a" * 4001}, "text 过长 (longer than 4000 characters)"),
        ("/api/agent/call/transfer", {}, "缺少 to (missing to)"),
        ("/api/agent/call/consult", {"to": "1" * 41}, "to 过长 (longer than 40 characters)"),
        ("/api/agent/callbacks/abc/call", {}, "回拨编号须为数字 (a number)"),
        ("/api/agent/callbacks/0/call", {}, "回拨编号超出范围 (the callback id is out of range)"),
        ("/api/agent/callbacks/2147483648/call", {}, "回拨编号超出范围 (the callback id is out of range)"),
    ],
)
def test_bad_input_is_a_400_with_the_reason_and_changes_nothing(
    served: Served, path: str, body: dict[str, Any], error: str
) -> None:
    assert post(served, path, body) == (400, {"error": error})
    assert agent_state(served) == ("offline", None)


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/api/agent/dance", 404, "unknown action dance"),
        ("/api/agent/wrapup/forever", 404, "unknown wrap-up action forever"),
        ("/api/agent/call/juggle", 404, "unknown call action juggle"),
        ("/api/agent/call/hold", 409, "agent 1001 is not on a call"),
        ("/api/agent/callbacks/999/call", 409, "callback 999 is not open"),
        ("/api/agent/summary", 409, "agent 1001 has no call to write a summary for"),
    ],
)
def test_unknown_actions_are_404_and_refused_ones_409(served: Served, path: str, status: int, error: str) -> None:
    assert post(served, path, {"text": "小结"}) == (status, {"error": error})


def test_a_summary_of_a_call_the_agent_did_not_serve_is_a_403(served: Served) -> None:
    """The served call (tests/web/served.py) was answered by 1001; 1002's account may not write it."""
    users = UserStore(served.controller.sessions)
    view = users.add("agent1002", "agent", PASSWORD, datetime.now(UTC), agent_id="1002")
    token, opened = served.controller.web_auth.sessions.open(view.id, datetime.now(UTC), "127.0.0.1")
    other = WebClient(served.port, cookie=f"hotline_session={token}", csrf=opened.csrf_token)
    status, answer = other.json("POST", "/api/agent/summary", {"text": "不是我的", "call": "1764560000.7"})
    assert status == 403 and answer["error"].startswith("只能为自己接待的通话写小结")
    record = served.controller.store.get("1764560000.7")
    assert record is not None and record.summary != "不是我的"


def test_an_account_without_an_agent_is_a_409(served: Served, tmp_path: Path) -> None:
    users = UserStore(served.controller.sessions)
    view = users.add(f"nolink{tmp_path.name[-6:]}", "agent", PASSWORD, datetime.now(UTC))
    token, opened = served.controller.web_auth.sessions.open(view.id, datetime.now(UTC), "127.0.0.1")
    client = WebClient(served.port, cookie=f"hotline_session={token}", csrf=opened.csrf_token)
    status, answer = client.json("POST", "/api/agent/login", {})
    assert status == 409 and answer["error"].startswith("此账号未关联坐席")
    assert client.json("GET", "/api/agent")[0] == 409


# ---- the supervisor ------------------------------------------------------------------------------------


def test_a_supervisor_pauses_with_their_name_and_logs_an_agent_out(served: Served) -> None:
    assert post(served, "/api/agent/login") == (200, {"ok": True})
    path = f"/api/supervisor/agents/{AGENT}"
    assert post(served, f"{path}/pause", {}, role="supervisor") == (400, {"error": "缺少 reason (missing reason)"})
    assert post(served, f"{path}/pause", {"reason": "质检"}, role="supervisor") == (200, {"ok": True})
    assert agent_state(served) == ("paused", "质检（supervisor）")
    assert post(served, f"{path}/pause", {"reason": "又一次"}, role="supervisor") == (
        409,
        {"error": "agent 1001: cannot pause while paused: only when available or wrap up"},
    )
    assert post(served, f"{path}/dance", {}, role="supervisor") == (404, {"error": "unknown action dance"})
    assert post(served, f"{path}/logout", {}, role="admin") == (200, {"ok": True})
    assert agent_state(served) == ("offline", None)
    assert post(served, "/api/supervisor/agents/9999/pause", {"reason": "x"}, role="supervisor") == (
        404,
        {"error": "没有这个坐席 (no agent 9999)"},
    )
    # An agent may not supervise.
    assert post(served, f"{path}/logout", {}, role="agent")[0] == 403


def test_the_wallboard_shows_agents_and_queues(served: Served) -> None:
    assert post(served, "/api/agent/login") == (200, {"ok": True})
    status, board = served.client("supervisor").json("GET", "/api/wallboard")
    assert status == 200
    assert [(a["id"], a["state"]) for a in board["agents"]] == [("1001", "available"), ("1002", "offline")]
    assert [(q["name"], q["title"], q["waiting"]) for q in board["queues"]] == [
        ("general", "综合咨询", 0),
        ("complaints", "投诉建议", 0),
    ]

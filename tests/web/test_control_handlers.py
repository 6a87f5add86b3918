"""The controller's command endpoint (cc_core/web/control.py; issue 4 items 1 and 6, issue 11 item
8c): its own tests (issue 12, "First: tests that would catch a broken refactor").

``hotline agent …`` and the harness drive agents through these handlers; here they run in-process
(aiohttp's test server) over the real Acd and CallControl of tests/acd/fake_switch.py: the token,
each agent action and its refusal (409 with the controller's reason), bad bodies (400, 413),
call control and the ACD snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cc_core.acd.callcontrol import CallControl
from cc_core.acd.model import AgentState
from cc_core.switch.events import DialEnded, DialStarted
from cc_core.web.control import MAX_BODY, make_control_app
from tests.acd.fake_switch import World

TOKEN = "control-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def run(tmp_path: Path, scenario: Callable[[TestClient[Any, Any], World], Awaitable[None]]) -> None:
    async def main() -> None:
        world = World(tmp_path)
        app = make_control_app(world.acd, CallControl(world.acd, world.bus), TOKEN)
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            await scenario(client, world)
        finally:
            await client.close()
            await world.close()

    asyncio.run(main())


async def post(client: TestClient[Any, Any], path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
    kw.setdefault("headers", AUTH)
    if body is not None and "data" not in kw:
        kw["json"] = body
    async with client.post(path, **kw) as response:
        return response.status, await response.json()


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_without_the_token_nothing_is_done(tmp_path: Path, header: str | None) -> None:
    async def scenario(client: TestClient[Any, Any], world: World) -> None:
        headers = {} if header is None else {"Authorization": header}
        status, answer = await post(client, "/agents/2000/login", {}, headers=headers)
        assert (status, answer) == (401, {"error": "未授权 (missing or wrong control token)"})
        async with client.get("/acd", headers=headers) as response:
            assert response.status == 401
        assert world.state("2000")[0] is AgentState.OFFLINE

    run(tmp_path, scenario)


def test_an_agent_logs_in_pauses_resumes_and_logs_out(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any], world: World) -> None:
        status, answer = await post(client, "/agents/2000/login", {"extension": "2002"})
        assert status == 200
        assert {k: answer["agent"][k] for k in ("id", "state", "extension", "pause_reason")} == {
            "id": "2000",
            "state": "available",
            "extension": "2002",
            "pause_reason": None,
        }
        status, answer = await post(client, "/agents/2000/pause", {"reason": "午休"})
        assert (status, answer["agent"]["state"], answer["agent"]["pause_reason"]) == (200, "paused", "午休")
        status, answer = await post(client, "/agents/2000/resume")
        assert (status, answer["agent"]["state"]) == (200, "available")
        status, answer = await post(client, "/agents/2000/chat-start")
        assert (status, world.acd.agents["2000"].active_chat) == (409, 0)  # 2000 takes no chats
        assert "already 0 of 0 chats open" in answer["error"]
        status, answer = await post(client, "/agents/2000/logout")
        assert (status, answer["agent"]["state"], answer["agent"]["extension"]) == (200, "offline", None)

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    ("action", "body", "status", "error"),
    [
        ("pause", {}, 400, "缺少 reason (missing reason)"),
        ("pause", {"reason": 5}, 400, "缺少 reason (missing reason)"),
        ("login", {"extension": 2002}, 400, "extension 须为文本 (extension must be text)"),
        ("wrapup/extend", {"seconds": 0}, 400, "seconds 须为 1–600 的整数 (an integer 1–600)"),
        ("wrapup/extend", {"seconds": 601}, 400, "seconds 须为 1–600 的整数 (an integer 1–600)"),
        ("wrapup/extend", {"seconds": "60"}, 400, "seconds 须为 1–600 的整数 (an integer 1–600)"),
        ("dance", {}, 404, "unknown action dance"),
        ("resume", {}, 409, "agent 2000: cannot resume while offline: only when paused"),
        ("wrapup/finish", {}, 409, "agent 2000: cannot end wrap-up while offline: only when wrap up"),
        ("summary", {"text": "咨询"}, 409, "agent 2000 has no call to write a summary for"),
    ],
)
def test_bad_requests_and_refusals_answer_with_the_reason(
    tmp_path: Path, action: str, body: dict[str, Any], status: int, error: str
) -> None:
    async def scenario(client: TestClient[Any, Any], world: World) -> None:
        assert await post(client, f"/agents/2000/{action}", body) == (status, {"error": error})
        assert (world.state("2000"), world.acd.extension) == ((AgentState.OFFLINE, None, 0), {})

    run(tmp_path, scenario)


def test_an_unknown_agent_is_refused(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any], world: World) -> None:
        assert await post(client, "/agents/7777/login", {}) == (409, {"error": "unknown agent '7777'"})

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    ("data", "status", "error"),
    [
        (b"{not json", 400, "请求须为 JSON 对象 (a JSON object)"),
        (b"[1, 2]", 400, "请求须为 JSON 对象 (a JSON object)"),
        (b"\xff\xfe", 400, "请求须为 JSON 对象 (a JSON object)"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_400(tmp_path: Path, data: bytes, status: int, error: str) -> None:
    async def scenario(client: TestClient[Any, Any], world: World) -> None:
        got, answer = await post(client, "/agents/2000/login", data=data, headers=AUTH)
        assert (got, answer["error"][: len(error)]) == (status, error)
        assert world.state("2000")[0] is AgentState.OFFLINE

    run(tmp_path, scenario)


def test_a_body_over_the_limit_is_a_413(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any], world: World) -> None:
        async with client.post("/agents/2000/login", data=b" " * (MAX_BODY + 1), headers=AUTH) as response:
            assert response.status == 413
        assert world.state("2000")[0] is AgentState.OFFLINE

    run(tmp_path, scenario)


def test_call_control_refusals_and_a_hang_up(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any], world: World) -> None:
        assert await post(client, "/agents/2000/call/hold", {}) == (409, {"error": "agent 2000 is not on a call"})
        assert await post(client, "/agents/2000/call/juggle", {}) == (404, {"error": "unknown call action juggle"})
        assert await post(client, "/agents/2000/call/transfer", {}) == (400, {"error": "缺少 to (missing to)"})
        assert await post(client, "/agents/2000/call/transfer", {"to": 1003}) == (
            400,
            {"error": "缺少 to (missing to)"},
        )
        # On a call: the hang-up reaches the switch.
        await world.caller_waits("u.1")
        await post(client, "/agents/2000/login", {})
        await world.settle()
        world.channel("u.1.a", "PJSIP/2000-00000001")
        await world.acd.on_dial_started(DialStarted("u.1", "u.1.a", "PJSIP/2000-00000001", ""))
        await world.acd.on_dial_ended(DialEnded("u.1", "u.1.a", "PJSIP/2000-00000001", "ANSWER"))
        assert await post(client, "/agents/2000/call/hangup", {}) == (200, {"ok": True, "call": "u.1"})
        assert world.switch.actions[-1] == {"Action": "Hangup", "Channel": "PJSIP/2000-00000001"}

    run(tmp_path, scenario)


def test_the_acd_snapshot_masks_callers(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any], world: World) -> None:
        await world.caller_waits("u.1")
        async with client.get("/acd", headers=AUTH) as response:
            assert response.status == 200
            snapshot = await response.json()
        assert sorted(snapshot["agents"]) == ["2000", "2001"]
        assert snapshot["agents"]["2000"]["state"] == "offline"
        [waiting] = snapshot["waiting"]
        assert (waiting["uniqueid"], waiting["queue"], waiting["state"]) == ("u.1", "general", "waiting")
        assert waiting["caller"] != "13800000001" and waiting["caller"].endswith("0001")
        assert snapshot["routed"] == 0

    run(tmp_path, scenario)

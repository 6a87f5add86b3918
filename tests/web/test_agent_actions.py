"""The agents' actions are one table served by both sites (issue 12 item 7;
cc_core/web/agent_actions.py): the workstation (a session, the session's own agent) and the
loopback control endpoint (the control token, the agent in the path; ``hotline agent …``).

Both sites run in-process over the same controller (tests/web/served.py): the same request on
each must be answered the same way, with the same status and the same words, and change the
agent the same way. Before the table, the control site had other names for the wrap-up
(``wrapup-done``), no callback route, and its own checks: a pause reason of any length was taken
there and refused on the workstation, a number as ``extension`` was "missing" on one site and
"not text" on the other, another agent's summary a 409 on one and a 403 on the other.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from cc_core.acd.model import AgentState
from cc_core.cli import AGENT_PATHS, CALL_ACTIONS
from cc_core.web import agent_actions
from cc_core.web.agent_actions import ACTIONS, ActionRefused, find
from cc_core.web.control import make_control_site
from tests.harness.loop import LoopThread
from tests.web.served import AGENT, Served, serve

TOKEN = "control-token-for-the-table-test"


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, int, LoopThread]]:
    """The whole web API and, over the same controller, the control site on a port of its own."""
    loop = LoopThread()
    try:
        with serve(tmp_path_factory.mktemp("actions") / "home", loop) as served:
            controller = served.controller
            site = make_control_site(controller.acd, controller.call_control, TOKEN, controller.health)

            async def start() -> tuple[web.AppRunner, int]:
                runner = web.AppRunner(site, access_log=None)
                await runner.setup()
                tcp = web.TCPSite(runner, "127.0.0.1", 0)
                await tcp.start()
                return runner, runner.addresses[0][1]

            runner, port = loop.run(start())
            try:
                yield served, port, loop
            finally:
                loop.run(runner.cleanup())
    finally:
        loop.close()


@pytest.fixture
def both(sites: tuple[Served, int, LoopThread]) -> Iterator[tuple[Served, int]]:
    """Agent 1001 logged out with its phone registered, before and after each test."""
    served, port, loop = sites
    acd = served.controller.acd

    async def reset() -> None:
        served.controller.view.devices[f"PJSIP/{AGENT}"] = "NOT_INUSE"
        if acd.agents[AGENT].state is not AgentState.OFFLINE:
            await acd.logout(AGENT)

    loop.run(reset())
    yield served, port
    loop.run(reset())


def control(port: int, tail: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/control/agents/{AGENT}/{tail}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def workstation(served: Served, tail: str, body: Any) -> tuple[int, Any]:
    return served.client("agent").json("POST", f"/api/agent/{tail}", body)


def state(served: Served) -> tuple[str, str | None, str | None]:
    agent = served.controller.acd.agents[AGENT]
    return agent.state.value, agent.pause_reason, served.controller.acd.extension.get(AGENT)


OFFLINE = ("offline", None, None)

BAD = [
    ("pause", {}, 400, "缺少 reason (missing reason)"),
    ("pause", {"reason": "  "}, 400, "缺少 reason (missing reason)"),
    ("pause", {"reason": 3}, 400, "缺少 reason (missing reason)"),
    ("pause", {"reason": "长" * 65}, 400, "reason 过长 (longer than 64 characters)"),
    ("login", {"extension": 1002}, 400, "extension 须为文本 (extension must be text)"),
    ("login", {"extension": "1" * 65}, 400, "extension 过长 (longer than 64 characters)"),
    ("summary", {}, 400, "缺少 text (missing text)"),
    ("summary", {"text": "咨询", "call": 7}, 400, "call 须为文本 (call must be text)"),
    ("summary", {"text": "a" * 4001}, 400, "text 过长 (longer than 4000 characters)"),
    ("wrapup/extend", {"seconds": 0}, 400, "seconds 须为 1–600 的整数 (an integer 1–600)"),
    ("wrapup/extend", {"seconds": 601}, 400, "seconds 须为 1–600 的整数 (an integer 1–600)"),
    ("wrapup/extend", {"seconds": True}, 400, "seconds 须为 1–600 的整数 (an integer 1–600)"),
    ("wrapup/extend", {"seconds": "60"}, 400, "seconds 须为 1–600 的整数 (an integer 1–600)"),
    ("call/transfer", {}, 400, "缺少 to (missing to)"),
    ("call/transfer", {"to": 1003}, 400, "缺少 to (missing to)"),
    ("call/consult", {"to": "1" * 41}, 400, "to 过长 (longer than 40 characters)"),
    ("callbacks/abc/call", {}, 400, "回拨编号须为数字 (a number)"),
    ("callbacks/0/call", {}, 400, "回拨编号超出范围 (the callback id is out of range)"),
    ("callbacks/2147483648/call", {}, 400, "回拨编号超出范围 (the callback id is out of range)"),
    ("dance", {}, 404, "unknown action dance"),
    ("wrapup-done", {}, 404, "unknown action wrapup-done"),  # the control site's old name: gone
    ("wrapup/forever", {}, 404, "unknown wrap-up action forever"),
    ("call/juggle", {}, 404, "unknown call action juggle"),
]


@pytest.mark.parametrize(("tail", "body", "status", "error"), BAD, ids=[f"{t}-{i}" for i, (t, *_) in enumerate(BAD)])
def test_both_sites_refuse_the_same_bad_body_with_the_same_words(
    both: tuple[Served, int], tail: str, body: dict[str, Any], status: int, error: str
) -> None:
    served, port = both
    assert control(port, tail, body) == (status, {"error": error})
    assert workstation(served, tail, body) == (status, {"error": error})
    assert state(served) == OFFLINE


# Every action of the table, with a good body, for an agent logged out: what each site answers.
# The control site adds the agent's state after a change of it (``hotline agent`` prints it).
OFF = "agent 1001"
VALID: dict[str, tuple[str, dict[str, Any], int, str | None]] = {
    "login": ("login", {}, 200, None),
    "logout": ("logout", {}, 409, f"{OFF}: cannot log out while offline: only when available or paused or wrap up"),
    "pause": ("pause", {"reason": "培训"}, 409, f"{OFF}: cannot pause while offline: only when available or wrap up"),
    "resume": ("resume", {}, 409, f"{OFF}: cannot resume while offline: only when paused"),
    "chat-start": ("chat-start", {}, 409, f"{OFF}: cannot start a chat while offline: not logged in"),
    "chat-end": ("chat-end", {}, 409, f"{OFF}: cannot end a chat while offline: no chat is open"),
    "summary": ("summary", {"text": "小结"}, 409, "agent 1001 has no call to write a summary for"),
    "wrapup-finish": ("wrapup/finish", {}, 409, f"{OFF}: cannot end wrap-up while offline: only when wrap up"),
    "wrapup-extend": (
        "wrapup/extend",
        {"seconds": 30},
        409,
        f"{OFF}: cannot extend wrap-up while offline: only when wrap up",
    ),
    "transfer": ("call/transfer", {"to": "agent:1002"}, 409, "agent 1001 is not on a call"),
    "consult": ("call/consult", {"to": "queue:general"}, 409, "agent 1001 is not on a call"),
    **{
        verb: (f"call/{verb}", {}, 409, "agent 1001 is not on a call")
        for verb in ("hold", "unhold", "consult-cancel", "hand-over", "conference", "drop-third", "leave", "hangup")
    },
    "call-back": ("callbacks/999/call", {}, 409, "callback 999 is not open"),
}


CONTROL_ONLY = ("chat-start", "chat-end")


def test_every_action_of_the_table_is_served_by_both_sites_alike(
    both: tuple[Served, int], sites: tuple[Served, int, LoopThread]
) -> None:
    served, port = both
    loop = sites[2]
    assert sorted(VALID) == sorted(ACTIONS)
    for name, (tail, body, status, error) in VALID.items():
        answers = []
        for on_control in (True, False):
            got, answer = control(port, tail, body) if on_control else workstation(served, tail, body)
            after = state(served)
            if after != OFFLINE:
                loop.run(served.controller.acd.logout(AGENT))
            answers.append((got, answer.get("error"), after))
        if name in CONTROL_ONLY:
            # The chat counters are the control site's only: the workstation does not know them.
            assert answers[1] == (404, f"unknown action {tail}", OFFLINE), name
        else:
            assert answers[0] == answers[1], name
        got, said, after = answers[0]
        assert got == status, (name, said)
        assert said == error, name
        assert after == (("available", None, AGENT) if name == "login" else OFFLINE), name


def test_the_control_site_answers_with_the_agent_and_the_workstation_with_ok(both: tuple[Served, int]) -> None:
    served, port = both
    status, answer = control(port, "login", {"extension": f" {AGENT} "})
    assert (status, answer["ok"], answer["agent"]["state"], answer["agent"]["extension"]) == (
        200,
        True,
        "available",
        AGENT,
    )
    assert control(port, "wrapup/finish", {})[0] == 409
    assert workstation(served, "pause", {"reason": " 会议 "}) == (200, {"ok": True})
    assert state(served) == ("paused", "会议", AGENT)
    status, answer = control(port, "call/hold", {})
    assert (status, answer) == (409, {"error": "agent 1001 is not on a call"})


def test_the_cli_names_each_action_of_the_table_and_nothing_else() -> None:
    """``hotline agent <command>`` reaches an action for each command, and every action but
    the callback (the workstation's 立即回拨 button) has a command."""
    reached = set()
    for command, path in AGENT_PATHS.items():
        group, _, verb = path.rpartition("/")
        reached.add(find(group, verb).name)
        assert command in (verb, "wrapup-done", "wrapup-more"), command
    assert reached == set(ACTIONS) - {"call-back"}
    assert set(CALL_ACTIONS) == set(agent_actions.verbs("call"))


def test_the_table_refuses_before_acting() -> None:
    """A bad body is refused by the table's validator, the same object both sites call."""
    with pytest.raises(ActionRefused) as refused:
        ACTIONS["wrapup-extend"].validate({"seconds": 1.5})
    assert (refused.value.status, refused.value.message) == (400, "seconds 须为 1–600 的整数 (an integer 1–600)")
    assert ACTIONS["pause"].validate({"reason": " 午休 "}) == {"reason": "午休"}
    assert ACTIONS["login"].validate({"extension": ""}) == {"extension": None}
    assert ACTIONS["call-back"].validate({}, {"id": "12"}) == {"id": 12}
    assert agent_actions.verbs("wrapup") == ["finish", "extend"]

"""The IVR http node against a real local aiohttp server (issue 11 item 8, P2): no cookie shared
between callers, no redirect followed, only hosts of ``[ivr] http_allow``, https unless loopback;
the same rule when a flow is validated, and in the settings file."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web

from cc_core.errors import SettingsError
from cc_core.http_policy import DEFAULT_POLICY, HttpPolicy, parse_allowed
from cc_core.ivr.agi_driver import AgiDriver, Recording
from cc_core.ivr.entry import HotlineEntry
from cc_core.ivr.flow import Flow, Hangup, Http, Node
from cc_core.ivr.loader import load_flows
from cc_core.ivr.runtime import CallContext, Visit, run
from cc_core.settings import load_settings
from cc_core.switch.fastagi import AgiSession
from tests.harness.ports import free_port


class FakeAgi:
    """Just what the driver uses of an AGI session for an http node and a hang-up."""

    uniqueid = "1733300000.1"
    command_timeout = 5.0

    def __init__(self) -> None:
        self.variables: dict[str, str] = {}

    async def set_variable(self, name: str, value: str) -> None:
        self.variables[name] = value


class BusinessSystem:
    """A business system on loopback that records what each request carried."""

    def __init__(self) -> None:
        self.port = free_port()
        self.seen: list[tuple[str, str | None]] = []  # (path, Cookie header)
        app = web.Application()
        app.router.add_get("/login", self.login)
        app.router.add_get("/status", self.status)
        app.router.add_get("/moved", self.moved)
        self.runner = web.AppRunner(app, access_log=None)

    async def login(self, request: web.Request) -> web.Response:
        self.seen.append((request.path, request.headers.get("Cookie")))
        answer = web.json_response({"ok": "1"})
        answer.set_cookie("sid", f"caller-{request.query.get('id', '')}")
        return answer

    async def status(self, request: web.Request) -> web.Response:
        self.seen.append((request.path, request.headers.get("Cookie")))
        return web.json_response({"ok": "1"})

    async def moved(self, request: web.Request) -> web.Response:
        self.seen.append((request.path, request.headers.get("Cookie")))
        raise web.HTTPFound(f"http://127.0.0.1:{self.port}/status")


@asynccontextmanager
async def business_system() -> AsyncIterator[BusinessSystem]:
    system = BusinessSystem()
    await system.runner.setup()
    await web.TCPSite(system.runner, "127.0.0.1", system.port).start()
    try:
        yield system
    finally:
        await system.runner.cleanup()


@asynccontextmanager
async def product_entry(policy: HttpPolicy) -> AsyncIterator[HotlineEntry]:
    """The HotlineEntry of the product, only for its HTTP client (the rest is never used here)."""
    none: Any = None
    entry = HotlineEntry(
        none,
        none,
        none,
        none,
        none,
        number_flows={},
        default_flow="main",
        fallback_queue="general",
        to_inside=str,
        voicemail_dir=Path("/nonexistent"),
        http_policy=policy,
    )
    await entry.start()
    try:
        yield entry
    finally:
        await entry.close()


def http_flow(url: str) -> Flow:
    nodes: list[Node] = [
        Http("query", url=url, send={"id": "caller_number"}, next="ok", on_error="failed"),
        Hangup("ok"),
        Hangup("failed"),
    ]
    return Flow("q", "查询", "query", {n.name: n for n in nodes}, {}, Path("ivr_flows/q.yaml"), "0" * 64)


async def one_call(entry: HotlineEntry, url: str, caller: str = "13800138000") -> list[str]:
    """One caller's call through an http node with the product's client; the nodes it passed."""
    visits: list[str] = []

    async def record_step(visit: Visit) -> None:
        visits.append(visit.kind if visit.kind == "http_failed" else visit.node)

    async def no_message(_recording: Recording) -> int | None:
        return None

    assert entry.http is not None
    driver = AgiDriver(
        cast(AgiSession, FakeAgi()),
        cast(Any, None),
        entry.http,
        to_inside=str,
        voicemail_dir=Path("/nonexistent"),
        record_step=record_step,
        save_message=no_message,
        http_policy=entry.http_policy,
    )
    flows = {"q": http_flow(url)}
    await driver.drive(run(flows, "q", CallContext(caller_number=caller), {}, lambda: cast(Any, None)))
    return visits


def in_loop(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), timeout=20))


def test_a_cookie_set_for_one_caller_is_not_sent_for_the_next() -> None:
    async def scenario() -> tuple[list[str], list[str], list[tuple[str, str | None]]]:
        async with business_system() as system, product_entry(HttpPolicy.of(["localhost"])) as entry:
            # localhost, not 127.0.0.1: aiohttp's cookie jar would refuse cookies of an IP host.
            first = await one_call(entry, f"http://localhost:{system.port}/login", "13800138000")
            second = await one_call(entry, f"http://localhost:{system.port}/status", "13900139000")
            return first, second, system.seen

    first, second, seen = in_loop(scenario)
    assert first == ["query", "ok"] and second == ["query", "ok"]
    assert seen == [("/login", None), ("/status", None)]  # the second caller's request carries no sid


def test_a_redirect_is_not_followed_and_fails_the_node(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> tuple[list[str], list[tuple[str, str | None]]]:
        async with business_system() as system, product_entry(HttpPolicy.of(["127.0.0.1"])) as entry:
            path = await one_call(entry, f"http://127.0.0.1:{system.port}/moved")
            return path, system.seen

    with caplog.at_level(logging.WARNING, logger="cc_core.ivr.agi_driver"):
        path, seen = in_loop(scenario)
    assert path == ["query", "http_failed", "failed"]
    assert seen == [("/moved", None)]  # /status, where it pointed, was never asked
    assert "self-service answered 302 (redirects are not followed)" in caplog.text


def test_a_host_not_allowed_is_never_called(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> tuple[list[str], list[tuple[str, str | None]]]:
        async with business_system() as system:
            policy = HttpPolicy.of([f"127.0.0.1:{system.port + 1}"])  # another port of the same host
            async with product_entry(policy) as entry:
                path = await one_call(entry, f"http://127.0.0.1:{system.port}/status")
            return path, system.seen

    with caplog.at_level(logging.WARNING, logger="cc_core.ivr.agi_driver"):
        path, seen = in_loop(scenario)
    assert path == ["query", "http_failed", "failed"]
    assert seen == []
    assert "is not in [ivr] http_allow" in caplog.text


def test_plain_http_to_a_host_other_than_loopback_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> list[str]:
        # Allowed by name, but over plain http: refused before any connection (192.0.2.x is
        # TEST-NET-1: a connection attempt would hang until the node's timeout).
        async with product_entry(HttpPolicy.of(["192.0.2.10"])) as entry:
            return await one_call(entry, "http://192.0.2.10/status")

    with caplog.at_level(logging.WARNING, logger="cc_core.ivr.agi_driver"):
        assert in_loop(scenario) == ["query", "http_failed", "failed"]
    assert "plain http:// is allowed only to loopback" in caplog.text


def test_the_shipped_demo_api_is_allowed_by_default() -> None:
    assert DEFAULT_POLICY.refusal("http://127.0.0.1:8090/api/pension/status") is None
    assert load_settings(None, env={}).ivr.http_allow == ["127.0.0.1:8090"]


@pytest.mark.parametrize(
    ("allow", "url", "refused"),
    [
        (["127.0.0.1:8090"], "http://127.0.0.1:8090/api/pension/status", None),
        (["127.0.0.1:8090"], "http://127.0.0.1:8091/x", "主机 127.0.0.1:8091 不在允许列表中"),
        (["127.0.0.1"], "http://127.0.0.1:4573/x", None),
        (["localhost"], "http://LOCALHOST:8090/x", None),
        (["::1"], "http://[::1]:8090/x", None),
        (["[::1]:8090"], "http://[::1]:8091/x", "主机 [::1]:8091 不在允许列表中"),
        (["api.example.com"], "https://api.example.com/status", None),
        (["api.example.com:8443"], "https://api.example.com/status", "主机 api.example.com:443 不在允许列表中"),
        (["api.example.com"], "http://api.example.com/status", "须用 https://"),
        (["api.example.com"], "https://evil.example.com/status", "不在允许列表中"),
        (["api.example.com"], "https://user:pw@api.example.com/", "不得包含用户名或密码"),
        (["127.0.0.1:8090"], "http://127.0.0.1:8090@evil.example.com/", "不得包含用户名或密码"),
        (["169.254.169.254"], "http://169.254.169.254/latest/meta-data/", "须用 https://"),
        ([], "http://127.0.0.1:8090/x", "(none)"),
    ],
)
def test_policy(allow: list[str], url: str, refused: str | None) -> None:
    answer = HttpPolicy.of(allow).refusal(url)
    if refused is None:
        assert answer is None
    else:
        assert answer is not None and refused in answer, answer


@pytest.mark.parametrize("entry", ["http://127.0.0.1:8090", "127.0.0.1:8090/api", "", "host:0", "host:70000", "a b"])
def test_bad_allow_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="host"):
        parse_allowed(entry)


def test_a_bad_allow_entry_is_a_settings_error(tmp_path: Path) -> None:
    config = tmp_path / "hotline.toml"
    config.write_text('[ivr]\nhttp_allow = ["127.0.0.1:8090", "https://api.example.com/"]\n', encoding="utf-8")
    with pytest.raises(SettingsError, match="http_allow"):
        load_settings(config, env={})


FLOW = """flow: query
title: 查询
start: ask
nodes:
  ask:
    http:
      url: "{url}"
      next: bye
      on_error: bye
  bye:
    hangup: "再见。"
"""


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://10.1.2.3:8080/api", "主机 10.1.2.3:8080 不在允许列表中"),
        ("http://127.0.0.1:9999/api", "主机 127.0.0.1:9999 不在允许列表中"),
    ],
)
def test_validation_names_the_line_of_a_host_not_allowed(tmp_path: Path, url: str, message: str) -> None:
    (tmp_path / "query.yaml").write_text(FLOW.format(url=url), encoding="utf-8")
    flows, problems = load_flows(tmp_path, http=DEFAULT_POLICY)
    assert flows == {}
    [problem] = problems
    assert (problem.file.name, problem.line, problem.path) == ("query.yaml", 7, "nodes.ask.http.url")
    assert message in problem.message
    # The same flow, with the host allowed, loads.
    flows, problems = load_flows(tmp_path, http=HttpPolicy.of(["10.1.2.3", "127.0.0.1"]))
    assert problems == [] and list(flows) == ["query"]

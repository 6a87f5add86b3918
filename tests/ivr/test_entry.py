"""The hotline's FastAGI entry, call by call (T6; issue 12: ivr/entry.py had no test of its own).

:class:`cc_core.ivr.entry.HotlineEntry` runs on a real AgiSession whose other end is a scripted
Asterisk (:class:`tests.ivr.fake_agi.FakeAsterisk`), with the real call lifecycle and recording
stores that note every write in order. The tests check the exact call record a call leaves —
arrival, flow and version, each node, the menu keys, the survey score, how it left the IVR or
where it hung up — that keyed-in values (ID-card numbers) are written nowhere, that the dialed
number picks the flow, that a reload mid-call does not change the call's flows, and that a
missing flow or an unknown AGI script sends the caller to the dialplan's safety net.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar, cast

import pytest
from aiohttp import web

from cc_core.bus import EventBus
from cc_core.calls.lifecycle import CallLifecycle
from cc_core.http_policy import HttpPolicy
from cc_core.ivr.entry import HotlineEntry, _exit, _node
from cc_core.ivr.flow import (
    Collect,
    Flow,
    Goto,
    Hangup,
    Http,
    Menu,
    Prompt,
    Queue,
    Survey,
    TimeSwitch,
    Transfer,
    Voicemail,
)
from cc_core.ivr.runtime import Visit
from cc_core.switch.fastagi import AgiHangup
from tests.harness.ports import free_port
from tests.ivr.fake_agi import HEADERS, FakeAsterisk, Prompts, agi_session, in_loop, write_wav
from tests.ivr.runtime_script import flow

T = TypeVar("T")
UID = HEADERS["agi_uniqueid"]
CALLER = HEADERS["agi_callerid"]
ID_CARD = "11010519491231002X"
MENU = Prompt(text="查询请按1，留言请按2，转接请按3。", name="menu")
ASK = Prompt(text="请输入身份证号码。", name="ask")
FIRST_KEY = "200 result={} endpos=1000"  # a key that interrupted the prompt


def key(char: str) -> str:
    return FIRST_KEY.format(ord(char))


class RecordingStore:
    """The call store's write methods the entry and the lifecycle use; each call is noted, with
    its time checked (timezone-aware, not before the test began) and left out."""

    def __init__(self) -> None:
        self.writes: list[tuple[Any, ...]] = []
        self.started = datetime.now(UTC)

    def _note(self, name: str, *args: Any) -> bool:
        times = [a for a in args if isinstance(a, datetime)]
        assert len(times) == 1 and times[0].tzinfo is not None and times[0] >= self.started, args
        self.writes.append((name, *(a for a in args if not isinstance(a, datetime))))
        return True

    def call_arrived(self, *args: Any) -> int:
        self._note("call_arrived", *args)
        return 1

    def call_ended(self, *args: Any) -> bool:
        return self._note("call_ended", *args)

    def set_flow(self, *args: Any) -> bool:
        return self._note("set_flow", *args)

    def add_step(self, *args: Any) -> bool:
        return self._note("add_step", *args)

    def add_digits(self, *args: Any) -> bool:
        return self._note("add_digits", *args)

    def set_survey(self, *args: Any) -> bool:
        return self._note("set_survey", *args)

    def set_ivr_exit(self, *args: Any) -> bool:
        return self._note("set_ivr_exit", *args)


class RecordingVoicemails:
    def __init__(self) -> None:
        self.added: list[tuple[Any, ...]] = []

    def add(self, *args: Any) -> int:
        times = [a for a in args if isinstance(a, datetime)]
        assert len(times) == 1 and times[0].tzinfo is not None, args
        self.added.append(tuple(a for a in args if not isinstance(a, datetime)))
        return 7


class Registry:
    """What the entry reads of the flow registry: a snapshot of the flows, and the calendars."""

    def __init__(self, flows: Mapping[str, Flow], calendars: Mapping[str, Any] | None = None) -> None:
        self.flows: Mapping[str, Flow] = MappingProxyType(dict(flows))
        self.calendars = calendars or {}
        self.snapshots = 0

    def snapshot(self) -> Mapping[str, Flow]:
        self.snapshots += 1
        return self.flows


class Hotline:
    """An entry with recording stores, and the writes that went through its ``db``."""

    def __init__(self, tmp_path: Path, registry: Registry, **options: Any) -> None:
        self.store = RecordingStore()
        self.voicemails = RecordingVoicemails()
        self.via_db: list[str] = []
        self.registry = registry

        async def db(fn: Callable[..., T], /, *args: Any) -> T:
            self.via_db.append(fn.__name__)
            return fn(*args)

        lifecycle = CallLifecycle(cast(Any, self.store), cast(Any, None), EventBus())
        defaults: dict[str, Any] = {
            "number_flows": {"12333": "main"},
            "default_flow": "main",
            "fallback_queue": "general",
            "to_inside": lambda path: f"/chroot{path}",
            "voicemail_dir": tmp_path / "voicemail",
            "db": db,
        }
        self.entry = HotlineEntry(
            cast(Any, self.store),
            cast(Any, self.voicemails),
            lifecycle,
            cast(Any, registry),
            cast(Any, Prompts(tmp_path, {})),
            **(defaults | options),
        )


def call(hotline: Hotline, fake: FakeAsterisk, *, start: bool = True, **headers: str) -> bool:
    """One call through the entry; whether it ended in AgiHangup (the caller hung up), which
    the entry re-raises for the FastAGI server."""

    async def scenario() -> bool:
        if start:
            await hotline.entry.start()
        try:
            async with agi_session(fake, **headers) as session:
                await hotline.entry(session)
        except AgiHangup:
            return True
        finally:
            await hotline.entry.close()
        return False

    return in_loop(scenario)


def entry_log(caplog: pytest.LogCaptureFixture, *fields: str) -> list[tuple[Any, ...]]:
    """The entry's log lines: each message and the fields named."""
    return [
        (r.getMessage(), *(getattr(r, f, None) for f in fields))
        for r in caplog.records
        if r.name == "cc_core.ivr.entry"
    ]


def main_flow() -> Flow:
    return flow(
        "main",
        "menu",
        Menu("menu", prompt=MENU, choices={"1": "ask", "2": "vm", "3": "out"}, retries=1, on_fail="q"),
        Collect("ask", prompt=ASK, check="id_card", store="id_card", retries=1, next="survey", on_fail="q"),
        Survey("survey", next="q"),
        Queue("q", queue="pension", skill="养老"),
        Voicemail("vm", prompt=Prompt(text="请留言。", name="vm"), next="bye"),
        Hangup("bye"),
        Transfer("out", number="95511"),
    )


def step(node: str, kind: str, detail: dict[str, Any] | None = None, flow_name: str = "main") -> tuple[Any, ...]:
    return ("add_step", UID, flow_name, node, kind, detail or {})


ARRIVED = ("call_arrived", UID, "1733300000.41", CALLER, "12333", "PJSIP/carrier-0000002a")


def test_a_call_through_menu_collection_and_survey_to_a_queue(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    main = main_flow()
    hotline = Hotline(tmp_path, Registry({"main": main}))
    fake = FakeAsterisk(
        {
            "STREAM FILE": [key("1"), key("4")],
            "GET DATA": ["200 result=11010519491231002*"],
        }
    )
    with caplog.at_level(logging.DEBUG):
        assert call(hotline, fake) is False
    assert hotline.store.writes == [
        ARRIVED,
        ("set_flow", UID, "main", main.version),
        step("menu", "menu"),
        ("add_digits", UID, "1"),
        step("ask", "collect"),
        step("survey", "survey"),
        ("add_digits", UID, "4"),
        step("survey", "survey_answer", {"score": "4", "level": "不满意"}),
        ("set_survey", UID, 4),
        step("q", "queue"),
        ("set_ivr_exit", UID, "queue", "pension"),
    ]
    # Every write but the arrival (the lifecycle's) went through the entry's db runner.
    assert hotline.via_db == [w[0] for w in hotline.store.writes[1:]]
    assert fake.commands[-5:] == [
        'SET VARIABLE HOTLINE_QUEUE "pension"',
        'SET VARIABLE HOTLINE_SKILL "养老"',
        'SET VARIABLE HOTLINE_PRIORITY "0"',
        'SET VARIABLE HOTLINE_REQUESTED_AGENT ""',
        'SET VARIABLE HOTLINE_NEXT "queue"',
    ]
    # The ID-card number the caller keyed is in no write and no log line.
    assert not any(ID_CARD[:17] in repr(w) for w in hotline.store.writes)
    assert ID_CARD[:17] not in caplog.text
    assert entry_log(caplog, "uniqueid", "caller", "flow") == [("hotline call", UID, CALLER, "main")]
    assert hotline.registry.snapshots == 1


def test_a_survey_without_an_answer_sets_no_score(tmp_path: Path) -> None:
    hotline = Hotline(
        tmp_path, Registry({"main": flow("main", "s", Survey("s", next="q"), Queue("q", queue="general"))})
    )
    call(hotline, FakeAsterisk())
    assert [w[0] for w in hotline.store.writes] == [
        "call_arrived",
        "set_flow",
        "add_step",
        "add_step",
        "add_step",
        "set_ivr_exit",
    ]
    assert hotline.store.writes[3] == step("s", "survey_answer", {"score": None, "level": None})


def test_the_dialed_number_picks_the_flow_else_the_default(tmp_path: Path) -> None:
    flows = {
        "main": flow("main", "a", Hangup("a")),
        "pension": flow("pension", "b", Transfer("b", number="95511")),
    }
    options = {"number_flows": {"12333": "main", "12345": "pension"}, "default_flow": "pension"}
    for dialed, expected in [("12333", "main"), ("12345", "pension"), ("99999", "pension")]:
        hotline = Hotline(tmp_path, Registry(flows), **options)
        call(hotline, FakeAsterisk(), agi_extension=dialed)
        assert hotline.store.writes[1] == ("set_flow", UID, expected, "0" * 64)
    exits = {"main": ("set_ivr_exit", UID, "hangup", ""), "pension": ("set_ivr_exit", UID, "transfer", "95511")}
    assert hotline.store.writes[-1] == exits["pension"]
    hotline = Hotline(tmp_path, Registry(flows), **options)
    call(hotline, FakeAsterisk())
    assert hotline.store.writes[-1] == exits["main"]


def test_a_reload_during_the_call_does_not_change_its_flows(tmp_path: Path) -> None:
    old = flow("main", "menu", Menu("menu", prompt=MENU, choices={"1": "bye"}, on_fail="bye"), Hangup("bye"))
    new = flow("main", "menu", Menu("menu", prompt=MENU, choices={"1": "q"}, on_fail="q"), Queue("q", queue="general"))
    registry = Registry({"main": old})

    def reload_on_first_prompt(command: str) -> None:
        if command.startswith("STREAM FILE"):
            registry.flows = MappingProxyType({"main": new})

    hotline = Hotline(tmp_path, registry)
    call(hotline, FakeAsterisk({"STREAM FILE": [key("1")]}, reload_on_first_prompt))
    assert hotline.store.writes[-2:] == [step("bye", "hangup"), ("set_ivr_exit", UID, "hangup", "")]


def test_a_caller_who_hangs_up_is_abandoned_at_the_last_node(tmp_path: Path) -> None:
    hotline = Hotline(tmp_path, Registry({"main": main_flow()}))
    fake = FakeAsterisk({"STREAM FILE": [key("1")], "GET DATA": ["HANGUP"]})
    assert call(hotline, fake) is True
    assert hotline.store.writes[-2:] == [step("ask", "collect"), ("set_ivr_exit", UID, "abandoned", "ask")]
    assert not any(c.startswith("SET VARIABLE HOTLINE_NEXT") for c in fake.commands)
    hotline = Hotline(tmp_path, Registry({"main": main_flow()}))
    assert call(hotline, FakeAsterisk({"STREAM FILE": ["HANGUP"]})) is True
    assert hotline.store.writes[-2:] == [step("menu", "menu"), ("set_ivr_exit", UID, "abandoned", "menu")]


def test_a_message_is_saved_with_the_node_it_was_left_at(tmp_path: Path) -> None:
    after = flow("after", "vm", Voicemail("vm", prompt=Prompt(text="请留言。", name="vm"), next="bye"), Hangup("bye"))
    main = flow("main", "menu", Menu("menu", prompt=MENU, choices={"2": "go"}, on_fail="go"), Goto("go", flow="after"))

    def record(command: str) -> None:
        if command.startswith("RECORD FILE "):
            write_wav(Path(command.split()[2].removeprefix("/chroot") + ".wav"), 2.0)

    hotline = Hotline(tmp_path, Registry({"main": main, "after": after}))
    call(hotline, FakeAsterisk({"STREAM FILE": [key("2")]}, record))
    [(uid, caller, flow_name, node, file, duration)] = hotline.voicemails.added
    assert (uid, caller, flow_name, node, duration) == (UID, CALLER, "after", "vm", 2.0)
    assert file.startswith(f"/chroot{tmp_path}/voicemail/") and file.endswith(".wav")
    assert hotline.store.writes[-1] == ("set_ivr_exit", UID, "hangup", "")


def test_a_flow_that_is_not_loaded_sends_the_caller_to_the_safety_net(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cc_core.ivr.entry")
    hotline = Hotline(tmp_path, Registry({"other": main_flow()}))
    fake = FakeAsterisk()
    call(hotline, fake)
    assert hotline.store.writes == [ARRIVED, ("set_ivr_exit", UID, "fallback", "main")]
    assert fake.commands == ['SET VARIABLE HOTLINE_NEXT "fallback"']
    assert entry_log(caplog, "flow") == [
        ("hotline call", "main"),
        ("no loadable IVR flow; caller goes to the safety net", "main"),
    ]


def test_an_unknown_agi_script_is_sent_to_the_safety_net_unrecorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hotline = Hotline(tmp_path, Registry({"main": main_flow()}))
    fake = FakeAsterisk()
    call(hotline, fake, agi_network_script="wait")
    assert hotline.store.writes == []
    assert fake.commands == ['SET VARIABLE HOTLINE_NEXT "fallback"']
    assert entry_log(caplog, "script") == [("unknown AGI script", "wait")]
    # The script is the path without a query or slashes.
    hotline = Hotline(tmp_path, Registry({"main": flow("main", "a", Hangup("a"))}))
    call(hotline, FakeAsterisk(), agi_network_script="/hotline?x=1")
    assert hotline.store.writes[-1] == ("set_ivr_exit", UID, "hangup", "")


@pytest.mark.parametrize("linkedid", ["", None])
def test_a_call_without_a_linkedid_is_its_own(tmp_path: Path, linkedid: str | None) -> None:
    hotline = Hotline(tmp_path, Registry({"main": flow("main", "a", Hangup("a"))}))
    fake = FakeAsterisk()

    async def scenario() -> None:
        await hotline.entry.start()
        async with agi_session(fake) as session:
            if linkedid is None:
                del session.headers["agi_linkedid"]
            else:
                session.headers["agi_linkedid"] = linkedid
            await hotline.entry(session)
        await hotline.entry.close()

    in_loop(scenario)
    assert hotline.store.writes[0] == ("call_arrived", UID, UID, CALLER, "12333", "PJSIP/carrier-0000002a")


def test_the_clock_the_calendars_and_the_fallback_queue_are_the_entry_s(tmp_path: Path) -> None:
    asked: list[datetime] = []

    class Calendar:
        def state_at(self, when: datetime) -> str:
            asked.append(when)
            return "holiday"

    when = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)
    flows = {
        "main": flow(
            "main",
            "t",
            TimeSwitch("t", calendar="beijing", open="q", closed="q", holiday="loop"),
            Goto("loop", target="loop"),
            Queue("q", queue="general"),
        )
    }
    hotline = Hotline(tmp_path, Registry(flows, {"beijing": Calendar()}), clock=lambda: when, fallback_queue="overflow")
    fake = FakeAsterisk()
    call(hotline, fake)
    assert asked == [when]
    assert hotline.store.writes[3] == step("t", "decided", {"state": "holiday"})
    assert hotline.store.writes[-2:] == [step("loop", "step_limit"), ("set_ivr_exit", UID, "queue", "overflow")]
    assert 'SET VARIABLE HOTLINE_QUEUE "overflow"' in fake.commands


def test_an_entry_that_was_not_started_says_so(tmp_path: Path) -> None:
    hotline = Hotline(tmp_path, Registry({"main": flow("main", "a", Hangup("a"))}))
    with pytest.raises(AssertionError, match=r"^HotlineEntry\.start\(\) was not called$"):
        call(hotline, FakeAsterisk(), start=False)


def test_the_http_client_keeps_no_cookies_and_ignores_proxy_settings(tmp_path: Path) -> None:
    hotline = Hotline(tmp_path, Registry({}))

    async def scenario() -> tuple[str, bool, bool]:
        await hotline.entry.start()
        http = hotline.entry.http
        assert http is not None
        jar, trust = type(http.cookie_jar).__name__, http.trust_env
        await hotline.entry.close()
        return jar, trust, http.closed

    assert in_loop(scenario) == ("DummyCookieJar", False, True)


@pytest.mark.parametrize(("watchdog", "slack"), [(None, 15), (40.0, 40)])
def test_the_watchdog_slack_is_the_entry_s(tmp_path: Path, watchdog: float | None, slack: int) -> None:
    options = {} if watchdog is None else {"watchdog": watchdog}
    hotline = Hotline(tmp_path, Registry({"main": flow("main", "a", Hangup("a"))}), **options)
    fake = FakeAsterisk()
    call(hotline, fake)
    assert fake.commands == [f'SET VARIABLE TIMEOUT(absolute) "{slack}"', 'SET VARIABLE HOTLINE_NEXT "hangup"']


def test_the_caller_s_numbers_reach_the_business_system_the_policy_allows(tmp_path: Path) -> None:
    seen: list[dict[str, str]] = []

    async def status(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.json_response({"ok": "1"})

    port = free_port()
    url = f"http://127.0.0.1:{port}/status"
    flows = {
        "main": flow(
            "main",
            "ask",
            Http("ask", url=url, send={"tel": "caller_number", "dn": "dialed_number"}, next="ok", on_error="failed"),
            Hangup("ok"),
            Hangup("failed"),
        )
    }

    async def scenario(hotline: Hotline) -> None:
        app = web.Application()
        app.router.add_get("/status", status)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await hotline.entry.start()
        try:
            async with agi_session(FakeAsterisk()) as session:
                await hotline.entry(session)
        finally:
            await hotline.entry.close()
            await runner.cleanup()

    allowed = Hotline(tmp_path, Registry(flows), http_policy=HttpPolicy.of([f"127.0.0.1:{port}"]))
    in_loop(lambda: scenario(allowed))
    assert seen == [{"tel": CALLER, "dn": "12333"}]
    assert allowed.store.writes[-2:] == [step("ok", "hangup"), ("set_ivr_exit", UID, "hangup", "")]
    # The default policy allows only the shipped demo API (127.0.0.1:8090): this port is refused.
    refused = Hotline(tmp_path, Registry(flows))
    in_loop(lambda: scenario(refused))
    assert seen == [{"tel": CALLER, "dn": "12333"}]
    assert refused.store.writes[-3:] == [
        step("ask", "http_failed"),
        step("failed", "hangup"),
        ("set_ivr_exit", UID, "hangup", ""),
    ]


def test_exit_and_node_helpers_for_what_the_runtime_never_yields() -> None:
    # The runtime only ends in a queue, a number or an end, and always visits a node first:
    # these are the answers for anything else, kept so a new final step is not taken for one.
    assert _exit(Visit("main", "x", "play")) == ("fallback", "")
    assert _node([]) == ""
    assert _node([Visit("main", "x", "play")]) == "x"

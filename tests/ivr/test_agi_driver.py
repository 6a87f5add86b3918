"""The FastAGI driver on a scripted Asterisk (T6, T8, T11; issue 12: it had no test of its own).

Each test drives :class:`cc_core.ivr.agi_driver.AgiDriver` with a few runtime steps over a
real AgiSession whose other end is :class:`tests.ivr.fake_agi.FakeAsterisk`, and compares the
exact AGI command lines it sent: the watchdog (``TIMEOUT(absolute)``) moved before each step by
the step's length, prompts played interruptibly for menus, ``WAIT FOR DIGIT`` after a prompt
nobody interrupted, ``GET DATA`` for digits, ``RECORD FILE`` for voicemail, and the channel
variables that tell the dialplan how the call leaves the IVR.
"""

from __future__ import annotations

import asyncio
import json
import re
import struct
import time
from collections.abc import AsyncIterator, Generator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web

from cc_core.http_policy import HttpPolicy
from cc_core.ivr.agi_driver import MAX_ANSWER_BYTES, AgiDriver, Recording, _wav_seconds
from cc_core.ivr.flow import Prompt
from cc_core.ivr.runtime import (
    AskDigits,
    AskKey,
    End,
    Fetch,
    RecordMessage,
    Say,
    Step,
    ToNumber,
    ToQueue,
    Visit,
)
from cc_core.switch.fastagi import AgiHangup, AgiSession
from tests.harness.ports import free_port
from tests.ivr.fake_agi import CLOSE, FakeAsterisk, Prompts, agi_session, in_loop, write_wav

HELLO = Prompt(text="您好。", name="hello")
MENU = Prompt(text="查询请按1。", name="menu")
ASK = Prompt(text="请输入身份证号码。", name="ask")
VM = Prompt(text="请留言。", name="vm")
BYE = Prompt(text="再见。", name="bye")
LENGTHS = {"hello": 1.0, "menu": 3.0, "ask": 2.0, "vm": 4.0, "bye": 1.0}
ALL_KEYS = '"0123456789*#"'


def inside(path: Path) -> str:
    """The switch's view of a host path (the chroot's)."""
    return f"/chroot{path}"


def host_of(inside_path: str) -> Path:
    return Path(inside_path.removeprefix("/chroot"))


def timeout_to(seconds: int) -> str:
    return f'SET VARIABLE TIMEOUT(absolute) "{seconds}"'


def said(folder: Path, name: str, keys: str = '""') -> str:
    return f"STREAM FILE /chroot{folder}/prompts/{name} {keys}"


class Call:
    """One driven call: the driver, what it reported, what the runtime got back."""

    def __init__(self, tmp_path: Path, session: AgiSession, **options: Any) -> None:
        self.tmp_path = tmp_path
        self.prompts = Prompts(tmp_path, LENGTHS)
        self.visits: list[Visit] = []
        self.keys: list[str] = []
        self.messages: list[Recording] = []
        self.answers: list[Any] = []
        self.closed = False

        async def record_step(visit: Visit) -> None:
            self.visits.append(visit)

        async def record_key(key: str) -> None:
            self.keys.append(key)

        async def save_message(recording: Recording) -> int | None:
            self.messages.append(recording)
            return 12

        defaults: dict[str, Any] = {
            "to_inside": inside,
            "voicemail_dir": tmp_path / "voicemail",
            "record_step": record_step,
            "save_message": save_message,
            "record_key": record_key,
        }
        http = options.pop("http", cast(Any, None))
        self.driver = AgiDriver(session, self.prompts, http, **(defaults | options))

    def steps(self, *steps: Step) -> Generator[Step, Any, None]:
        """The runtime's side: yields ``steps``, keeps each answer, notes being closed."""
        try:
            for step in steps:
                self.answers.append((yield step))
        finally:
            self.closed = True

    async def drive(self, *steps: Step) -> Step:
        return await self.driver.drive(self.steps(*steps))


def drive(
    tmp_path: Path, fake: FakeAsterisk, *steps: Step, command_timeout: float = 5.0, **options: Any
) -> tuple[Step, Call]:
    async def scenario() -> tuple[Step, Call]:
        async with agi_session(fake, command_timeout) as session:
            call = Call(tmp_path, session, **options)
            return await call.drive(*steps), call

    return in_loop(scenario)


# ---- plain steps -----------------------------------------------------------------------------


def test_a_visit_is_recorded_and_sends_nothing(tmp_path: Path) -> None:
    fake = FakeAsterisk()
    visit = Visit("main", "welcome", "play")
    final, call = drive(tmp_path, fake, visit, End(None))
    assert (final, call.visits, call.answers, call.closed) == (End(None), [visit], [None], True)
    assert fake.commands == [timeout_to(15), 'SET VARIABLE HOTLINE_NEXT "hangup"']


def test_a_prompt_moves_the_watchdog_by_its_length_then_plays(tmp_path: Path) -> None:
    fake = FakeAsterisk()
    final, call = drive(tmp_path, fake, Say(HELLO), Say(MENU), End(BYE))
    assert final == End(BYE)
    assert fake.commands == [
        timeout_to(16),  # 1 s of prompt + 15 s of slack
        said(tmp_path, "hello"),
        timeout_to(18),
        said(tmp_path, "menu"),
        timeout_to(15),
        timeout_to(16),
        said(tmp_path, "bye"),
        'SET VARIABLE HOTLINE_NEXT "hangup"',
    ]
    assert call.prompts.resolved == [HELLO, MENU, BYE]
    assert call.answers == [None, None]


def test_the_watchdog_slack_is_a_setting_and_never_below_one_second(tmp_path: Path) -> None:
    fake = FakeAsterisk()
    drive(tmp_path, fake, Say(Prompt(text="缺文件", name="missing")), End(None), watchdog=0.0)
    # A prompt file that cannot be read counts 0 s: the deadline is still 1 s, not 0 (no limit).
    assert fake.commands[0] == timeout_to(1)
    fake = FakeAsterisk()
    drive(tmp_path, fake, Say(MENU), End(None), watchdog=40.0)
    assert fake.commands[0] == timeout_to(43)


def test_an_answer_read_back_is_rendered_from_its_text(tmp_path: Path) -> None:
    fake = FakeAsterisk()
    text = "您的养老金已发放。"
    _final, call = drive(tmp_path, fake, Say(Prompt(text=text, name="<answer>")), End(None))
    assert call.prompts.rendered == [text] and call.prompts.resolved == []
    assert fake.commands[:2] == [timeout_to(17), f'STREAM FILE /chroot{tmp_path}/tts/answer ""']
    # A prompt that only shares the name is a prompt file like any other.
    fake = FakeAsterisk()
    _final, call = drive(tmp_path, fake, Say(Prompt(file="a.wav", name="<answer>")), End(None))
    assert call.prompts.rendered == [] and call.prompts.resolved == [Prompt(file="a.wav", name="<answer>")]


# ---- keys and digits -------------------------------------------------------------------------


def test_a_key_pressed_during_the_menu_prompt_is_the_answer(tmp_path: Path) -> None:
    fake = FakeAsterisk({"STREAM FILE": ["200 result=49 endpos=4000"]})
    _final, call = drive(tmp_path, fake, AskKey(MENU, 5.0, "12"), End(None))
    assert call.answers == ["1"] and call.keys == ["1"]
    assert fake.commands == [
        timeout_to(23),  # 3 s of prompt + 5 s of waiting + 15
        said(tmp_path, "menu", ALL_KEYS),  # any key interrupts, also one with no choice
        timeout_to(15),
        'SET VARIABLE HOTLINE_NEXT "hangup"',
    ]


def test_a_key_after_the_prompt_is_waited_for(tmp_path: Path) -> None:
    fake = FakeAsterisk({"WAIT FOR DIGIT": ["200 result=42"]})
    _final, call = drive(tmp_path, fake, AskKey(MENU, 6.5, "12*"), End(None))
    assert call.answers == ["*"] and call.keys == ["*"]
    assert fake.commands[:3] == [timeout_to(24), said(tmp_path, "menu", ALL_KEYS), "WAIT FOR DIGIT 6500"]


def test_waiting_for_a_key_may_take_longer_than_one_command(tmp_path: Path) -> None:
    # The wait is the menu's timeout plus the session's command deadline, not the deadline alone:
    # a caller who presses after 1.5 s of a 5 s wait is heard, though commands time out at 1 s
    # (the deadline is 6 s, so a loaded machine has 4.5 s of slack).
    fake = FakeAsterisk({"WAIT FOR DIGIT": ["200 result=49"]}, delays={"WAIT FOR DIGIT": 1.5})
    _final, call = drive(tmp_path, fake, AskKey(MENU, 5.0, "1"), End(None), command_timeout=1.0)
    assert call.answers == ["1"]


def test_no_key_is_an_empty_answer_and_not_recorded(tmp_path: Path) -> None:
    fake = FakeAsterisk()
    _final, call = drive(tmp_path, fake, AskKey(MENU, 5.0, "12"), AskKey(MENU, 5.0, "12"), End(None))
    assert call.answers == ["", ""] and call.keys == []
    assert fake.commands.count("WAIT FOR DIGIT 5000") == 2


def test_a_key_is_answered_without_a_key_recorder(tmp_path: Path) -> None:
    fake = FakeAsterisk({"STREAM FILE": ["200 result=51 endpos=100"]})
    _final, call = drive(tmp_path, fake, AskKey(MENU, 5.0, "3"), End(None), record_key=None)
    assert call.answers == ["3"]


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"WAIT FOR DIGIT": ["200 result=-1"]}, "caller hung up while choosing"),
        ({"STREAM FILE": ["200 result=-1 endpos=0"]}, "STREAM failed: channel hung up"),
        ({"STREAM FILE": ["HANGUP"]}, "caller hung up"),
        ({"STREAM FILE": [CLOSE]}, "the switch closed the AGI session"),
    ],
)
def test_a_hang_up_while_choosing_ends_the_drive(tmp_path: Path, answers: dict[str, list[str]], message: str) -> None:
    fake = FakeAsterisk(answers)

    async def scenario() -> Call:
        async with agi_session(fake) as session:
            call = Call(tmp_path, session)
            with pytest.raises(AgiHangup, match=f"^{re.escape(message)}$"):
                await call.drive(AskKey(MENU, 5.0, "12"), End(None))
            return call

    call = in_loop(scenario)
    assert call.keys == [] and call.answers == []
    assert not any(c.startswith("SET VARIABLE HOTLINE_NEXT") for c in fake.commands)


def test_digits_are_collected_with_get_data(tmp_path: Path) -> None:
    fake = FakeAsterisk({"GET DATA": ["200 result=11010519491231002* (timeout)", "200 result=123"]})
    _final, call = drive(tmp_path, fake, AskDigits(ASK, 8.0, 18), AskDigits(ASK, 5.0, 6), End(None))
    assert call.answers == ["11010519491231002*", "123"]
    assert call.keys == []  # keyed values (ID cards) are not recorded as menu keys
    assert fake.commands[:4] == [
        timeout_to(169),  # 2 s of prompt + 8 s for each of 18 keys and the # + 15
        f"GET DATA /chroot{tmp_path}/prompts/ask 8000 18",
        timeout_to(52),
        f"GET DATA /chroot{tmp_path}/prompts/ask 5000 6",
    ]


def test_no_digits_is_an_empty_answer_and_a_hang_up_ends_the_drive(tmp_path: Path) -> None:
    fake = FakeAsterisk()
    _final, call = drive(tmp_path, fake, AskDigits(ASK, 8.0, 4), End(None))
    assert call.answers == [""]
    fake = FakeAsterisk({"GET DATA": ["200 result=-1"]})

    async def scenario() -> None:
        async with agi_session(fake) as session:
            with pytest.raises(AgiHangup, match="GET DATA"):
                await Call(tmp_path, session).drive(AskDigits(ASK, 8.0, 4), End(None))

    in_loop(scenario)


# ---- voicemail -------------------------------------------------------------------------------


def recorder(seconds: float | None) -> Any:
    """A RECORD FILE that leaves a WAV of ``seconds`` where the switch was told (None: no file)."""

    def on_command(command: str) -> None:
        if command.startswith("RECORD FILE ") and seconds is not None:
            write_wav(host_of(command.split()[2] + ".wav"), seconds)

    return on_command


def test_a_message_is_recorded_and_saved(tmp_path: Path) -> None:
    fake = FakeAsterisk({"RECORD FILE": ["200 result=35 (dtmf) endpos=24000"]}, recorder(3.0))
    before = datetime.now(UTC)
    _final, call = drive(tmp_path, fake, RecordMessage(VM, 60), End(None))
    after = datetime.now(UTC)
    assert call.answers == [12]
    [message] = call.messages
    record = fake.commands[2]
    match = re.fullmatch(r'RECORD FILE (\S+) wav "#" 60000 BEEP s=5', record)
    assert match is not None, record
    host = host_of(match.group(1))
    # voicemail/<UTC day>/<uniqueid with _ for .>-<HHMMSSffffff>
    assert host.parent.parent == tmp_path / "voicemail"
    assert host.parent.name in {before.strftime("%Y-%m-%d"), after.strftime("%Y-%m-%d")}
    assert re.fullmatch(r"1733300000_42-\d{12}", host.name), host.name
    assert message == Recording(f"/chroot{host}.wav", host.parent / f"{host.name}.wav", 3.0)
    assert message.file_host.exists()
    assert fake.commands[:2] == [timeout_to(79), said(tmp_path, "vm")]  # 4 s + 60 s + 15


def test_two_messages_on_one_day_are_two_files(tmp_path: Path) -> None:
    fake = FakeAsterisk(on_command=recorder(1.0))
    _final, call = drive(tmp_path, fake, RecordMessage(VM, 30), RecordMessage(VM, 30), End(None))
    assert call.answers == [12, 12]
    first, second = (m.file_host for m in call.messages)
    assert first != second and first.parent == second.parent and first.exists() and second.exists()


def test_a_recording_may_take_longer_than_one_command(tmp_path: Path) -> None:
    # 1.5 s of recording against commands that time out at 1 s; the deadline is 5 + 1 s.
    fake = FakeAsterisk(on_command=recorder(1.0), delays={"RECORD FILE": 1.5})
    _final, call = drive(tmp_path, fake, RecordMessage(VM, 5), End(None), command_timeout=1.0)
    assert call.answers == [12]


@pytest.fixture
def beijing_local_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The controller's machine set to Beijing time (the voicemail folders must stay in UTC)."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("beijing_local_time")
def test_message_folders_and_names_are_in_utc(tmp_path: Path) -> None:
    fake = FakeAsterisk(on_command=recorder(1.0))
    before = datetime.now(UTC)
    _final, call = drive(tmp_path, fake, RecordMessage(VM, 30), End(None))
    after = datetime.now(UTC)
    host = call.messages[0].file_host
    assert host.parent.name in {before.strftime("%Y-%m-%d"), after.strftime("%Y-%m-%d")}
    stamp = host.stem.split("-")[1]
    assert before.strftime("%H%M%S%f") <= stamp <= after.strftime("%H%M%S%f") or before.date() != after.date()


@pytest.mark.parametrize("seconds", [0.4, None])
def test_an_empty_message_is_dropped(tmp_path: Path, seconds: float | None) -> None:
    fake = FakeAsterisk(on_command=recorder(seconds))
    _final, call = drive(tmp_path, fake, RecordMessage(VM, 30), End(None))
    assert call.answers == [None] and call.messages == []
    assert list((tmp_path / "voicemail").rglob("*.wav")) == []


def test_a_message_of_half_a_second_is_kept(tmp_path: Path) -> None:
    fake = FakeAsterisk(on_command=recorder(0.5))
    _final, call = drive(tmp_path, fake, RecordMessage(VM, 30), End(None))
    assert [m.duration_s for m in call.messages] == [0.5]


def test_a_call_without_a_uniqueid_still_gets_a_file_name(tmp_path: Path) -> None:
    fake = FakeAsterisk(on_command=recorder(1.0))

    async def scenario() -> Call:
        async with agi_session(fake, agi_uniqueid="") as session:
            call = Call(tmp_path, session)
            await call.drive(RecordMessage(VM, 30), End(None))
            return call

    call = in_loop(scenario)
    assert re.fullmatch(r"unknown-\d{12}\.wav", call.messages[0].file_host.name)


# ---- how the call leaves the IVR -------------------------------------------------------------


def test_a_queue_is_told_to_the_dialplan(tmp_path: Path) -> None:
    fake = FakeAsterisk()
    final, call = drive(tmp_path, fake, ToQueue("pension", "养老", 3, "1001"), Say(HELLO))
    assert final == ToQueue("pension", "养老", 3, "1001")
    assert call.closed and call.answers == []  # nothing after the final step is asked for
    assert fake.commands == [
        timeout_to(15),
        'SET VARIABLE HOTLINE_QUEUE "pension"',
        'SET VARIABLE HOTLINE_SKILL "养老"',
        'SET VARIABLE HOTLINE_PRIORITY "3"',
        'SET VARIABLE HOTLINE_REQUESTED_AGENT "1001"',
        'SET VARIABLE HOTLINE_NEXT "queue"',
    ]


def test_a_queue_without_skill_or_agent_clears_them(tmp_path: Path) -> None:
    fake = FakeAsterisk()
    drive(tmp_path, fake, ToQueue("general", None, 0))
    assert fake.commands[1:] == [
        'SET VARIABLE HOTLINE_QUEUE "general"',
        'SET VARIABLE HOTLINE_SKILL ""',
        'SET VARIABLE HOTLINE_PRIORITY "0"',
        'SET VARIABLE HOTLINE_REQUESTED_AGENT ""',
        'SET VARIABLE HOTLINE_NEXT "queue"',
    ]


def test_a_transfer_is_told_to_the_dialplan(tmp_path: Path) -> None:
    fake = FakeAsterisk()
    final, _call = drive(tmp_path, fake, Visit("main", "out", "transfer"), ToNumber("95511"))
    assert final == ToNumber("95511")
    assert fake.commands == [
        timeout_to(15),
        'SET VARIABLE HOTLINE_TRANSFER "95511"',
        'SET VARIABLE HOTLINE_NEXT "transfer"',
    ]


def test_the_default_watchdog_slack_is_15_seconds(tmp_path: Path) -> None:
    fake = FakeAsterisk()

    async def scenario() -> None:
        async with agi_session(fake) as session:
            driver = AgiDriver(
                session,
                Prompts(tmp_path, LENGTHS),
                cast(Any, None),
                to_inside=inside,
                voicemail_dir=tmp_path,
                record_step=cast(Any, None),
                save_message=cast(Any, None),
            )
            await driver.drive(step for step in [End(None)])

    in_loop(scenario)
    assert fake.commands == [timeout_to(15), 'SET VARIABLE HOTLINE_NEXT "hangup"']


def test_a_step_the_driver_does_not_know_is_a_bug(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with agi_session(FakeAsterisk()) as session:
            with pytest.raises(AssertionError, match="unexpected step 'odd'"):
                await Call(tmp_path, session).drive(cast(Any, "odd"), End(None))

    in_loop(scenario)


def test_wav_seconds(tmp_path: Path) -> None:
    assert _wav_seconds(write_wav(tmp_path / "a.wav", 2.5)) == 2.5
    assert _wav_seconds(write_wav(tmp_path / "b.wav", 1.0, rate=16000)) == 1.0
    assert _wav_seconds(tmp_path / "missing.wav") == 0.0
    (tmp_path / "bad.wav").write_bytes(b"RIFF not a wav")
    assert _wav_seconds(tmp_path / "bad.wav") == 0.0
    (tmp_path / "empty.wav").write_bytes(b"")
    assert _wav_seconds(tmp_path / "empty.wav") == 0.0
    # A header that says 0 frames a second is read as telephone audio (8000), not a division by 0.
    data = b"\x00\x00" * 8000
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 0, 0, 2, 16)
    body = b"WAVE" + fmt + b"data" + struct.pack("<I", len(data)) + data
    (tmp_path / "rate0.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    assert _wav_seconds(tmp_path / "rate0.wav") == 1.0


# ---- the business system (http nodes) --------------------------------------------------------


class Api:
    """A business system on loopback; records each request's method, path, query and body."""

    def __init__(self) -> None:
        self.port = free_port()
        self.seen: list[tuple[str, str, dict[str, str], Any]] = []
        self.release = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{name}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.method == "POST" else None
        name = request.match_info["name"]
        self.seen.append((request.method, name, dict(request.query), body))
        if name == "slow":
            await self.release.wait()
        if name == "moved":
            raise web.HTTPFound(self.url("status"))
        if name.startswith("status") and name != "status":
            return web.Response(status=int(name.removeprefix("status")))
        if name == "error":
            return web.json_response({"error": "x"}, status=500)
        if name == "list":
            return web.json_response([1, 2])
        if name == "text":
            return web.Response(text="not json")
        if name == "latin1":
            return web.Response(body=b'{"a": "\xff"}', content_type="application/json")
        if name.startswith("size"):
            size = int(name.removeprefix("size"))
            filler = "x" * (size - len('{"a": ""}'))
            return web.Response(text=json.dumps({"a": filler}), content_type="application/json")
        return web.json_response({"status": "已发放", "amount": 3200})


@asynccontextmanager
async def api() -> AsyncIterator[Api]:
    system = Api()
    await system.runner.setup()
    await web.TCPSite(system.runner, "127.0.0.1", system.port).start()
    try:
        yield system
    finally:
        system.release.set()
        await system.runner.cleanup()


def fetch_all(tmp_path: Path, *fetches: Fetch, policy: HttpPolicy | None = None) -> tuple[list[Any], Api, list[str]]:
    """Drive ``fetches`` against a local business system; the answers, the system, the commands."""
    fake = FakeAsterisk()

    async def scenario() -> tuple[list[Any], Api]:
        async with api() as system, aiohttp.ClientSession() as http, agi_session(fake) as session:
            allowed = policy or HttpPolicy.of([f"127.0.0.1:{system.port}"])
            call = Call(tmp_path, session, http=http, http_policy=allowed)
            resolved = [Fetch(f.url.replace("API/", system.url("")), f.method, f.values, f.timeout) for f in fetches]
            await call.drive(*resolved, End(None))
            return call.answers, system

    answers, system = in_loop(scenario)
    return answers, system, fake.commands


def test_a_get_sends_the_values_as_query_and_returns_the_json_object(tmp_path: Path) -> None:
    answers, system, commands = fetch_all(tmp_path, Fetch("API/status", "GET", {"id": "110", "tel": "138"}, 3.0))
    assert answers == [{"status": "已发放", "amount": 3200}]
    assert system.seen == [("GET", "status", {"id": "110", "tel": "138"}, None)]
    assert commands[0] == timeout_to(18)  # the node's 3 s + 15


def test_a_post_sends_the_values_as_json(tmp_path: Path) -> None:
    answers, system, _commands = fetch_all(tmp_path, Fetch("API/status", "POST", {"id": "110"}, 3.0))
    assert answers == [{"status": "已发放", "amount": 3200}]
    assert system.seen == [("POST", "status", {}, {"id": "110"})]


def driver_log(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str]]:
    """The driver's log lines: message, the url field, the error field's exception name."""
    return [
        (r.getMessage(), getattr(r, "url", ""), getattr(r, "error", "").split(":")[0])
        for r in caplog.records
        if r.name == "cc_core.ivr.agi_driver"
    ]


@pytest.mark.parametrize(
    ("name", "line", "error"),
    [
        ("error", "self-service answered 500", ""),
        ("status300", "self-service answered 300 (redirects are not followed)", ""),
        ("status399", "self-service answered 399 (redirects are not followed)", ""),
        ("status400", "self-service answered 400", ""),
        ("status204", "self-service answered 204", ""),
        ("moved", "self-service answered 302 (redirects are not followed)", ""),
        ("list", None, ""),
        ("text", "self-service call failed", "JSONDecodeError"),
        ("latin1", "self-service call failed", "UnicodeDecodeError"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_bad_answer_is_no_answer_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, line: str | None, error: str, method: str
) -> None:
    answers, system, _commands = fetch_all(tmp_path, Fetch(f"API/{name}", method, {"id": "1"}, 3.0))
    assert answers == [None]
    assert [s[1] for s in system.seen] == [name]  # a redirect is not followed
    url = system.url(name)
    assert driver_log(caplog) == ([] if line is None else [(line, url, error)])


def test_an_address_that_does_not_exist_is_no_answer(tmp_path: Path) -> None:
    answers, system, _commands = fetch_all(tmp_path, Fetch("API/missing/x", "GET", {}, 3.0))
    assert answers == [None] and system.seen == []


def test_an_answer_over_64_kib_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert MAX_ANSWER_BYTES == 65536
    answers, system, _commands = fetch_all(
        tmp_path,
        Fetch(f"API/size{MAX_ANSWER_BYTES}", "GET", {}, 3.0),
        Fetch(f"API/size{MAX_ANSWER_BYTES + 1}", "GET", {}, 3.0),
    )
    assert answers[0] == {"a": "x" * (MAX_ANSWER_BYTES - 9)}
    assert answers[1] is None
    assert driver_log(caplog) == [("self-service answer too large", system.url(f"size{MAX_ANSWER_BYTES + 1}"), "")]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_slow_system_is_no_answer_after_the_node_s_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    answers, system, _commands = fetch_all(tmp_path, Fetch("API/slow", method, {}, 0.3))
    assert answers == [None]
    assert [s[1] for s in system.seen] == ["slow"]
    assert driver_log(caplog) == [("self-service call failed", system.url("slow"), "TimeoutError")]


def test_a_host_the_policy_does_not_allow_is_never_asked(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    answers, system, _commands = fetch_all(tmp_path, Fetch("API/status", "GET", {}, 3.0), policy=HttpPolicy.of([]))
    assert answers == [None] and system.seen == []
    [(line, url, error)] = driver_log(caplog)
    refusal = HttpPolicy.of([]).refusal(system.url("status"))
    assert (line, url, error) == (f"self-service call refused: {refusal}", system.url("status"), "")

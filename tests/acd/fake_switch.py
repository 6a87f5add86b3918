"""A real :class:`~cc_core.acd.service.Acd` over a fake switch, for fast tests of the wait pass,
dispatch, callbacks and call control (issue 12, "First: tests that would catch a broken refactor").

The fake is the AMI link under the real :class:`~cc_core.switch.asterisk.AsteriskControl` (the
switch boundary of issue 12 item 5): it answers what a test scripts for an action (an ``Error``,
a raised :class:`TimeoutError` or :class:`~cc_core.switch.ami.AmiUnavailable`), Success
otherwise, and keeps what it was sent. Tests read what was sent through :func:`sent` only: an
action's name and its fields as a plain dict, what reaches the switch whatever the layers above
build. :func:`as_fields` is the one place that knows the form of a sent action (an AMI
dictionary, or a typed action's dataclass), so a change there leaves the expectations alone.

Everything else is real: the stores on a fresh SQLite database (migrated), the event bus, the
switch view (channels and device states are put in by the test, as the AMI events would).
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Generator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cc_core.acd.model import Agent, AgentState, QueueConfig
from cc_core.acd.service import Acd
from cc_core.acd.store import AgentStore
from cc_core.bus import EventBus
from cc_core.calls.callbacks import CallbackStore
from cc_core.calls.recordings import RecordingStore
from cc_core.calls.store import CallStore
from cc_core.db.session import make_engine, make_sessionmaker, upgrade
from cc_core.ivr.runtime import AskKey, End, Step
from cc_core.switch.asterisk import AsteriskControl
from cc_core.switch.view import ChannelInfo, SwitchView

T0 = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
SUCCESS: dict[str, str] = {"Response": "Success", "Message": "ok"}
ERROR: dict[str, str] = {"Response": "Error", "Message": "Channel not found"}


def as_fields(action: Any) -> dict[str, Any]:
    """An action as sent to the switch → its fields, ``Action`` (the name) among them.

    The one adapter between the ACD's way of building switch actions and the tests."""
    if isinstance(action, Mapping):
        return dict(action)
    if dataclasses.is_dataclass(action) and not isinstance(action, type):
        fields = dataclasses.asdict(action)
        fields.setdefault("Action", type(action).__name__)
        return fields
    raise TypeError(f"unknown switch action {action!r}")


class FakeSwitch:
    """Stands in for the AMI link: scripted answers per action name, Success otherwise."""

    def __init__(self) -> None:
        self.connected = True
        self.actions: list[dict[str, Any]] = []
        self._script: dict[str, list[Any]] = {}

    def will_answer(self, name: str, *answers: Any) -> None:
        """The next actions called ``name`` get these answers in turn (a dict is the answer, an
        exception is raised), then Success again."""
        self._script.setdefault(name, []).extend(answers)

    async def action(self, action: Any, **_kwargs: Any) -> Any:
        fields = as_fields(action)
        self.actions.append(fields)
        queued = self._script.get(str(fields.get("Action")))
        if queued:
            answer = queued.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return answer
        if fields.get("Action") == "Originate":
            return [SUCCESS, {"Event": "OriginateResponse", "Response": "Success"}]
        return SUCCESS


def sent(switch: FakeSwitch, name: str | None = None, *keys: str) -> list[tuple[Any, ...]]:
    """What the switch was sent: (action name, the named fields…) per action, or only the
    actions called ``name``."""
    return [
        (a.get("Action"), *(a.get(k) for k in keys)) for a in switch.actions if name is None or a.get("Action") == name
    ]


class Pass:
    """One FastAGI pass: the channel's variables as the dialplan set them, and what was played."""

    def __init__(self, uniqueid: str, number: str = "13800000001", **variables: str) -> None:
        self.uniqueid = uniqueid
        self.channel = f"PJSIP/trunk-{uniqueid}"
        self.caller_number = number
        self.variables = dict(variables)

    async def get_variable(self, name: str) -> str:
        return self.variables.get(name, "")

    async def set_variable(self, name: str, value: str) -> None:
        self.variables[name] = value


class Clock:
    """The moment the ACD sees; moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


_TEMPLATE: list[Path] = []  # one migrated database per process, copied for each world


def _fresh_database(target: Path) -> str:
    """A migrated SQLite database at ``target``: a copy of one migrated once per process (the
    migrations take seconds under load; a copy takes milliseconds, and mutation runs repeat
    these tests for every mutant)."""
    if not _TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="hotline-acd-db-"))
        atexit.register(shutil.rmtree, folder, True)
        upgrade(f"sqlite:///{folder / 'template.db'}")
        _TEMPLATE.append(folder / "template.db")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_TEMPLATE[0], target)
    return f"sqlite:///{target}"


class World:
    """The ACD with agents 2000 (queue "general") and 2001 (queues "general" and "pension"),
    phones registered, a trunk, and what callers heard and pressed."""

    def __init__(self, home: Path, *, trunk: str = "carrier", keys: list[str] | None = None) -> None:
        url = _fresh_database(home / "hotline.db")
        self.engine = make_engine(url)
        sessions = make_sessionmaker(self.engine)
        self.calls = CallStore(sessions)
        self.agent_store = AgentStore(sessions)
        self.recordings = RecordingStore(sessions)
        self.callbacks = CallbackStore(sessions)
        self.switch = FakeSwitch()
        self.bus = EventBus()
        self.view = SwitchView()
        self.clock = Clock()
        self.heard: list[Step] = []
        self.keys = list(keys or [])  # what the caller presses at each AskKey, in turn
        self.wrapup_timers: list[tuple[str, datetime]] = []
        for ext in ("2000", "2001", "2002"):
            self.view.devices[f"PJSIP/{ext}"] = "NOT_INUSE"

        async def play(_session: Any, _flow: str, steps: Generator[Step, Any, None]) -> Step:
            step = next(steps)
            while not isinstance(step, End):
                self.heard.append(step)
                answer = (self.keys.pop(0) if self.keys else "") if isinstance(step, AskKey) else None
                step = steps.send(answer)
            self.heard.append(step)
            return step

        async def db(work: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            return work(*args, **kwargs)  # in order, at once: no thread to wait for

        def agent(agent_id: str, queues: set[str]) -> Agent:
            return Agent(
                id=agent_id,
                name=f"坐席{agent_id}",
                state=AgentState.OFFLINE,
                state_since=T0,
                queues=frozenset(queues),
                skills={"pension": 3},
            )

        self.acd = Acd(
            switch=AsteriskControl(self.switch),
            bus=self.bus,
            view=self.view,
            calls=self.calls,
            agent_store=self.agent_store,
            recordings=self.recordings,
            callbacks=self.callbacks,
            queues={
                "general": QueueConfig(name="general", wrapup_s=30, max_missed_before_pause=2, ring_timeout_s=15),
                "pension": QueueConfig(name="pension", wrapup_s=0),
            },
            agents={"2000": agent("2000", {"general"}), "2001": agent("2001", {"general", "pension"})},
            queue_settings={"general": {"announce_every": 30, "max_wait": 600}},
            extensions={"2000", "2001", "2002"},
            trunk=trunk,
            steps_driver=play,
            host_path=Path,
            clock=self.clock,
            db=db,
        )
        self.acd.on_wrapup_scheduled(lambda agent_id, when: self.wrapup_timers.append((agent_id, when)))

    def state(self, agent_id: str) -> tuple[AgentState, str | None, int]:
        """An agent's state, pause reason and misses in a row."""
        agent = self.acd.agents[agent_id]
        return agent.state, agent.pause_reason, agent.missed_in_row

    def channel(self, uniqueid: str, channel: str) -> None:
        """A live channel, as the switch's Newchannel event puts it in the view."""
        self.view.channels[uniqueid] = ChannelInfo(uniqueid=uniqueid, linkedid=uniqueid, channel=channel)

    async def caller_waits(self, uid: str, queue: str = "general", **variables: str) -> Pass:
        """A caller reaches the queue and goes to the music (no agent free): one FastAGI pass."""
        self.calls.call_arrived(uid, uid, "13800000001", "12333", f"PJSIP/trunk-{uid}", self.clock())
        self.channel(uid, f"PJSIP/trunk-{uid}")
        session = Pass(uid, HOTLINE_QUEUE=queue, **variables)
        await self.acd.wait(session)  # type: ignore[arg-type]
        return session

    async def settle(self) -> None:
        """Let the ACD's background work (redirects, state records, originates) finish."""
        for _ in range(500):
            if not self.acd._tasks:
                return
            await asyncio.sleep(0.005)
        raise AssertionError(f"the ACD's background work did not finish: {self.acd._tasks}")

    async def close(self) -> None:
        await self.acd.close()
        self.engine.dispose()

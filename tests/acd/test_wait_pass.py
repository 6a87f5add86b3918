"""A caller's FastAGI pass through the queue loop, against the real stores with a recording AMI.

The race this pins (found by scripts/bench_load.py at 400 calls, about once in 500 calls): an
agent found while the caller's first pass was still running (the join's own dispatch, or another
event while the queue entry was written) was sent as an AMI Redirect into the running pass. The
Redirect then raced with the dialplan after the pass (Asterisk logged "No such label 'hold' in
extension … in context 'hotline-connect'") and now and then hung the caller up. The pass must
hand the caller over itself (HOTLINE_NEXT=connect). The real-call side of the same path is
covered by tests/integration/test_acd_calls.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cc_core.acd.model import Agent, AgentState, QueueConfig
from cc_core.acd.service import Acd
from cc_core.acd.store import AgentStore
from cc_core.bus import EventBus
from cc_core.calls.callbacks import CallbackStore
from cc_core.calls.recordings import RecordingStore
from cc_core.calls.store import CallStore
from cc_core.db.session import make_engine, make_sessionmaker, upgrade
from cc_core.ivr.runtime import End, Step
from cc_core.switch.asterisk import AsteriskControl
from cc_core.switch.view import SwitchView

T0 = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)


class RecordingAmi:
    """Answers every action with success and keeps them, to see what the ACD sent."""

    def __init__(self) -> None:
        self.actions: list[dict[str, str]] = []
        self.played: list[Step] = []  # IVR steps the caller heard (see _acd's driver)

    async def action(self, action: dict[str, str], **_kwargs: Any) -> dict[str, str]:
        self.actions.append(dict(action))
        return {"Response": "Success"}


class Pass:
    """The channel variables of one FastAGI pass, as the dialplan set them."""

    def __init__(self, uniqueid: str, variables: dict[str, str]) -> None:
        self.uniqueid = uniqueid
        self.channel = f"PJSIP/trunk-{uniqueid}"
        self.caller_number = "13800000001"
        self.variables = dict(variables)

    async def get_variable(self, name: str) -> str:
        return self.variables.get(name, "")

    async def set_variable(self, name: str, value: str) -> None:
        self.variables[name] = value


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[CallStore, AgentStore, RecordingStore, CallbackStore]]:
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    yield CallStore(sessions), AgentStore(sessions), RecordingStore(sessions), CallbackStore(sessions)
    engine.dispose()


def _acd(stores: tuple[CallStore, AgentStore, RecordingStore, CallbackStore], ami: RecordingAmi) -> Acd:
    calls, agents, recordings, callbacks = stores

    async def play(_session: Any, _flow: str, steps: Generator[Step, Any, None]) -> Step:
        """Plays nothing: every step of an announcement is taken as heard."""
        step = next(steps)
        while not isinstance(step, End):
            ami.played.append(step)
            step = steps.send(None)
        return step

    return Acd(
        switch=AsteriskControl(ami),  # type: ignore[arg-type]
        bus=EventBus(),
        view=SwitchView(),
        calls=calls,
        agent_store=agents,
        recordings=recordings,
        callbacks=callbacks,
        queues={"bench": QueueConfig(name="bench", wrapup_s=0)},
        agents={
            "2000": Agent(
                id="2000",
                name="李娜",
                state=AgentState.AVAILABLE,
                state_since=T0,
                queues=frozenset({"bench"}),
            )
        },
        queue_settings={"bench": {"announce_every": 30, "max_wait": 600}},
        extensions={"2000"},
        trunk="",
        steps_driver=play,
        host_path=Path,
        clock=lambda: T0,
    )


def test_an_agent_found_during_the_first_pass_is_handed_over_by_the_pass(
    stores: tuple[CallStore, AgentStore, RecordingStore, CallbackStore],
) -> None:
    calls = stores[0]
    calls.call_arrived("u.1", "u.1", "13800000001", "12333", "PJSIP/trunk-u.1", T0)

    async def main() -> tuple[Acd, Pass, RecordingAmi]:
        ami = RecordingAmi()
        acd = _acd(stores, ami)
        first = Pass("u.1", {"HOTLINE_QUEUE": "bench", "HOTLINE_PRIORITY": "0"})
        await acd.wait(first)  # type: ignore[arg-type]
        for _ in range(20):  # let anything the pass spawned run (a Redirect would be sent here)
            await asyncio.sleep(0)
        await acd.close()
        return acd, first, ami

    acd, first, ami = asyncio.run(main())
    assert [a for a in ami.actions if a.get("Action") == "Redirect"] == []
    assert first.variables["HOTLINE_NEXT"] == "connect"
    assert first.variables["HOTLINE_AGENT"] == "2000"
    waiter = acd.waiters["u.1"]
    assert (waiter.state, waiter.agent, waiter.in_agi) == ("dialing", "2000", False)


def test_an_agent_found_while_the_caller_hears_music_is_sent_by_redirect(
    stores: tuple[CallStore, AgentStore, RecordingStore, CallbackStore],
) -> None:
    """The other half: between passes (in WaitExten), the Redirect is the way in."""
    calls = stores[0]
    calls.call_arrived("u.2", "u.2", "13800000002", "12333", "PJSIP/trunk-u.2", T0)

    async def main() -> RecordingAmi:
        ami = RecordingAmi()
        acd = _acd(stores, ami)
        acd.agents["2000"] = Agent(
            id="2000", name="李娜", state=AgentState.PAUSED, state_since=T0, queues=frozenset({"bench"})
        )
        first = Pass("u.2", {"HOTLINE_QUEUE": "bench", "HOTLINE_PRIORITY": "0"})
        await acd.wait(first)  # type: ignore[arg-type]
        assert first.variables["HOTLINE_NEXT"] == "wait"
        acd.agents["2000"] = Agent(
            id="2000", name="李娜", state=AgentState.AVAILABLE, state_since=T0, queues=frozenset({"bench"})
        )
        acd.dispatch()
        for _ in range(20):
            await asyncio.sleep(0)
        await acd.close()
        return ami

    ami = asyncio.run(main())
    redirects = [a for a in ami.actions if a.get("Action") == "Redirect"]
    assert [(r["Channel"], r["Context"], r["Exten"]) for r in redirects] == [
        ("PJSIP/trunk-u.2", "hotline-connect", "2000")
    ]

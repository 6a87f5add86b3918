"""Helpers for ACD tests: agents' commands through the controller's real endpoint, and waits on
the switch's events for who was rung."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from cc_core.calls.callbacks import CallbackStore
from cc_core.calls.recordings import RecordingStore
from cc_core.calls.views import CallView
from cc_core.cli import agent_path, control_request
from cc_core.db.session import make_engine, make_sessionmaker
from cc_core.errors import HotlineError
from tests.harness.ami import AmiPeer, Event
from tests.harness.calls import call_store, wait_until
from tests.harness.hotline import AGENTS, Hotline
from tests.harness.world import World, WorldCall


def control(hotline: Hotline, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return control_request(hotline.settings, path, body)


def agent(hotline: Hotline, agent_id: str, action: str, **body: Any) -> dict[str, Any]:
    """``action`` as ``hotline agent`` names it (``wrapup-done``, ``hold``…) or a path such as
    ``call/hold``: the control endpoint's path is the CLI's (cc_core.cli.agent_path)."""
    return control(hotline, agent_path(agent_id, action), body)


def status(hotline: Hotline) -> dict[str, Any]:
    return control(hotline, "acd")


def agent_state(hotline: Hotline, agent_id: str) -> dict[str, Any]:
    state: dict[str, Any] = status(hotline)["agents"][agent_id]
    return state


def wait_agent(hotline: Hotline, agent_id: str, state: str, timeout: float = 20.0) -> dict[str, Any]:
    """Wait until the controller reports the agent in ``state``."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = agent_state(hotline, agent_id)
        if last["state"] == state:
            return last
        time.sleep(0.05)
    raise AssertionError(f"agent {agent_id} not {state} in {timeout} s: {last}")


def all_offline(hotline: Hotline, timeout: float = 30.0) -> None:
    """Log every agent out (ending pauses and wrap-ups), waiting out calls still finishing."""
    deadline = time.monotonic() + timeout
    while True:
        agents = status(hotline)["agents"]
        busy = []
        for agent_id in AGENTS:
            state = agents[agent_id]["state"]
            if state == "offline":
                continue
            try:
                agent(hotline, agent_id, "logout")
            except HotlineError:
                busy.append(f"{agent_id}:{state}")
        if not busy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"agents still busy: {busy}")
        time.sleep(0.2)


def cancel_callbacks(hotline: Hotline) -> None:
    """Cancel every open callback: the controller would otherwise place them on the agents a
    test logs in (the callback test makes its own)."""
    sessions = make_sessionmaker(make_engine(hotline.settings.database_url))
    callbacks = CallbackStore(sessions)
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    for callback in callbacks.list_day(today):
        if callback.status in ("open", "in_progress"):
            callbacks.cancel(callback.id, datetime.now(UTC), "test isolation")


def login(hotline: Hotline, *agent_ids: str, gap: float = 0.02) -> None:
    """Log agents in, in this order (for longest-idle, the first is the longest idle)."""
    for agent_id in agent_ids:
        agent(hotline, agent_id, "login")
        time.sleep(gap)  # distinct state_since moments


def rung(cc_ami: AmiPeer, caller_uid: str, since: int, timeout: float = 20.0) -> tuple[int, str]:
    """Wait until the hotline rings an agent for this caller; return (mark, agent id)."""
    mark, event = cc_ami.wait_for_at(
        lambda e: e.get("Event") == "DialBegin" and e.get("Uniqueid") == caller_uid,
        timeout,
        since,
        f"an agent rung for {caller_uid}",
    )
    return mark, _agent_of(event)


def dial_end(cc_ami: AmiPeer, caller_uid: str, since: int, timeout: float = 20.0) -> tuple[int, Event]:
    return cc_ami.wait_for_at(
        lambda e: e.get("Event") == "DialEnd" and e.get("Uniqueid") == caller_uid,
        timeout,
        since,
        f"end of the ring for {caller_uid}",
    )


def answered(cc_ami: AmiPeer, caller_uid: str, since: int, timeout: float = 20.0) -> int:
    """Wait until the agent rung for this caller answered; return the mark after."""
    mark, event = dial_end(cc_ami, caller_uid, since, timeout)
    assert event["DialStatus"] == "ANSWER", f"the agent did not answer: {event.get('DialStatus')}"
    return mark


def _agent_of(event: Event) -> str:
    # DestChannel: PJSIP/1002-0000001a
    return event.get("DestChannel", "").removeprefix("PJSIP/").split("-")[0]


def place(world: World, cc_ami: AmiPeer, number: str, caller: str) -> tuple[WorldCall, str, int]:
    """A citizen calls ``number``; return the call, the hotline's uniqueid of it, and a mark."""
    since = cc_ami.mark()
    call = world.call_hotline(number=number, caller=caller)
    created = cc_ami.wait_for(
        lambda e: e.get("Event") == "Newchannel" and e.get("CallerIDNum") == caller and e.get("Exten") == number,
        since=since,
        what=f"the hotline's channel for {caller}",
    )
    return call, created["Uniqueid"], since


def record(hotline: Hotline, uid: str, check: str, timeout: float = 20.0) -> CallView:
    store = call_store(hotline)

    def reached() -> CallView | None:
        view = store.get(uid)
        if view is None:
            return None
        ok = {
            "queued": view.queued_at is not None,
            "connected": view.connected_at is not None,
            "survey": view.survey_score is not None,
            "ended": view.ended_at is not None,
            "wrapup": view.wrapup_ended_at is not None,
        }[check]
        return view if ok else None

    return wait_until(reached, timeout, f"call {uid} {check}")  # type: ignore[return-value]


def stores(hotline: Hotline) -> tuple[RecordingStore, CallbackStore]:
    sessions = make_sessionmaker(make_engine(hotline.settings.database_url))
    return RecordingStore(sessions), CallbackStore(sessions)

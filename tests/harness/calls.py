"""Helpers for real-call tests: follow a call through the hotline's IVR by its events.

Keys are pressed only once the hotline is listening for them (the AGI command that plays a
menu or collects digits has started), never after a guessed delay.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cc_core.calls.store import CallStore
from cc_core.calls.views import CallView
from cc_core.db.session import make_engine, make_sessionmaker
from cc_core.ivr.flow import KINDS
from tests.harness.ami import AmiPeer, Event
from tests.harness.hotline import Hotline
from tests.harness.world import WorldCall

MENU_KEYS = '"0123456789*#"'


def call_store(hotline: Hotline) -> CallStore:
    return CallStore(make_sessionmaker(make_engine(hotline.settings.database_url)))


def wait_until(check: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> object:
    """Poll ``check`` (a database read) until it returns something truthy, with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout} s")
        time.sleep(0.05)


def wait_record(store: CallStore, uniqueid: str, done: str, timeout: float = 15.0) -> CallView:
    """Wait until the call record has ``arrived``, has ``digits``, or has ``ended``."""

    def reached() -> CallView | None:
        view = store.get(uniqueid)
        if view is None:
            return None
        ok = {
            "arrived": True,
            "digits": bool(view.digits),
            "ended": view.ended_at is not None,
            "exit": view.ivr_exit is not None,
        }[done]
        return view if ok else None

    result = wait_until(reached, timeout, f"call {uniqueid} {done}")
    assert isinstance(result, CallView)
    return result


def wait_node(store: CallStore, uniqueid: str, node: str, timeout: float = 20.0) -> list[str]:
    """Wait until the caller's IVR path has reached ``node``; return the nodes entered, in order
    (outcome entries such as a time switch's decision or a failed query are left out)."""

    def reached() -> list[str] | None:
        path = [n for _at, _flow, n, kind in store.ivr_path(uniqueid) if kind in KINDS]
        return path if node in path else None

    result = wait_until(reached, timeout, f"node {node} on call {uniqueid}")
    assert isinstance(result, list)
    return result


def hotline_channel(cc_ami: AmiPeer, since: int, caller: str | None = None) -> Event:
    """The first AGI command of the newest call on the hotline (its channel is in the IVR). Give
    ``caller`` when another call may be in the IVR too: its commands would match first."""
    return cc_ami.wait_for(
        lambda e: e.get("Event") == "AGIExecStart" and (caller is None or e.get("CallerIDNum") == caller),
        timeout=20,
        since=since,
        what=f"AGI start{f' of {caller}' if caller else ''}",
    )


def _agi_start(uid: str, prefix: str, suffix: str = "") -> Callable[[Event], bool]:
    def match(e: Event) -> bool:
        command = e.get("Command", "")
        return (
            e.get("Event") == "AGIExecStart"
            and e.get("Uniqueid") == uid
            and command.startswith(prefix)
            and command.endswith(suffix)
        )

    return match


def answer_menu(cc_ami: AmiPeer, call: WorldCall, uid: str, key: str, since: int, timeout: float = 30) -> int:
    """Wait for the next menu question of this call, press ``key``; return the new mark."""
    mark, _event = cc_ami.wait_for_at(_agi_start(uid, "STREAM FILE", MENU_KEYS), timeout, since, f"menu before {key!r}")
    if key:
        call.press(key)
    return mark


def answer_collect(cc_ami: AmiPeer, call: WorldCall, uid: str, keys: str, since: int, timeout: float = 30) -> int:
    """Wait for the next digit collection of this call and type ``keys`` (end with '#')."""
    mark, _event = cc_ami.wait_for_at(_agi_start(uid, "GET DATA"), timeout, since, "digit collection")
    call.press(keys)
    return mark


def wait_wav_closed(path: Path, timeout: float = 10.0) -> None:
    """Wait until Asterisk has closed a WAV: its RIFF header then holds the file's real size."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 44:
            head = path.read_bytes()[:8]
            if head[:4] == b"RIFF" and int.from_bytes(head[4:8], "little") + 8 == path.stat().st_size:
                return
        time.sleep(0.05)
    raise AssertionError(f"{path} was not closed in {timeout} s")

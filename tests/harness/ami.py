"""A synchronous AMI peer for tests: actions, and waiting for events with a deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from cc_core.bus import EventBus
from cc_core.switch.ami import AmiLink
from tests.harness.loop import LoopThread

Event = dict[str, str]
Predicate = Callable[[Event], bool]


def match(**fields: str) -> Predicate:
    """A predicate on exact header values (``match(Event="Hangup", Uniqueid=uid)``)."""
    return lambda e: all(e.get(k) == v for k, v in fields.items())


class AmiPeer:
    """Records every event the switch sends, so a test can wait for one it expects."""

    def __init__(self, loop: LoopThread, port: int, user: str, secret: str, name: str) -> None:
        self.loop = loop
        self.name = name
        self._events: list[Event] = []
        self._cond = threading.Condition()
        self.link = loop.run(self._make(port, user, secret))
        self.link.add_raw_listener(self._record)
        self._task = loop.loop.call_soon_threadsafe(self._start)

    async def _make(self, port: int, user: str, secret: str) -> AmiLink:
        return AmiLink("127.0.0.1", port, user, secret, EventBus(), backoff_initial=0.2, backoff_max=1.0)

    def _start(self) -> None:
        import asyncio

        self._runner = asyncio.ensure_future(self.link.run())

    def _record(self, headers: Event) -> None:
        with self._cond:
            self._events.append(dict(headers))
            self._cond.notify_all()

    def wait_connected(self, timeout: float = 30.0) -> None:
        if not self.loop.run(self.link.wait_connected(timeout), timeout + 1):
            raise AssertionError(f"{self.name}: AMI not connected in {timeout} s ({self.link.last_error})")

    def mark(self) -> int:
        """The position in the event log; wait_for(since=mark) ignores what came before."""
        with self._cond:
            return len(self._events)

    def wait_for(self, predicate: Predicate, timeout: float = 20.0, since: int = 0, what: str = "") -> Event:
        """Block until an event matching ``predicate`` has arrived (after ``since``)."""
        return self.wait_for_at(predicate, timeout, since, what)[1]

    def wait_for_at(
        self, predicate: Predicate, timeout: float = 20.0, since: int = 0, what: str = ""
    ) -> tuple[int, Event]:
        """Like :meth:`wait_for`, also returning the mark just after the matching event."""
        deadline = time.monotonic() + timeout
        with self._cond:
            index = since
            while True:
                while index < len(self._events):
                    event = self._events[index]
                    index += 1
                    if predicate(event):
                        return index, event
                left = deadline - time.monotonic()
                if left <= 0:
                    recent = [e.get("Event") for e in self._events[-15:]]
                    raise AssertionError(f"{self.name}: no event {what or predicate} in {timeout} s; last: {recent}")
                self._cond.wait(left)

    def events(self, since: int = 0) -> list[Event]:
        with self._cond:
            return list(self._events[since:])

    def action(self, action: Mapping[str, Any], timeout: float = 15.0, as_list: bool | None = None) -> Any:
        return self.loop.run(self.link.action(action, as_list=as_list, timeout=timeout), timeout + 1)

    def command(self, command: str) -> str:
        answer = self.action({"Action": "Command", "Command": command})
        output = answer.get("Output", "") if hasattr(answer, "get") else ""
        return str(answer.content or output)

    def close(self) -> None:
        try:
            self.loop.run(self.link.stop(), 5)
        except Exception:
            pass

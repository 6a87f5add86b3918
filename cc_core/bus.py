"""The internal event bus: switch adapters publish typed events, domain modules subscribe.

Handlers are called in subscription order. A plain function runs inline (it must be quick:
this is the AMI hot path); a coroutine function is scheduled as a task so that a slow
subscriber (a database write) never holds up event ingestion. A handler that raises is
logged and does not stop the others.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

E = TypeVar("E")
Handler = Callable[[Any], None] | Callable[[Any], Awaitable[None]]


class EventBus:
    """Type-keyed publish/subscribe inside one process."""

    def __init__(self) -> None:
        self._handlers: dict[type, list[Handler]] = defaultdict(list)
        self._tasks: set[asyncio.Future[Any]] = set()
        self.published = 0

    def subscribe(self, event_type: type[E], handler: Callable[[E], None] | Callable[[E], Awaitable[None]]) -> None:
        """Call ``handler`` for every published event that is an instance of ``event_type``."""
        self._handlers[event_type].append(handler)

    def publish(self, event: object) -> None:
        """Deliver ``event`` to its subscribers (by exact type, then its base classes)."""
        self.published += 1
        for klass in type(event).__mro__:
            for handler in self._handlers.get(klass, ()):
                try:
                    result = handler(event)
                except Exception:
                    log.exception("event handler %s failed on %s", _name(handler), type(event).__name__)
                    continue
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._tasks.add(task)
                    task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("async event handler failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait until every scheduled async handler has finished (used at shutdown and in tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _name(handler: object) -> str:
    return getattr(handler, "__qualname__", repr(handler))

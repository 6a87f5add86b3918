"""The AMI link: panoramisk underneath, with reconnection, resync and a fast event path.

What we add to panoramisk's ``Manager`` (docs/decisions/0003-ami-link.md):

* **Reconnect with backoff** that we control (panoramisk retries at a fixed interval and
  replays half-sent actions after reconnecting, which could repeat an ``Originate``). Here an
  action cut off by a lost link fails with :class:`AmiUnavailable` and is never replayed.
* **Resync**: after every login the view of channels, devices and queue callers is rebuilt
  from ``CoreShowChannels``, ``DeviceStateList`` and ``QueueStatus``.
* **A liveness ping** with a deadline: a switch that stops answering is treated as down.
* **UTF-8 across TCP segments**: panoramisk decodes each segment on its own with
  ``errors='ignore'``, which silently drops a Chinese character split between two reads.
* **A fast event path**: events are parsed into plain dicts and translated to typed events
  without panoramisk's per-event pattern matching (scripts/bench_ami_ingest.py).
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from panoramisk import Manager
from panoramisk.actions import Action
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from cc_core.bus import EventBus
from cc_core.switch.actions import SwitchUnavailable
from cc_core.switch.events import TRANSLATORS, AmiConnected, AmiDisconnected, SwitchResynced, from_ami
from cc_core.switch.view import ChannelInfo, SwitchView

log = logging.getLogger(__name__)

EOM = "\r\n\r\n"
GREETING = "Asterisk Call Manager/"
# What the controller parses: the events it translates, and Shutdown (the switch says goodbye).
WANTED_EVENTS = frozenset(TRANSLATORS) | {"Shutdown"}


class AmiUnavailable(SwitchUnavailable):
    """The AMI link is down (or went down before the action's answer came)."""


class AmiLoginRefused(Exception):
    """The switch refused our AMI user or secret."""


def parse_block(block: str) -> dict[str, str]:
    """Parse one AMI message (``Key: value`` lines) into a dict; the FIRST of duplicates wins.

    The switch writes its own headers (Event, Privilege, the channel's Uniqueid, CallerIDNum…)
    before the ones a dialplan or a caller can influence (a UserEvent's body, a variable's value):
    a caller ID holding ``,Uniqueid: x`` must not replace the channel's real id, nor a forged
    ``File:`` the recording's path (issue 11 item 6). Later duplicates are dropped.
    """
    headers: dict[str, str] = {}
    for line in block.split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep and key not in headers:
            headers[key] = value
    return headers


def header(message: Mapping[str, Any], key: str) -> str:
    """One header of an action's answer as text: the first value when panoramisk made a list of
    duplicates (the same first-wins rule as :func:`parse_block`)."""
    value = message.get(key, "")
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value)


class _Action(Action):  # type: ignore[misc]
    """panoramisk's Action, minus a KeyError: it reads ``self['async']`` for any answer ending
    in "successfully queued" (``PlayDTMF`` answers "DTMF successfully queued", with no Async)."""

    @property
    def multi(self) -> bool:
        if self.as_list is None and "async" not in self:
            message = str(self.responses[0].message).lower()
            if message.endswith("successfully queued"):
                return False
        return bool(super().multi)


class _Protocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol with incremental UTF-8 decoding and a direct event path."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""
        self.on_event: Callable[[dict[str, str]], None] = lambda _h: None
        # Event names worth parsing (None = all). Most AMI traffic (VarSet, Newexten, RTCP…)
        # is of no use to the controller; skipping it before parsing doubles ingestion speed.
        self.wanted: frozenset[str] | None = None
        self.skipped = 0

    def data_received(self, data: bytes) -> None:
        text = self._pending + self._decoder.decode(data)
        if self.version is None:  # type: ignore[has-type]
            # The greeting "Asterisk Call Manager/x.y.z\r\n" comes first, maybe split in pieces.
            if GREETING.startswith(text[: len(GREETING)]) and "\r\n" not in text:
                self._pending = text
                return
            if text.startswith(GREETING):
                first, _, text = text.partition("\r\n")
                self.version = first.partition("/")[2].strip()
        blocks = text.split(EOM)
        self._pending = blocks.pop()
        for block in blocks:
            self.feed_block(block.strip("\r\n"))

    def feed_block(self, block: str) -> None:
        """Route one message: an action's answer to its future, an event to the link."""
        if not block:
            return
        if block.startswith("Event: "):
            wanted = self.wanted
            if wanted is not None:
                end = block.find("\r\n")
                name = block[7:end] if end > 0 else block[7:]
                if name not in wanted and "\r\nActionID: " not in block:  # never skip an action's answer
                    self.skipped += 1
                    return
            headers = parse_block(block)
            action_id = headers.get("ActionID")
            if action_id is None or action_id not in self.responses:
                self.on_event(headers)
                return
        message = Message.from_line(block)
        if message is not None:
            self.handle_message(message)


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager minus its own reconnect loop, pinger and pattern dispatch."""

    def __init__(self, on_lost: Callable[[Exception | None], None], **config: Any) -> None:
        super().__init__(**config)
        self._on_lost = on_lost

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        if f.cancelled() or f.exception() is not None:
            return  # the link's supervisor sees the failure on the awaited task
        super().connection_made(f)
        self._cancel_pinger()

    def _cancel_pinger(self) -> None:
        pinger: asyncio.TimerHandle | None = getattr(self, "pinger", None)
        if pinger is not None:
            pinger.cancel()
        self.pinger = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._connected = False
        self._cancel_pinger()
        # Actions cut off by the loss fail now; they are never replayed on the next link.
        while self.awaiting_actions:
            action = self.awaiting_actions.popleft()
            if not action.future.done():
                action.future.set_exception(AmiUnavailable("AMI link lost before the answer"))
        self._on_lost(exc)


class AmiLink:
    """A self-healing AMI connection that feeds the bus and keeps a :class:`SwitchView`."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        bus: EventBus,
        view: SwitchView | None = None,
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        ping_interval: float = 5.0,
        action_timeout: float = 10.0,
    ) -> None:
        self.host, self.port = host, port
        # The switch sends the controller's user only the events it translates: the filter is in
        # manager.conf (config.ami_event_filter), not an AMI Filter action, which needs the
        # "system" write class (issue 11 item 5).
        self._username, self._secret = username, secret
        self.bus = bus
        self.view = view if view is not None else SwitchView()
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.ping_interval = ping_interval
        self.action_timeout = action_timeout
        self.state = "idle"
        self.last_error = ""
        self.connects = 0
        self.events_seen = 0
        self.connected_since: float | None = None
        self._manager: _Manager | None = None
        self._lost: asyncio.Event | None = None
        self._up = asyncio.Event()
        self._stopping = False
        self._resync_buffer: list[Any] | None = None
        self._raw_listeners: list[Callable[[dict[str, str]], None]] = []
        self._protocol: _Protocol | None = None

    # ---- public -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    async def wait_connected(self, timeout: float) -> bool:
        """Wait until the link is up and resynced; return whether it is."""
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def action(
        self, action: Mapping[str, Any], *, as_list: bool | None = None, timeout: float | None = None
    ) -> Any:
        """Send an action and return panoramisk's answer (a Message, or a list for event lists)."""
        manager = self._manager
        if manager is None or not self.connected:
            raise AmiUnavailable(f"AMI is not connected ({self.state}: {self.last_error or 'no link'})")
        return await self._send(manager, action, as_list=as_list, timeout=timeout)

    def attach(self, protocol: _Protocol) -> None:
        """Route a protocol's events here; parse only the events we translate, unless a raw
        listener wants them all."""
        self._protocol = protocol
        protocol.on_event = self._on_event
        protocol.wanted = None if self._raw_listeners else WANTED_EVENTS

    def add_raw_listener(self, listener: Callable[[dict[str, str]], None]) -> None:
        """Also hand every raw AMI event to ``listener`` (diagnostics and the test harness)."""
        self._raw_listeners.append(listener)
        if self._protocol is not None:
            self._protocol.wanted = None

    def health(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "connected": self.connected,
            "last_error": self.last_error,
            "connects": self.connects,
            "events_seen": self.events_seen,
            "events_skipped": self._protocol.skipped if self._protocol is not None else 0,
            "connected_for_s": round(time.monotonic() - self.connected_since, 1) if self.connected_since else None,
            "view": self.view.summary(),
        }

    async def run(self) -> None:
        """Connect, log in, resync, wait for loss, back off, repeat, until :meth:`stop`."""
        delay = self.backoff_initial
        while not self._stopping:
            try:
                await self._connect_once()
                delay = self.backoff_initial
                await self._watch()
            except asyncio.CancelledError:
                raise
            except AmiLoginRefused as exc:
                self._set_down("login-refused", str(exc))
            except (OSError, AmiUnavailable, TimeoutError) as exc:
                self._set_down("down", _describe(exc))
            except Exception as exc:
                log.exception("AMI link failed unexpectedly")
                self._set_down("down", _describe(exc))
            self._close()
            if self._stopping:
                break
            # Jitter keeps several controllers from hammering a restarting switch in step.
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
            delay = min(self.backoff_max, delay * 2)
        self.state = "stopped"

    async def stop(self) -> None:
        self._stopping = True
        self._close()
        if self._lost is not None:
            self._lost.set()

    # ---- connection ---------------------------------------------------------------------

    async def _connect_once(self) -> None:
        self.state = "connecting"
        loop = asyncio.get_running_loop()
        self._lost = asyncio.Event()
        manager = _Manager(
            self._on_lost,
            host=self.host,
            port=self.port,
            loop=loop,
            protocol_factory=_Protocol,
            ping_delay=3600,
            encoding="utf-8",
            forgetable_actions=("ping", "login", "logoff"),
        )
        manager.dispatch = self._ignore_dispatch  # events take the direct path below
        self._manager = manager
        await asyncio.wait_for(manager.connect(), self.action_timeout)
        self.attach(manager.protocol)
        answer = await self._send(
            manager,
            {"Action": "Login", "Username": self._username, "Secret": self._secret, "Events": "on"},
        )
        if not getattr(answer, "success", False):
            raise AmiLoginRefused(
                f"AMI login refused for user {self._username!r} ({answer.get('Message', 'no reason')}); "
                "the secret must match the switch's manager.conf: restart the switch with 'hotline switch restart'"
            )
        await self._resync(manager)
        self.connects += 1
        self.state = "connected"
        self.last_error = ""
        self.connected_since = time.monotonic()
        self._up.set()
        log.info("AMI connected", extra={"ami": f"{self.host}:{self.port}", "connects": self.connects})
        self.bus.publish(AmiConnected(reconnect=self.connects > 1))

    async def _watch(self) -> None:
        """Ping the switch until the link is lost; a ping without answer counts as a loss."""
        assert self._lost is not None and self._manager is not None
        lost = self._lost
        while not lost.is_set():
            try:
                await asyncio.wait_for(lost.wait(), self.ping_interval)
            except TimeoutError:
                try:
                    await self._send(self._manager, {"Action": "Ping"}, timeout=min(5.0, self.action_timeout))
                except TimeoutError as exc:
                    raise AmiUnavailable("the switch did not answer a ping") from exc
        raise AmiUnavailable(self.last_error or "connection lost")

    async def _send(
        self,
        manager: _Manager,
        action: Mapping[str, Any],
        *,
        as_list: bool | None = None,
        timeout: float | None = None,
    ) -> Any:
        if manager.protocol is None or manager.protocol.closed:
            raise AmiUnavailable("AMI link is closed")
        act = _Action(dict(action), as_list=as_list)
        future = manager.send_action(act, as_list=as_list)
        try:
            return await asyncio.wait_for(future, timeout or self.action_timeout)
        except TimeoutError:
            manager.protocol.responses.pop(act.id, None)
            raise

    def _on_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self.last_error = _describe(exc)
        else:
            self.last_error = "connection closed by the switch"
        if self._lost is not None:
            self._lost.set()

    def _set_down(self, state: str, reason: str) -> None:
        was_up = self._up.is_set()
        self.state = state
        self.last_error = reason
        self.connected_since = None
        self._up.clear()
        if was_up:
            log.warning("AMI link down, reconnecting", extra={"reason": reason})
            self.bus.publish(AmiDisconnected(reason=reason))
        else:
            log.info("AMI not reachable yet", extra={"reason": reason, "state": state})

    def _close(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            try:
                manager.close()
            except Exception:  # a half-open transport may fail to close; it is gone either way
                log.debug("closing AMI transport failed", exc_info=True)

    @staticmethod
    def _ignore_dispatch(event: Any) -> list[str]:
        return []

    # ---- events and resync --------------------------------------------------------------

    def _on_event(self, headers: dict[str, str]) -> None:
        self.events_seen += 1
        if headers.get("Event") == "Shutdown":
            # Asterisk says goodbye before closing: treat the link as lost now, not at TCP close.
            self.last_error = "the switch is shutting down"
            if self._lost is not None:
                self._lost.set()
        for listener in self._raw_listeners:
            listener(headers)
        event = from_ami(headers)
        if event is None:
            return
        self.view.apply(event)
        if self._resync_buffer is not None:
            self._resync_buffer.append(event)
        self.bus.publish(event)

    async def _resync(self, manager: _Manager) -> None:
        """Rebuild the view from the switch's lists; events arriving meanwhile are re-applied."""
        self._resync_buffer = []
        try:
            channels = await self._list(manager, "CoreShowChannels")
            devices = await self._list(manager, "DeviceStateList")
            queues = await self._list(manager, "QueueStatus")
        finally:
            buffered, self._resync_buffer = self._resync_buffer, None
        chans = [
            ChannelInfo(
                uniqueid=header(m, "Uniqueid"),
                linkedid=header(m, "Linkedid"),
                channel=header(m, "Channel"),
                caller_number=header(m, "CallerIDNum"),
                exten=header(m, "Exten"),
                context=header(m, "Context"),
                state=int(header(m, "ChannelState")) if header(m, "ChannelState").isdigit() else 0,
                bridge_id=header(m, "BridgeId"),
            )
            for m in channels
            if header(m, "Event") == "CoreShowChannel"
        ]
        devs = {header(m, "Device"): header(m, "State") for m in devices if header(m, "Event") == "DeviceStateChange"}
        callers: dict[str, set[str]] = {}
        for m in queues:
            if header(m, "Event") == "QueueEntry":
                callers.setdefault(header(m, "Queue"), set()).add(header(m, "Uniqueid"))
        self.view.replace(chans, devs, callers)
        for event in buffered:
            self.view.apply(event)
        summary = self.view.summary()
        log.info("switch view rebuilt", extra=summary)
        self.bus.publish(SwitchResynced(**summary))

    async def _list(self, manager: _Manager, name: str) -> list[Any]:
        answer = await self._send(manager, {"Action": name}, as_list=True, timeout=max(self.action_timeout, 15.0))
        return list(answer) if isinstance(answer, list) else [answer]


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the switch running?)"
    return text

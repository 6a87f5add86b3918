"""A FastAGI server that survives what a network sends it: garbage, early EOF, slow clients.

Why not panoramisk's FastAGI ``Application`` (docs/decisions/0003-ami-link.md): it reads the
header block with no size or time limit and loops forever when the socket closes before the
blank line; and it wraps plain functions with ``asyncio.coroutine``, gone since Python 3.11.

Each connection is one call's session. The header block (``agi_*: value`` lines up to a blank
line) must arrive within ``header_timeout`` and ``max_header_bytes``; anything else is logged
and the socket closed, without disturbing the other sessions. Every command has a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

_HEADER = re.compile(r"^(agi_[a-z0-9_]+): ?(.*)$")
# A result is a number, or the keys GET DATA collected (digits, '*', and A–D on some phones).
_RESULT = re.compile(r"^200 result=(-?[0-9*#A-D]*)(?: (.*))?$")
_KEY_VALUE = re.compile(r"[A-Za-z_]\w*=")


class AgiError(Exception):
    """The switch answered a command with an error (bad syntax, unknown command)."""


class AgiHangup(Exception):
    """The caller hung up, or the switch closed the session."""


class AgiBadHeaders(Exception):
    """The connection did not start with a valid AGI header block."""


@dataclass(frozen=True, slots=True)
class AgiResult:
    """A ``200 result=…`` answer: ``result`` as text, the optional ``(data)`` and the rest."""

    result: str
    data: str
    extra: str

    @property
    def code(self) -> int:
        try:
            return int(self.result)
        except ValueError:
            return 0


def parse_result(line: str) -> AgiResult:
    """Parse one AGI answer line; raise :class:`AgiHangup` or :class:`AgiError` for failures."""
    if line == "HANGUP":
        raise AgiHangup("caller hung up")
    match = _RESULT.match(line)
    if match is None:
        raise AgiError(f"unexpected AGI answer: {line[:120]!r}")
    rest = match.group(2) or ""
    end = _data_end(rest)
    if end is None:
        return AgiResult(result=match.group(1), data="", extra=rest)
    return AgiResult(result=match.group(1), data=rest[1:end], extra=rest[end + 2 :])


def _data_end(rest: str) -> int | None:
    """Where the ``(data)`` at the start of ``rest`` closes, or ``None`` if there is none.

    A variable's value may itself hold ") " (CALLERID(name) = "张三 (社保) 中心"), so the data ends
    at the first ")" that ends the line or is followed by ``key=value`` text (" endpos=1234");
    failing that, at the first ")" followed by a space.
    """
    if not rest.startswith("("):
        return None
    closes = [i for i, char in enumerate(rest) if char == ")"]
    for i in closes:
        tail = rest[i + 1 :]
        if not tail or (tail[0] == " " and _KEY_VALUE.match(tail, 1)):
            return i
    for i in closes:
        if rest[i + 1 : i + 2] == " ":
            return i
    return None


async def read_headers(reader: asyncio.StreamReader, max_bytes: int) -> dict[str, str]:
    """Read the ``agi_*`` header block; raise :class:`AgiBadHeaders` on anything else, a
    duplicate header included (neither copy can be trusted)."""
    headers: dict[str, str] = {}
    total = 0
    while True:
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raise AgiBadHeaders(f"connection closed after {total + len(exc.partial)} bytes of headers") from exc
        except asyncio.LimitOverrunError as exc:
            raise AgiBadHeaders("header line too long") from exc
        total += len(raw)
        if total > max_bytes:
            raise AgiBadHeaders(f"header block over {max_bytes} bytes")
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise AgiBadHeaders("header is not UTF-8") from exc
        if not line:
            if "agi_network_script" not in headers and "agi_request" not in headers:
                raise AgiBadHeaders("no agi_request in the header block")
            return headers
        match = _HEADER.match(line)
        if match is None:
            raise AgiBadHeaders(f"not an AGI header: {line[:60]!r}")
        # The switch sends each header once: a second one can only come from a value that smuggled
        # a line break in (issue 11 item 6), and which of the two is real depends on where that
        # value sits (agi_callerid and agi_rdnis come before agi_extension and agi_arg_N, after
        # agi_request and agi_uniqueid). Neither is taken: the session is refused, the caller
        # goes to the dialplan's safety net. The trunk context filters those values first.
        key = match.group(1)
        if key in headers:
            raise AgiBadHeaders(f"duplicate AGI header {key} (a value with a line break?)")
        headers[key] = match.group(2)


class AgiSession:
    """One call's FastAGI conversation: the call's variables and its commands."""

    def __init__(
        self,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        command_timeout: float,
    ) -> None:
        self.headers = headers
        self._reader = reader
        self._writer = writer
        self.command_timeout = command_timeout
        self.hung_up = False

    @property
    def script(self) -> str:
        """The request path after the host (``agi://host:port/<script>``), without a query."""
        return self.headers.get("agi_network_script", "").split("?", 1)[0].strip("/")

    @property
    def uniqueid(self) -> str:
        return self.headers.get("agi_uniqueid", "")

    @property
    def channel(self) -> str:
        return self.headers.get("agi_channel", "")

    @property
    def caller_number(self) -> str:
        value = self.headers.get("agi_callerid", "")
        return "" if value == "unknown" else value

    @property
    def dialed_number(self) -> str:
        return self.headers.get("agi_extension", "")

    @property
    def args(self) -> list[str]:
        out = []
        n = 1
        while f"agi_arg_{n}" in self.headers:
            out.append(self.headers[f"agi_arg_{n}"])
            n += 1
        return out

    async def command(self, text: str, timeout: float | None = None) -> AgiResult:
        """Send one AGI command and wait (with a deadline) for its ``200`` answer."""
        if self.hung_up:
            raise AgiHangup("caller already hung up")
        if "\n" in text or "\r" in text:
            raise ValueError("an AGI command is one line")
        self._writer.write(text.encode("utf-8") + b"\n")
        try:
            # One deadline for the whole exchange: "100 Trying" lines or a usage block that
            # never ends must not keep the session alive past it.
            async with asyncio.timeout(timeout or self.command_timeout):
                await self._writer.drain()
                while True:
                    line = await self._answer_line()
                    if line.startswith("100 "):
                        continue  # "100 result=0 Trying..." precedes the real answer
                    if line.startswith("520-"):
                        # Read the whole usage block (it may hold blank lines), so that its
                        # last line is not taken for the answer to the next command.
                        usage = [line]
                        while not line.startswith("520 "):
                            line = await self._answer_line()
                            usage.append(line)
                        raise AgiError(f"{text.split()[0]}: " + " ".join(u for u in usage if u)[:300])
                    if line.startswith(("510", "511", "520")):
                        raise AgiError(f"{text.split()[0]}: {line}")
                    return parse_result(line)
        except AgiHangup:
            self.hung_up = True
            raise
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self.hung_up = True
            raise AgiHangup(str(exc) or "connection lost") from exc

    async def _answer_line(self) -> str:
        """One line of the switch's answer; EOF means the session is over."""
        try:
            raw = await self._reader.readline()
        except ValueError as exc:  # a line longer than the stream's limit (the buffer is dropped)
            raise AgiError("AGI answer line too long") from exc
        if not raw:
            self.hung_up = True
            raise AgiHangup("the switch closed the AGI session")
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    async def _checked(self, text: str, timeout: float | None = None) -> AgiResult:
        """A command whose ``result=-1`` means the channel is gone."""
        result = await self.command(text, timeout)
        if result.code == -1:
            self.hung_up = True
            raise AgiHangup(f"{text.split()[0]} failed: channel hung up")
        return result

    async def answer(self) -> None:
        await self._checked("ANSWER")

    async def stream_file(self, path: str, escape_digits: str = "") -> str:
        """Play a prompt; return the digit that interrupted it, or ''."""
        result = await self._checked(f'STREAM FILE {path} "{escape_digits}"')
        return chr(result.code) if result.code > 0 else ""

    async def get_data(self, path: str, timeout_ms: int, max_digits: int) -> tuple[str, bool]:
        """Play a prompt and collect up to ``max_digits`` DTMF digits; return (digits, timed_out)."""
        wait = timeout_ms / 1000 * (max_digits + 1) + 30
        result = await self.command(f"GET DATA {path} {timeout_ms} {max_digits}", timeout=wait)
        if result.result == "-1":
            self.hung_up = True
            raise AgiHangup("caller hung up during GET DATA")
        return result.result, result.data == "timeout"

    async def set_variable(self, name: str, value: str) -> None:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        await self.command(f'SET VARIABLE {name} "{escaped}"')

    async def get_variable(self, name: str) -> str | None:
        result = await self.command(f"GET VARIABLE {name}")
        return result.data if result.code == 1 else None

    async def verbose(self, message: str) -> None:
        await self.command(f'VERBOSE "{message.replace(chr(34), chr(39))}" 1')

    async def hangup(self) -> None:
        await self.command("HANGUP")
        self.hung_up = True


AgiHandler = Callable[[AgiSession], Awaitable[None]]


class FastAgiServer:
    """Accepts FastAGI connections and runs ``handler`` for each, isolated from the others."""

    def __init__(
        self,
        handler: AgiHandler,
        host: str = "127.0.0.1",
        port: int = 4573,
        *,
        header_timeout: float = 5.0,
        command_timeout: float = 60.0,
        max_header_bytes: int = 16384,
    ) -> None:
        self.handler = handler
        self.host, self.port = host, port
        self.header_timeout = header_timeout
        self.command_timeout = command_timeout
        self.max_header_bytes = max_header_bytes
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self.accepted = 0
        self.rejected = 0
        self.failed = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, limit=self.max_header_bytes)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        log.info("FastAGI listening", extra={"agi": f"{self.host}:{self.port}"})

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting; give sessions ``grace`` seconds, then cancel them."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # Sessions first: from Python 3.12 on, wait_closed() also waits for every open
        # connection, so awaiting it before the grace would let one stuck call block shutdown.
        if self._sessions:
            _done, pending = await asyncio.wait(list(self._sessions), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    @property
    def active(self) -> int:
        return len(self._sessions)

    def health(self) -> dict[str, int | str]:
        return {
            "listening": f"{self.host}:{self.port}" if self._server else "",
            "active": self.active,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "failed": self.failed,
        }

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        peer = writer.get_extra_info("peername")
        try:
            try:
                headers = await asyncio.wait_for(read_headers(reader, self.max_header_bytes), self.header_timeout)
            except (AgiBadHeaders, TimeoutError, ConnectionError) as exc:
                self.rejected += 1
                reason = "too slow" if isinstance(exc, TimeoutError) else str(exc)
                log.warning("FastAGI connection rejected", extra={"peer": str(peer), "reason": reason})
                return
            self.accepted += 1
            session = AgiSession(headers, reader, writer, self.command_timeout)
            try:
                await self.handler(session)
            except AgiHangup:
                log.debug("AGI session ended by hangup", extra={"uniqueid": session.uniqueid})
            except (TimeoutError, AgiError, ConnectionError) as exc:
                self.failed += 1
                log.warning(
                    "AGI session failed",
                    extra={"uniqueid": session.uniqueid, "error": f"{type(exc).__name__}: {exc}"},
                )
            except Exception:
                self.failed += 1
                log.exception("AGI handler crashed", extra={"uniqueid": session.uniqueid})
        except asyncio.CancelledError:
            # close() past its grace. The session ends here, quietly: re-raising would make
            # asyncio (3.11, 3.12) log a spurious "Exception in callback" for every such call.
            log.info("FastAGI session cancelled at shutdown", extra={"peer": str(peer)})
        finally:
            self._sessions.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

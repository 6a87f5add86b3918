"""Asterisk's end of a FastAGI session, scripted, for the driver's and the entry's unit tests (issue 12).

The product's real :class:`~cc_core.switch.fastagi.AgiSession` talks over a real socket pair to
:class:`FakeAsterisk`, which records every command line and answers it as Asterisk 22 does
(``200 result=49 endpos=5000`` for a key that interrupted a prompt, ``200 result=12345
(timeout)`` for GET DATA, ``HANGUP`` …): the tests see the exact commands the driver sends,
in order, and the protocol parsing is the product's own.
"""

from __future__ import annotations

import asyncio
import socket
import wave
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from cc_core.ivr.flow import Prompt
from cc_core.switch.fastagi import AgiSession

T = TypeVar("T")
CLOSE = "<close the socket>"
# What Asterisk answers when nothing else is scripted for a command.
DEFAULTS = {
    "SET VARIABLE": "200 result=1",
    "STREAM FILE": "200 result=0 endpos=8000",
    "WAIT FOR DIGIT": "200 result=0",
    "GET DATA": "200 result= (timeout)",
    "RECORD FILE": "200 result=0 (timeout) endpos=0",
}
HEADERS = {
    "agi_network": "yes",
    "agi_network_script": "hotline",
    "agi_request": "agi://127.0.0.1:4573/hotline",
    "agi_channel": "PJSIP/carrier-0000002a",
    "agi_uniqueid": "1733300000.42",
    "agi_linkedid": "1733300000.41",
    "agi_callerid": "13800138000",
    "agi_extension": "12333",
}


def verb(command: str) -> str:
    """The command's name as DEFAULTS spells it (``SET VARIABLE``, ``STREAM FILE`` …)."""
    words = command.split()
    return " ".join(words[:3]) if words[:1] == ["WAIT"] else " ".join(words[:2])


class FakeAsterisk:
    """Answers each command with the next scripted answer for its verb, else Asterisk's usual one.

    ``answers`` maps a verb to the answers of its successive commands; ``on_command`` is called
    with each command line before it is answered (to write the file RECORD FILE makes, say);
    ``delays`` holds how long a verb's answer takes (a caller slow to press a key: Asterisk
    answers WAIT FOR DIGIT only when the key comes).
    """

    def __init__(
        self,
        answers: Mapping[str, Sequence[str]] | None = None,
        on_command: Callable[[str], None] | None = None,
        delays: Mapping[str, float] | None = None,
    ) -> None:
        self.answers = {key: list(value) for key, value in (answers or {}).items()}
        self.on_command = on_command
        self.delays = dict(delays or {})
        self.commands: list[str] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while raw := await reader.readline():
                command = raw.decode("utf-8").rstrip("\n")
                self.commands.append(command)
                if self.on_command is not None:
                    self.on_command(command)
                queue = self.answers.get(verb(command), [])
                answer = queue.pop(0) if queue else DEFAULTS.get(verb(command), "510 Invalid or unknown command")
                if answer == CLOSE:
                    break
                if verb(command) in self.delays:
                    await asyncio.sleep(self.delays[verb(command)])
                writer.write(answer.encode("utf-8") + b"\n")
                await writer.drain()
        finally:
            writer.close()

    def unused(self) -> dict[str, list[str]]:
        """Scripted answers no command took (a test expects none)."""
        return {key: value for key, value in self.answers.items() if value}


@asynccontextmanager
async def agi_session(fake: FakeAsterisk, command_timeout: float = 5.0, **headers: str) -> AsyncIterator[AgiSession]:
    """A real AgiSession whose other end is ``fake``, over a socket pair."""
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    their_reader, their_writer = await asyncio.open_connection(sock=theirs)
    server = asyncio.create_task(fake.serve(their_reader, their_writer))
    try:
        yield AgiSession(HEADERS | headers, reader, writer, command_timeout=command_timeout)
    finally:
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()
        await asyncio.wait_for(server, 5)


def in_loop(scenario: Callable[[], Coroutine[Any, Any, T]], timeout: float = 20.0) -> T:
    """Run one scenario on a fresh loop; a hang fails the test instead of stalling the run."""

    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), timeout)

    return asyncio.run(bounded())


def write_wav(path: Path, seconds: float, rate: int = 8000) -> Path:
    """A silent 16-bit mono PCM WAV of ``seconds`` (the driver reads lengths from headers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\x00\x00" * round(seconds * rate))
    return path


class Prompts:
    """The prompt library's two calls: a named prompt's file, a dynamic text's file (each a WAV of
    the length given in ``seconds``, by prompt name or text); records what was asked."""

    def __init__(self, folder: Path, seconds: Mapping[str, float]) -> None:
        self.folder = folder
        self.seconds = dict(seconds)
        self.resolved: list[Prompt] = []
        self.rendered: list[str] = []

    def resolve(self, prompt: Prompt) -> Path:
        self.resolved.append(prompt)
        name = prompt.name or prompt.text or "unnamed"
        return write_wav(self.folder / "prompts" / f"{name}.wav", self.seconds.get(name, 1.0))

    def text_to_file(self, text: str) -> Path:
        self.rendered.append(text)
        return write_wav(self.folder / "tts" / "answer.wav", self.seconds.get(text, 2.0))

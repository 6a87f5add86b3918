"""Carries the IVR runtime's steps out on a real call over FastAGI (T6, T8, T11).

The runtime (:mod:`cc_core.ivr.runtime`) decides; this module only plays, listens, fetches and
records, and writes the path the caller took to the call record. How the call leaves the IVR
(queue, transfer, hang-up) is told to the dialplan in channel variables, and the dialplan does
it: if this process dies meanwhile, the dialplan's safety net still has the caller.
"""

from __future__ import annotations

import asyncio
import json
import logging
import wave
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from cc_core.http_policy import DEFAULT_POLICY, HttpPolicy
from cc_core.ivr.flow import Prompt
from cc_core.ivr.runtime import (
    DYNAMIC,
    FINAL,
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

log = logging.getLogger(__name__)

ALL_KEYS = "0123456789*#"
# An answer bigger than this from a business system is refused (a misbehaving API must not
# fill the controller's memory).
MAX_ANSWER_BYTES = 64 * 1024


class PromptFiles(Protocol):
    """What the driver needs of :class:`cc_core.ivr.prompts.PromptLibrary`."""

    def resolve(self, prompt: Prompt) -> Path: ...

    def text_to_file(self, text: str) -> Path: ...


@dataclass(frozen=True)
class Recording:
    """A message the caller left."""

    file_inside: str
    file_host: Path
    duration_s: float


StepRecorder = Callable[[Visit], Awaitable[None]]
MessageSaver = Callable[[Recording], Awaitable[int | None]]


class AgiDriver:
    """Runs one call's steps on its AGI session."""

    def __init__(
        self,
        session: AgiSession,
        prompts: PromptFiles,
        http: aiohttp.ClientSession,
        *,
        to_inside: Callable[[Path], str],
        voicemail_dir: Path,
        record_step: StepRecorder,
        save_message: MessageSaver,
        record_key: Callable[[str], Awaitable[None]] | None = None,
        watchdog: float = 15.0,
        http_policy: HttpPolicy = DEFAULT_POLICY,
    ) -> None:
        self.session = session
        self.prompts = prompts
        # Made by HotlineEntry without a cookie jar (see there); requests never follow redirects.
        self.http = http
        self.http_policy = http_policy
        self.to_inside = to_inside
        self.voicemail_dir = voicemail_dir
        self.record_step = record_step
        self.save_message = save_message
        self.record_key = record_key
        self.watchdog = watchdog

    async def drive(self, steps: Generator[Step, Any, None]) -> Step:
        """Run the steps until a final one, carry it out, and return it."""
        answer: Any = None
        while True:
            step = steps.send(answer)
            if isinstance(step, FINAL):
                await self._finish(step)
                steps.close()
                return step
            answer = await self._do(step)

    async def _deadline(self, seconds: float) -> None:
        """Move the switch's watchdog (TIMEOUT(absolute)) past what the next step may take.

        If this process stops answering, the deadline passes and the dialplan's safety net
        takes the caller (switch_config/extensions.conf, extension T). ``seconds`` is the step's
        own length (prompt + waiting); the watchdog's slack is added to it."""
        await self.session.set_variable("TIMEOUT(absolute)", str(max(1, round(seconds + self.watchdog))))

    async def _do(self, step: Step) -> Any:
        match step:
            case Visit():
                await self.record_step(step)
                return None
            case Say(prompt=prompt):
                path, length = await self._file(prompt)
                await self._deadline(length)
                await self.session.stream_file(path)
                return None
            case AskKey():
                key = await self._ask_key(step)
                if key and self.record_key is not None:
                    await self.record_key(key)
                return key
            case AskDigits():
                path, length = await self._file(step.prompt)
                await self._deadline(length + step.timeout * (step.max_digits + 1))
                digits, _timed_out = await self.session.get_data(path, int(step.timeout * 1000), step.max_digits)
                return digits
            case Fetch():
                await self._deadline(step.timeout)
                return await self._fetch(step)
            case RecordMessage():
                return await self._record(step)
        raise AssertionError(f"unexpected step {step!r}")

    async def _file(self, prompt: Prompt) -> tuple[str, float]:
        """The prompt as a path Asterisk can play (inside the chroot, no extension), and its length."""
        if prompt.name == DYNAMIC and prompt.text is not None:
            path = await asyncio.to_thread(self.prompts.text_to_file, prompt.text)
        else:
            path = await asyncio.to_thread(self.prompts.resolve, prompt)
        return self.to_inside(path.with_suffix("")), _wav_seconds(path)

    async def _ask_key(self, step: AskKey) -> str:
        path, length = await self._file(step.prompt)
        await self._deadline(length + step.timeout)
        # Any key interrupts the prompt, so an invalid key is heard as invalid at once.
        key = await self.session.stream_file(path, ALL_KEYS)
        if key:
            return key
        result = await self.session.command(
            f"WAIT FOR DIGIT {int(step.timeout * 1000)}", timeout=step.timeout + self.session.command_timeout
        )
        if result.code < 0:
            raise AgiHangup("caller hung up while choosing")
        return chr(result.code) if result.code > 0 else ""

    async def _fetch(self, step: Fetch) -> dict[str, Any] | None:
        """Call the business system; any failure (down, slow, bad answer) is None.

        Only a host of ``[ivr] http_allow`` is called (https unless on loopback), and a redirect
        is not followed: it is a failure like any answer but 200 (issue 11 item 8), so a flow's
        URL can never lead the controller to a host the policy does not name."""
        refused = self.http_policy.refusal(step.url)
        if refused is not None:
            log.warning("self-service call refused: %s", refused, extra={"url": step.url})
            return None
        timeout = aiohttp.ClientTimeout(total=step.timeout)
        try:
            if step.method == "POST":
                request = self.http.post(step.url, json=dict(step.values), timeout=timeout, allow_redirects=False)
            else:
                request = self.http.get(step.url, params=dict(step.values), timeout=timeout, allow_redirects=False)
            async with request as answer:
                if answer.status != 200:
                    redirect = " (redirects are not followed)" if 300 <= answer.status < 400 else ""
                    log.warning("self-service answered %s%s", answer.status, redirect, extra={"url": step.url})
                    return None
                body = await answer.content.read(MAX_ANSWER_BYTES + 1)
                if len(body) > MAX_ANSWER_BYTES:
                    log.warning("self-service answer too large", extra={"url": step.url})
                    return None
                data = json.loads(body.decode("utf-8"))
        except (TimeoutError, aiohttp.ClientError, UnicodeDecodeError, ValueError) as exc:
            log.warning("self-service call failed", extra={"url": step.url, "error": f"{type(exc).__name__}: {exc}"})
            return None
        return data if isinstance(data, dict) else None

    async def _record(self, step: RecordMessage) -> int | None:
        path, length = await self._file(step.prompt)
        await self._deadline(length + step.max_seconds)
        await self.session.stream_file(path)
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        folder = self.voicemail_dir / day
        folder.mkdir(parents=True, exist_ok=True)
        # Asterisk's uniqueid has a dot, which must not be taken for the file's extension.
        stem = (self.session.uniqueid or "unknown").replace(".", "_")
        host = folder / f"{stem}-{datetime.now(UTC).strftime('%H%M%S%f')}"
        inside = self.to_inside(host)
        # RECORD FILE: '#' ends it; 5 s of silence ends it; max_seconds caps it; BEEP first.
        await self.session.command(
            f'RECORD FILE {inside} wav "#" {step.max_seconds * 1000} BEEP s=5',
            timeout=step.max_seconds + self.session.command_timeout,
        )
        wav = host.parent / f"{host.name}.wav"
        duration = _wav_seconds(wav)
        if duration < 0.5:
            wav.unlink(missing_ok=True)  # nothing said: no empty message in the list
            return None
        return await self.save_message(Recording(self.to_inside(wav), wav, duration))

    async def _finish(self, step: Step) -> None:
        await self._deadline(0)
        match step:
            case ToQueue():
                await self.session.set_variable("HOTLINE_QUEUE", step.queue)
                await self.session.set_variable("HOTLINE_SKILL", step.skill or "")
                await self.session.set_variable("HOTLINE_PRIORITY", str(step.priority))
                await self.session.set_variable("HOTLINE_REQUESTED_AGENT", step.requested_agent or "")
                await self.session.set_variable("HOTLINE_NEXT", "queue")
            case ToNumber():
                await self.session.set_variable("HOTLINE_TRANSFER", step.number)
                await self.session.set_variable("HOTLINE_NEXT", "transfer")
            case End(prompt=prompt):
                if prompt is not None:
                    path, length = await self._file(prompt)
                    await self._deadline(length)
                    await self.session.stream_file(path)
                await self.session.set_variable("HOTLINE_NEXT", "hangup")


def _wav_seconds(path: Path) -> float:
    """The duration of a PCM WAV from its header and size (0 if missing or unreadable)."""
    try:
        with wave.open(str(path), "rb") as wav:
            return wav.getnframes() / float(wav.getframerate() or 8000)
    except (OSError, EOFError, wave.Error):
        return 0.0

"""Prompts: Chinese text rendered by an offline TTS (espeak-ng), cached by content hash.

Asterisk plays 8 kHz mono 16-bit WAV best (no transcoding per call), so every prompt is
converted to that once, with pydub, and reused until its text or voice changes.

:class:`PromptLibrary` is what the IVR runtime uses: it turns a flow's :class:`Prompt` (text or
an admin's recorded file) into such a WAV, and :func:`speakable` rewrites numbers, dates and
phone numbers so that espeak-ng reads them the way a Beijing caller expects. The rendering
itself (espeak-ng, the switch's WAV format) is :mod:`cc_core.speech`, shared with the switch's
built-in prompts; its names are re-exported here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePath

from pydub import AudioSegment
from pydub.exceptions import CouldntDecodeError

from cc_core.errors import HotlineError
from cc_core.ivr.flow import Flow, Prompt
from cc_core.speech import DEFAULT_VOICE as DEFAULT_VOICE
from cc_core.speech import SAMPLE_RATE as SAMPLE_RATE
from cc_core.speech import SWITCH_FORMAT as SWITCH_FORMAT
from cc_core.speech import PromptError as PromptError
from cc_core.speech import espeak_command as espeak_command
from cc_core.speech import prompt_key as prompt_key
from cc_core.speech import render_text as render_text
from cc_core.speech import to_switch_wav as to_switch_wav
from cc_core.speech import write_switch_wav as _write_switch_wav

# The controller machine has 2 cores; more TTS/ffmpeg processes at once only slow calls down.
RENDER_THREADS = 2
_LOCK_STRIPES = 64


class PromptLibrary:
    """The IVR runtime's prompts: flow prompts and read-back text as WAV files Asterisk plays.

    Cache layout under ``cache_dir``: ``<key>.wav`` for a flow's text prompts, ``files/`` for
    converted recordings, ``dynamic/`` for read-back text (it may hold callers' data, so it is
    kept apart and pruned with :meth:`prune_dynamic`). Safe to use from several threads.
    """

    def __init__(self, cache_dir: Path, prompts_dir: Path, voice: str = DEFAULT_VOICE) -> None:
        self.cache_dir = cache_dir
        self.prompts_dir = prompts_dir
        self.voice = voice
        # Striped locks: two calls asking for the same missing prompt render it once, without a
        # lock per text ever seen (dynamic texts are unbounded).
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        # Renders from prepare() and from calls together never run more than RENDER_THREADS at once.
        self._slots = threading.BoundedSemaphore(RENDER_THREADS)

    def resolve(self, prompt: Prompt) -> Path:
        """The 8 kHz mono 16-bit WAV in the cache for ``prompt`` (rendered or converted once)."""
        if prompt.text is not None:
            return self._render(prompt.text, self.cache_dir)
        if prompt.file is not None:
            return self._convert(prompt.file)
        label = f" {prompt.name}" if prompt.name else ""
        raise PromptError(f"prompt{label} has neither text nor file")

    def text_to_file(self, text: str) -> Path:
        """Render dynamic text (e.g. an http answer read back) and return the WAV's path."""
        return self._render(text, self.cache_dir / "dynamic")

    def prepare(self, flow: Flow) -> dict[str, Path]:
        """Render every prompt of ``flow`` ahead of calls, so the first caller never waits for TTS.

        Returns the WAV for each prompt by where it is written: ``prompts.<name>`` for named
        prompts and ``nodes.<node>.<field>`` for a node's prompt, invalid and no_input. Raises one
        :class:`PromptError` listing every prompt that failed.
        """
        places = _flow_prompts(flow)
        # The same text or file used in several places is rendered once.
        unique: dict[tuple[str | None, str | None], Prompt] = {}
        for prompt in places.values():
            unique.setdefault((prompt.text, prompt.file), prompt)
        done: dict[tuple[str | None, str | None], Path] = {}
        errors: dict[tuple[str | None, str | None], str] = {}
        with ThreadPoolExecutor(max_workers=RENDER_THREADS, thread_name_prefix="prompt") as pool:
            futures = {key: pool.submit(self.resolve, prompt) for key, prompt in unique.items()}
            for key, future in futures.items():
                try:
                    done[key] = future.result()
                except HotlineError as exc:
                    errors[key] = str(exc)
        if errors:
            failed = [
                f"{place}: {errors[(p.text, p.file)]}" for place, p in places.items() if (p.text, p.file) in errors
            ]
            more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
            raise PromptError(f"flow {flow.name}: cannot render prompts: " + "; ".join(failed[:5]) + more)
        return {place: done[(p.text, p.file)] for place, p in places.items()}

    def prune_dynamic(self, max_age: float) -> int:
        """Delete read-back renders older than ``max_age`` seconds; returns how many were deleted."""
        folder = self.cache_dir / "dynamic"
        if not folder.is_dir():
            return 0
        cutoff = time.time() - max_age
        removed = 0
        for path in folder.iterdir():
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def _lock(self, target: Path) -> threading.Lock:
        return self._locks[hash(target) % _LOCK_STRIPES]

    def _render(self, text: str, folder: Path) -> Path:
        if not text.strip():
            raise PromptError("an empty text prompt cannot be spoken")
        spoken = speakable(text)
        target = folder / f"{prompt_key(spoken, self.voice)}.wav"
        if target.exists():
            return target
        with self._lock(target):
            if target.exists():  # rendered by another thread while this one waited
                return target
            with self._slots:
                return render_text(spoken, self.voice, folder)

    def _convert(self, name: str) -> Path:
        source = self._source(name)
        digest = hashlib.sha256(f"{SWITCH_FORMAT}\n{source.suffix.lower()}\n".encode())
        try:
            with source.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 16), b""):
                    digest.update(block)
        except OSError as exc:
            raise PromptError(f"cannot read prompt file {name}: {exc.strerror}") from exc
        folder = self.cache_dir / "files"
        target = folder / f"{digest.hexdigest()[:20]}.wav"
        if target.exists():
            return target
        with self._lock(target):
            if target.exists():
                return target
            with self._slots:
                self._decode_into(source, name, target)
        return target

    def _decode_into(self, source: Path, name: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            audio = AudioSegment.from_file(source)
        except CouldntDecodeError as exc:
            raise PromptError(f"prompt file {name} is not audio ffmpeg can decode: {_ffmpeg_reason(exc)}") from exc
        if len(audio) == 0:
            raise PromptError(f"prompt file {name} holds no audio")
        _write_switch_wav(audio, target)

    def _source(self, name: str) -> Path:
        """The admin's file ``name`` inside prompts_dir; never a path that leaves it."""
        relative = PurePath(name)
        if not name or "\0" in name or relative.is_absolute() or ".." in relative.parts:
            raise PromptError(f"prompt file {name!r} must be a file name inside {self.prompts_dir}")
        root = self.prompts_dir.resolve()
        # resolve() follows symlinks: a link (or a linked folder) pointing outside is caught here.
        path = (root / relative).resolve()
        if not path.is_relative_to(root):
            raise PromptError(f"prompt file {name!r} points outside {self.prompts_dir}")
        if not path.is_file():
            raise PromptError(f"prompt file {name} does not exist in {self.prompts_dir}")
        return path


def _ffmpeg_reason(exc: CouldntDecodeError) -> str:
    """The last line of ffmpeg's output (e.g. 'Invalid data found when processing input')."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:200] if lines else "unknown error"


def _flow_prompts(flow: Flow) -> dict[str, Prompt]:
    """Every prompt of a flow by where it is written; empty prompts are left to the validator."""
    out: dict[str, Prompt] = {}
    for name, prompt in flow.prompts.items():
        out[f"prompts.{name}"] = prompt
    for node in flow.nodes.values():
        # Every Prompt-valued field (prompt, invalid, no_input, …), so new node kinds are covered.
        for spec in dataclasses.fields(node):
            value = getattr(node, spec.name)
            if isinstance(value, Prompt):
                out[f"nodes.{node.name}.{spec.name}"] = value
    return {place: p for place, p in out.items() if p.text is not None or p.file is not None}


# --- Numbers in Chinese text ----------------------------------------------------------------------
#
# What espeak-ng 1.51 (cmn-latn-pinyin) does with Arabic digits, checked with `espeak-ng -x`:
#   1234.50 -> 一千二百三十四 五零 (the decimal point is dropped: 3.5 sounds like 三五)
#   105 -> 一百 五, 1005 -> 一千 五 (inner zeros dropped: 105 sounds like 150)
#   10000 -> 十千, 12345 -> 十二千三百四十五, 100000 -> 一百千 (no 万)
#   2026-10-01 -> 二千二十六 十 零一 (dashes dropped, year as a quantity)
#   12333 -> 十二千三百三十三; 18-digit IDs are read in groups of three with 一, never 幺
#   9:00 -> 九 零 零; 50% -> 五十 "percent" (in English); fullwidth １２３ -> silence
# Chinese characters are read correctly, so every digit run is rewritten into characters.

_DIGITS = "零一二三四五六七八九"
_YEAR_DIGITS = "〇一二三四五六七八九"
_DIAL_DIGITS = "零幺二三四五六七八九"  # 1 as 幺: on the phone 一 and 七 are easily confused
_SMALL_UNITS = ("", "十", "百", "千")
_BIG_UNITS = ("", "万", "亿", "万亿")
_MAX_CARDINAL_DIGITS = 16
# A run of this many digits or more is a number to dial or check (phone, ID), not a quantity...
_DIAL_MIN_DIGITS = 5
# ...unless a unit of quantity follows it (12345元 is an amount).
_QUANTITY_UNITS = frozenset("元块圆角人次个户名件笔天岁")
# Digits after these words are always dialled (分机8001 is 八〇〇幺, not 八千零一).
_DIAL_CONTEXT = re.compile(r"(?:电话|拨打|致电|分机|工号|号码|热线|编号|尾号|手机|卡号)(?:号码?)?(?:是|为)?[\s:：]*$")
_FULLWIDTH = str.maketrans("０１２３４５６７８９", "0123456789")

_NUMBER = re.compile(
    r"(?<!\d)(?:"
    r"(?P<date>(?P<year>\d{4})(?P<sep>[-/.])(?P<month>\d{1,2})(?P=sep)(?P<day>\d{1,2}))(?!\d)"
    r"|(?P<cyear>\d{4})(?=年)"
    r"|(?P<time>(?P<hour>\d{1,2})[:：](?P<minute>\d{2}))(?![\d:：])"
    r"|(?P<percent>\d+(?:\.\d+)?)[%％]"
    r"|(?P<grouped>\d{1,3}(?:,\d{3})+(?:\.\d+)?)(?!\d)"
    r"|(?P<decimal>\d+\.\d+)"
    r"|(?P<integer>\d+)"
    r")"
)
_INTEGER = re.compile(r"\d+")


def speakable(text: str) -> str:
    """Rewrite the digits in Chinese ``text`` into characters espeak-ng reads naturally.

    Amounts and quantities are read as numbers (``1234.50`` → 一千二百三十四点五零), dates
    with the year digit by digit (``2026-10-01`` → 二〇二六年十月一日), times as 点/分
    (``9:30`` → 九点三十分), percentages as 百分之, and phone, ID and other long numbers digit by
    digit with 幺 for 1 (``12333`` → 幺二三三三). Text without digits is returned unchanged.
    """
    return _NUMBER.sub(_speak_match, text.translate(_FULLWIDTH))


def _speak_match(match: re.Match[str]) -> str:
    if match["date"]:
        year, month, day = match["year"], int(match["month"]), int(match["day"])
        if 1 <= month <= 12 and 1 <= day <= 31:
            return f"{_spell(year, _YEAR_DIGITS)}年{_cardinal(month)}月{_cardinal(day)}日"
        # Not a date after all (2026-13-45): read its parts as plain numbers.
        return _INTEGER.sub(_speak_integer, match["date"])
    if match["cyear"]:
        return _spell(match["cyear"], _YEAR_DIGITS)
    if match["time"]:
        hour, minute = int(match["hour"]), int(match["minute"])
        if hour <= 24 and minute <= 59:
            if minute == 0:
                return f"{_cardinal(hour)}点"
            return f"{_cardinal(hour)}点{'零' if minute < 10 else ''}{_cardinal(minute)}分"
        return _INTEGER.sub(_speak_integer, match["time"])
    if match["percent"]:
        return "百分之" + _quantity(match["percent"])
    if match["grouped"]:
        return _quantity(match["grouped"].replace(",", ""))
    if match["decimal"]:
        return _quantity(match["decimal"])
    return _speak_integer(match)


def _speak_integer(match: re.Match[str]) -> str:
    """A run of digits: a quantity (一百零五) or, if it looks like something dialled, 幺零五."""
    digits = match.group()
    after = match.string[match.end() : match.end() + 1]
    before = match.string[max(0, match.start() - 12) : match.start()]
    dialled = (
        (len(digits) > 1 and digits[0] == "0")
        or len(digits) > _MAX_CARDINAL_DIGITS
        or (len(digits) >= _DIAL_MIN_DIGITS and after not in _QUANTITY_UNITS)
        or (len(digits) >= 14 and after in ("X", "x"))  # an ID number with its check character
        or _DIAL_CONTEXT.search(before) is not None
    )
    return _spell(digits, _DIAL_DIGITS) if dialled else _cardinal(int(digits))


def _spell(digits: str, names: str) -> str:
    return "".join(names[int(d)] for d in digits)


def _quantity(number: str) -> str:
    """``1234.50`` → 一千二百三十四点五零 (the decimals as written, digit by digit)."""
    whole, _, decimals = number.partition(".")
    if len(whole.lstrip("0")) > _MAX_CARDINAL_DIGITS:
        spoken = _spell(whole, _DIGITS)
    else:
        spoken = _cardinal(int(whole))
    return spoken + ("点" + _spell(decimals, _DIGITS) if decimals else "")


def _under_10000(n: int) -> str:
    out: list[str] = []
    zero = False
    for power in (3, 2, 1, 0):
        digit = n // 10**power % 10
        if digit == 0:
            zero = bool(out)  # zeros between spoken digits are said once: 1005 一千零五
        else:
            if zero:
                out.append("零")
                zero = False
            out.append(_DIGITS[digit] + _SMALL_UNITS[power])
    return "".join(out)


def _cardinal(n: int) -> str:
    """A whole number below 10**16 in Chinese: 105 一百零五, 12345 一万二千三百四十五."""
    if n == 0:
        return "零"
    groups: list[int] = []
    while n:
        groups.append(n % 10000)
        n //= 10000
    out: list[str] = []
    zero = False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            zero = bool(out)
            continue
        if out and (zero or group < 1000):  # 10010 一万零一十, 100001000 一亿零一千
            out.append("零")
        zero = False
        out.append(_under_10000(group) + _BIG_UNITS[index])
    spoken = "".join(out)
    if spoken.startswith("一十"):  # 15 十五, 150000 十五万
        spoken = spoken[1:]
    if spoken[:2] in ("二千", "二万", "二亿"):  # 2000 两千
        spoken = "两" + spoken[1:]
    return spoken

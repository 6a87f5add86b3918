"""Speech the switch plays: Chinese text rendered by espeak-ng, and audio converted to the
switch's 8 kHz mono 16-bit WAV, cached by content hash.

A neutral module, not part of a domain (issue 12 item 5): the IVR's prompt library
(:mod:`cc_core.ivr.prompts`) and the switch's own built-in prompts (:mod:`cc_core.switch.config`:
the safety net's "fallback" and the queue's "queue_wait") both need it, and the switch must import
no domain (docs/decisions/0015-switch-boundary.md). It was in ``ivr/prompts.py`` until then;
that module re-exports every name, so ``cc_core.ivr.prompts.render_text`` still works.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from pydub import AudioSegment

from cc_core.errors import HotlineError

SAMPLE_RATE = 8000
DEFAULT_VOICE = "cmn-latn-pinyin"
# Part of the cache key of converted files: changing the switch format must not reuse old files.
SWITCH_FORMAT = f"wav-{SAMPLE_RATE}-mono-s16"


class PromptError(HotlineError):
    """A prompt could not be rendered."""


def prompt_key(text: str, voice: str) -> str:
    """The cache key of a text prompt: it changes when the text or the voice does."""
    return hashlib.sha256(f"{voice}\n{text}".encode()).hexdigest()[:20]


def to_switch_wav(source: Path, target: Path) -> None:
    """Convert any audio pydub/ffmpeg reads to 8 kHz mono 16-bit WAV, written atomically."""
    write_switch_wav(AudioSegment.from_file(source), target)


def write_switch_wav(audio: AudioSegment, target: Path) -> None:
    """Write ``audio`` in the switch format to ``target`` so that no reader ever sees half a file.

    The audio goes to a uniquely named temporary file beside ``target``, is flushed to disk, and
    is then renamed over ``target``: a crash (even a power cut) or a concurrent render of the same
    prompt never leaves a partial file under the final name, and leftovers (``.*.part``) are never
    taken for a cache entry.
    """
    audio = audio.set_channels(1).set_frame_rate(SAMPLE_RATE).set_sample_width(2)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; the switch may read the cache as another user
        with os.fdopen(fd, "wb") as out:
            audio.export(out, format="wav")
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def espeak_command(espeak: str, voice: str, wav: Path) -> list[str]:
    """The espeak-ng command line that renders the text it reads on stdin into ``wav``.

    The text is never an argument: espeak-ng takes any argument starting with ``-`` as an
    option, so a prompt (or a business system's answer read back) such as ``-f/etc/passwd``
    would make it read that file aloud to the caller (issue 11 item 3). ``--stdin`` reads the
    whole text at once, whatever it starts with; ``-b 1`` says it is UTF-8.
    """
    return [espeak, "-v", voice, "-s", "150", "-b", "1", "-w", str(wav), "--stdin"]


def render_text(text: str, voice: str, cache_dir: Path) -> Path:
    """Render ``text`` with espeak-ng into the cache (once) and return the WAV's path.

    The text goes to espeak-ng on stdin (see :func:`espeak_command`), never as an argument."""
    target = cache_dir / f"{prompt_key(text, voice)}.wav"
    if target.exists():
        return target
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise PromptError("espeak-ng is not installed (needed for Chinese prompts); run scripts/setup.sh")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        result = subprocess.run(
            espeak_command(espeak, voice, raw),
            input=text,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            check=False,
        )
        if result.returncode != 0 or not raw.exists():
            raise PromptError(f"espeak-ng failed for voice {voice}: {result.stderr.strip()[:200]}")
        to_switch_wav(raw, target)
    return target

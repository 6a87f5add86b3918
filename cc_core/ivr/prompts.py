"""Prompts: Chinese text rendered by an offline TTS (espeak-ng), cached by content hash.

Asterisk plays 8 kHz mono 16-bit WAV best (no transcoding per call), so every prompt is
converted to that once, with pydub, and reused until its text or voice changes.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from pydub import AudioSegment

from cc_core.errors import HotlineError

SAMPLE_RATE = 8000


class PromptError(HotlineError):
    """A prompt could not be rendered."""


def prompt_key(text: str, voice: str) -> str:
    """The cache key of a text prompt: it changes when the text or the voice does."""
    return hashlib.sha256(f"{voice}\n{text}".encode()).hexdigest()[:20]


def to_switch_wav(source: Path, target: Path) -> None:
    """Convert any audio pydub/ffmpeg reads to 8 kHz mono 16-bit WAV, written atomically."""
    audio = AudioSegment.from_file(source)
    audio = audio.set_channels(1).set_frame_rate(SAMPLE_RATE).set_sample_width(2)
    tmp = target.with_suffix(".part.wav")
    audio.export(tmp, format="wav")
    tmp.replace(target)


def render_text(text: str, voice: str, cache_dir: Path) -> Path:
    """Render ``text`` with espeak-ng into the cache (once) and return the WAV's path."""
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
            [espeak, "-v", voice, "-s", "150", "-w", str(raw), text],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not raw.exists():
            raise PromptError(f"espeak-ng failed for voice {voice}: {result.stderr.strip()[:200]}")
        to_switch_wav(raw, target)
    return target

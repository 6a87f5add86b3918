"""The switch's WAV → Opus in Ogg (mono, speech bitrate), and decoding an archived file back.

ffmpeg (the program pydub drives) is run directly, reading the WAV and writing the Ogg stream to
a pipe: the encoded bytes (about 7 MB per hour at 16 kbit/s) come back in memory and are written
by :mod:`cc_core.archive.durable`, so a full disk is an OSError of ours, never a half-file of
ffmpeg's. pydub's ``export`` was measured against this (docs/PERFORMANCE.md): it decodes the whole
call into Python first and spools through /tmp. ``-fflags +bitexact`` makes the output the same
bytes for the same input (no random Ogg serial number, no encoder version tag). ffmpeg runs at
``nice`` 10, below the switch.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from cc_core.archive.config import ArchiveError, one_line
from cc_core.calls import recordings

# Decoded for the duration check at the switch's own rate: 8 kHz, 16-bit mono.
CHECK_RATE = 8000
_CHECK_BYTES_PER_SECOND = CHECK_RATE * 2
_READ = 1 << 16
TOOL_TIMEOUT_S = 600.0
# ffmpeg runs niced: archiving is background work, and the switch's audio on the same cores must
# never wait for it.
NICENESS = 10


class TranscodeError(Exception):
    """A file cannot be encoded or decoded: corrupt or not audio. The message is one line."""


def check_ffmpeg(ffmpeg: str = "ffmpeg") -> None:
    """Raise ArchiveError unless ``ffmpeg`` runs and has the libopus encoder."""
    if shutil.which(ffmpeg) is None:
        raise ArchiveError(f"{ffmpeg} not found; install ffmpeg (scripts/setup.sh does)")
    try:
        done = subprocess.run(
            [ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ArchiveError(f"{ffmpeg} does not run ({one_line(exc)}); reinstall ffmpeg") from exc
    if "libopus" not in done.stdout:
        raise ArchiveError(f"{ffmpeg} has no libopus encoder; install Debian's ffmpeg (scripts/setup.sh does)")


def _niced(ffmpeg: str) -> list[str]:
    nice = shutil.which("nice")
    return [ffmpeg] if nice is None else [nice, "-n", str(NICENESS), ffmpeg]


def _last_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def to_opus(source: Path, bitrate_kbps: int, ffmpeg: str = "ffmpeg") -> bytes:
    """``source`` (any audio ffmpeg reads; here the switch's WAV) as Ogg Opus, mono, ``bitrate_kbps``.

    ``-application voip`` tunes the encoder for speech. Raises TranscodeError if ffmpeg cannot
    read the file (corrupt, not audio) or produces nothing.
    """
    command = [
        *_niced(ffmpeg),
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        str(source),
        "-map_metadata",
        "-1",
        "-vn",
        "-ac",
        "1",
        "-c:a",
        "libopus",
        "-b:a",
        f"{bitrate_kbps}k",
        "-vbr",
        "on",
        "-application",
        "voip",
        "-compression_level",
        "10",
        "-fflags",
        "+bitexact",
        "-flags:a",
        "+bitexact",
        "-f",
        "ogg",
        "pipe:1",
    ]
    try:
        done = subprocess.run(command, capture_output=True, timeout=TOOL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise TranscodeError(f"ffmpeg took over {TOOL_TIMEOUT_S:.0f} s on {source.name}") from exc
    if done.returncode != 0 or not done.stdout:
        reason = _last_line(done.stderr.decode("utf-8", "replace"))
        raise TranscodeError(f"ffmpeg cannot read {source.name}: {reason}")
    return done.stdout


def decoded_seconds(path: Path, ffmpeg: str = "ffmpeg") -> float:
    """Seconds of audio ``path`` decodes to, decoding all of it; TranscodeError on any decode error.

    Strict: ffmpeg must exit 0 *and* report no error at all (a damaged Ogg page is only a
    logged "CRC mismatch" to ffmpeg, not a failure). The PCM is counted as it streams, never held.
    """
    command = [*_niced(ffmpeg), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path)]
    command += ["-vn", "-f", "s16le", "-ac", "1", "-ar", str(CHECK_RATE), "pipe:1"]
    with tempfile.TemporaryFile() as errors:
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors) as process:
            assert process.stdout is not None
            total = 0
            while chunk := process.stdout.read(_READ):
                total += len(chunk)
            try:
                code = process.wait(timeout=TOOL_TIMEOUT_S)
            except subprocess.TimeoutExpired as exc:
                process.kill()
                raise TranscodeError(f"ffmpeg took over {TOOL_TIMEOUT_S:.0f} s decoding {path.name}") from exc
        errors.seek(0)
        stderr = errors.read().decode("utf-8", "replace")
    if code != 0 or stderr.strip():
        raise TranscodeError(f"{path.name} does not decode cleanly: {_last_line(stderr)}")
    return total / _CHECK_BYTES_PER_SECOND


def wav_seconds(path: Path, ffmpeg: str = "ffmpeg") -> float:
    """Seconds of audio in the switch's WAV: from its header (corrected for the file's real size,
    as for a header Asterisk never finished), else by decoding it."""
    seconds = recordings.wav_seconds(path, path.stat().st_size)
    return decoded_seconds(path, ffmpeg) if seconds is None else seconds

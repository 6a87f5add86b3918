#!/usr/bin/env python3
"""Benchmark: how fast recordings are archived (times real time) and the bytes an hour of audio
takes once archived (issue 5).

The audio is speech, built from a seed so every run measures the same bytes, in two kinds:

* ``allison``: calls assembled from Asterisk's own English prompts (a real human voice recorded
  at 8 kHz, 16-bit, like MixMonitor's files), from the switch's chroot
  (``var/switch/root/usr/share/asterisk/sounds/en_US_f_Allison``; ``--sounds`` for another folder);
* ``espeak``: Mandarin sentences of the hotline spoken by espeak-ng (offline TTS), resampled to 8 kHz.

Each call is ``--seconds`` long (default 180, a typical conversation): prompts or sentences with
pauses of 0.3-1.5 s of faint line noise in between. Per round and per kind:

* **archive run**: :func:`cc_core.archive.archive_recordings` on ``--calls`` finished recordings
  in a fresh SQLite database — transcode, write + fsync + rename, re-read and hash from the disk,
  decode to check the duration, the backup copy (read back too), the original removed, every step
  committed; the manifest sealing is left out (``seal=False``, one small file a day). This is the
  figure that counts: seconds of audio archived per second of wall time;
* the parts, on the same WAV files: ``ffmpeg → pipe`` (:func:`cc_core.archive.transcode.to_opus`,
  what the archiver does) against **pydub's export** (``AudioSegment.from_wav(...).export(...,
  codec="libopus")`` with the same encoder options), alternating which goes first; the decode
  check (:func:`decoded_seconds`); and SHA-256 from the disk (the daily verify's work).

Sizes are measured once per bitrate (the encoder is bit-exact, so they do not vary): bytes per
hour of audio at 12, 16 and 24 kbit/s against the 57.6 MB of the switch's WAV.

The process pins itself to one CPU, and ffmpeg inherits the pin: the figures are for one core.
The check at the end: every recording archived, each archived file decodes to its original's
duration ±0.5 s, pydub's output lasts as long, and a verify of the last archive finds nothing;
the script exits with status 1 otherwise.

Usage: .venv/bin/python scripts/bench_archive.py [--rounds N] [--calls N] [--seconds S]
       [--kinds allison,espeak] [--sounds DIR] [--cpu N | --no-pin] [--keep] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmachine import machine, pin
from pydub import AudioSegment

from cc_core.archive.archiver import archive_recordings
from cc_core.archive.config import ArchiveConfig
from cc_core.archive.durable import sha256_file
from cc_core.archive.transcode import decoded_seconds, to_opus
from cc_core.archive.verify import verify_archive
from cc_core.calls.recordings import RecordingStore
from cc_core.db.session import make_engine, make_sessionmaker, upgrade
from cc_core.switch.instance import Instance

PROJECT = Path(__file__).resolve().parents[1]
DEFAULT_SOUNDS = PROJECT / "var/switch/root/usr/share/asterisk/sounds/en_US_f_Allison"
RATE = 8000
WAV_BYTES_PER_HOUR = RATE * 2 * 3600
BITRATES = (12, 16, 24)
BITRATE = 16  # the default of [archive] bitrate_kbps
T0 = datetime(2026, 6, 8, 2, 0, tzinfo=UTC)
# What callers and agents of the social-insurance hotline say (for espeak-ng's Mandarin voice).
SENTENCES = (
    "您好，这里是社保服务热线，请问有什么可以帮您？",
    "我想查询一下我的养老金这个月什么时候到账。",
    "请您提供一下身份证号码，我帮您查询。",
    "您的养老金已经在本月十五号发放到您的社保卡账户。",
    "我去年换了单位，医疗保险需要重新办理转移手续吗？",
    "单位之间的转移接续不需要您本人办理，新单位会为您续保。",
    "失业保险金每个月发放一次，请按时到街道办理签到。",
    "生育津贴需要单位在网上提交申请，一般二十个工作日内审核完毕。",
    "还有其他问题吗？感谢您的来电，再见。",
    "好的，明白了，谢谢您。",
)


# ---- audio --------------------------------------------------------------------------------------


def _pcm_of(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        if (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) != (1, 2, RATE):
            return b""
        return wav.readframes(wav.getnframes())


def _noise(rng: random.Random, seconds: float) -> bytes:
    """Faint line noise (about -55 dBFS): a real line is never digital silence."""
    count = int(seconds * RATE)
    return struct.pack(f"<{count}h", *(int(rng.gauss(0, 50)) for _ in range(count)))


def _calls(pieces: list[bytes], count: int, seconds: float, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    calls = []
    target = int(seconds * RATE) * 2
    for _ in range(count):
        parts: list[bytes] = []
        size = 0
        while size < target:
            piece = rng.choice(pieces) + _noise(rng, rng.uniform(0.3, 1.5))
            parts.append(piece)
            size += len(piece)
        calls.append(b"".join(parts)[:target])
    return calls


def allison_pieces(sounds: Path) -> list[bytes]:
    files = sorted(sounds.glob("*.wav"))
    pieces = [pcm for pcm in (_pcm_of(path) for path in files) if len(pcm) > RATE]  # over 0.5 s
    if len(pieces) < 20:
        raise SystemExit(f"bench: too few 8 kHz prompts in {sounds}; run scripts/setup.sh or pass --sounds")
    return pieces


def espeak_pieces(workdir: Path) -> list[bytes]:
    if shutil.which("espeak-ng") is None:
        raise SystemExit("bench: espeak-ng is not installed (scripts/setup.sh installs it); or use --kinds allison")
    pieces = []
    for number, sentence in enumerate(SENTENCES):
        spoken = workdir / f"tts-{number}.wav"
        subprocess.run(["espeak-ng", "-v", "cmn", "-s", "165", "-w", str(spoken), sentence], check=True)
        command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(spoken)]
        command += ["-ac", "1", "-ar", str(RATE), "-f", "s16le", "pipe:1"]
        raw = subprocess.run(
            command,
            check=True,
            capture_output=True,
        ).stdout
        pieces.append(raw)
    return pieces


def write_wav(path: Path, pcm: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm)
    return path


# ---- timing -------------------------------------------------------------------------------------


def run_archive(calls: list[bytes], workdir: Path) -> tuple[float, float, dict[str, Any]]:
    """One archive run over fresh recordings; returns (wall seconds, audio seconds, check)."""
    shutil.rmtree(workdir, ignore_errors=True)
    store, backup = workdir / "store", workdir / "backup"
    store.mkdir(parents=True)
    backup.mkdir()
    url = f"sqlite:///{workdir / 'bench.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        sessions = make_sessionmaker(engine)
        instance = Instance(workdir / "root", "bench")
        recordings = RecordingStore(sessions)
        for number, pcm in enumerate(calls):
            inside = f"{instance.inside}/spool/monitor/2026-06-08/1780884000.{number}.wav"
            at = T0 + timedelta(minutes=number)
            recordings.started(f"1780884000.{number}", "1001", "agent", inside, at)
            host = write_wav(instance.host_path(inside), pcm)
            recordings.finished(inside, at + timedelta(seconds=len(pcm) / 2 / RATE), host)
        config = ArchiveConfig(store=store, backup=backup, host_path=instance.host_path, bitrate_kbps=BITRATE)
        started = time.perf_counter()
        result = archive_recordings(sessions, config, now=T0 + timedelta(hours=1), seal=False)
        wall = time.perf_counter() - started
        check = {
            "archived": len(result.archived),
            "failed": len(result.failed),
            "error": result.error,
            "verify_ok": verify_archive(sessions, config).ok,
            "archived_bytes": result.archived_bytes,
        }
        return wall, result.audio_seconds, check
    finally:
        engine.dispose()


def time_each(paths: list[Path], action: Any) -> float:
    started = time.perf_counter()
    for path in paths:
        action(path)
    return time.perf_counter() - started


def pydub_export(path: Path) -> bytes:
    """pydub's way: the whole call decoded into Python, then spooled through temp files."""
    buffer = io.BytesIO()
    AudioSegment.from_wav(str(path)).export(
        buffer,
        format="ogg",
        codec="libopus",
        bitrate=f"{BITRATE}k",
        parameters=["-vbr", "on", "-application", "voip", "-compression_level", "10"],
    )
    return buffer.getvalue()


def summarise(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def bench_kind(kind: str, calls: list[bytes], rounds: int, workdir: Path) -> dict[str, Any]:
    audio_s = sum(len(pcm) for pcm in calls) / 2 / RATE
    sources = [write_wav(workdir / f"{kind}-src" / f"{n}.wav", pcm) for n, pcm in enumerate(calls)]
    opus_dir = workdir / f"{kind}-opus"
    opus_dir.mkdir(parents=True, exist_ok=True)
    opus = []
    for n, source in enumerate(sources):
        target = opus_dir / f"{n}.opus"
        target.write_bytes(to_opus(source, BITRATE))
        opus.append(target)
    problems: list[str] = []
    rows: dict[str, list[float]] = {"archive": [], "ffmpeg_pipe": [], "pydub_export": [], "decode": [], "hash": []}
    ratios: list[float] = []
    checks: list[dict[str, Any]] = []
    for number in range(rounds):
        wall, archived_s, check = run_archive(calls, workdir / f"{kind}-run")
        checks.append(check)
        rows["archive"].append(archived_s / wall)
        order = ("ffmpeg_pipe", "pydub_export") if number % 2 == 0 else ("pydub_export", "ffmpeg_pipe")
        times = {}
        for name in order:
            action = (lambda p: to_opus(p, BITRATE)) if name == "ffmpeg_pipe" else pydub_export
            times[name] = time_each(sources, action)
            rows[name].append(audio_s / times[name])
        ratios.append(times["pydub_export"] / times["ffmpeg_pipe"])
        rows["decode"].append(audio_s / time_each(opus, decoded_seconds))
        hashed = time_each(opus, lambda p: sha256_file(p, from_disk=True))
        rows["hash"].append(sum(p.stat().st_size for p in opus) / hashed / 1e6)
    for check in checks:
        if check["archived"] != len(calls) or check["failed"] or check["error"] or not check["verify_ok"]:
            problems.append(f"{kind}: the archive run did not archive everything cleanly: {check}")
    for source, encoded in zip(sources, opus, strict=True):
        expected = len(_pcm_of(source)) / 2 / RATE
        if abs(decoded_seconds(encoded) - expected) > 0.5:
            problems.append(f"{kind}: {encoded.name} does not last as long as its original")
    pydub_out = workdir / "pydub-check.opus"
    pydub_out.write_bytes(pydub_export(sources[0]))
    if abs(decoded_seconds(pydub_out) - len(_pcm_of(sources[0])) / 2 / RATE) > 0.5:
        problems.append(f"{kind}: pydub's output does not last as long as its original")
    sizes = {}
    hours = audio_s / 3600
    for bitrate in BITRATES:
        total = sum(len(to_opus(source, bitrate)) for source in sources)
        sizes[bitrate] = {"bytes_per_hour": total / hours, "kbit_per_s": total * 8 / audio_s / 1000}
    return {
        "kind": kind,
        "calls": len(calls),
        "audio_seconds": audio_s,
        "wav_bytes_per_hour": WAV_BYTES_PER_HOUR,
        "x_realtime": {name: summarise(values) for name, values in rows.items() if name != "hash"},
        "hash_mb_per_s": summarise(rows["hash"]),
        "pydub_over_ffmpeg_pipe": statistics.median(ratios),
        "sizes": sizes,
        "rounds": {name: values for name, values in rows.items()},
        "problems": problems,
    }


# ---- report -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds; medians are shown (default 5)")
    parser.add_argument("--calls", type=int, default=4, help="recordings per archive run (default 4)")
    parser.add_argument("--seconds", type=float, default=180.0, help="length of each call (default 180)")
    parser.add_argument("--kinds", default="allison,espeak", help="audio kinds (default allison,espeak)")
    parser.add_argument("--sounds", type=Path, default=DEFAULT_SOUNDS, help="8 kHz prompts for 'allison'")
    parser.add_argument("--seed", type=int, default=5, help="generator seed (default 5)")
    parser.add_argument("--cpu", type=int, help="CPU to pin to (default: the last one allowed)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (under var/)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    if min(args.rounds, args.calls) < 1 or args.seconds < 5 or not set(kinds) <= {"allison", "espeak"}:
        parser.error("--rounds and --calls must be positive, --seconds at least 5, --kinds allison and/or espeak")

    pinned = pin(args.cpu, not args.no_pin)
    (PROJECT / "var").mkdir(exist_ok=True)
    # On the project's disk (like recordings_store/), not a RAM-backed /tmp: fsync costs what it costs.
    workdir = Path(tempfile.mkdtemp(prefix="bench-archive-", dir=PROJECT / "var"))
    results = []
    try:
        for kind in kinds:
            pieces = allison_pieces(args.sounds) if kind == "allison" else espeak_pieces(workdir)
            calls = _calls(pieces, args.calls, args.seconds, args.seed)
            results.append(bench_kind(kind, calls, args.rounds, workdir))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    problems = [problem for result in results for problem in result["problems"]]
    report = {
        "machine": machine(pinned, ffmpeg=_ffmpeg_version()),
        "command": " ".join(["scripts/bench_archive.py", *(argv if argv is not None else sys.argv[1:])]),
        "rounds": args.rounds,
        "bitrate_kbps": BITRATE,
        "results": results,
        "validation": {"ok": not problems, "problems": problems},
    }
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print_report(report)
    return 0 if not problems else 1


def _ffmpeg_version() -> str:
    try:
        first = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return "missing"
    words = first.split()
    return f"ffmpeg {words[2]}" if len(words) > 2 else "unknown"


def _megabytes(value: float) -> str:
    return f"{value / 1e6:.2f} MB"


def print_report(rep: dict[str, Any]) -> None:
    m = rep["machine"]
    pinned = f"pinned to CPU {m['pinned_cpu']}" if m["pinned_cpu"] is not None else "not pinned"
    load = ", load {:.2f} {:.2f} {:.2f}".format(*m["load_avg"]) if m["load_avg"] else ""
    print(f"machine:  {m['cpu']}, {m['cores']} cores ({pinned}); {m['python']}{load}")
    print(f"          {m['platform']}; {m['ffmpeg']}; {m['date_utc']}")
    print(f"command:  {rep['command']}")
    print(f"rounds:   {rep['rounds']} (median, min-max); Opus {rep['bitrate_kbps']} kbit/s mono")
    for r in rep["results"]:
        minutes = r["audio_seconds"] / 60
        print()
        print(f"{r['kind']}: {r['calls']} calls, {minutes:.1f} min of audio per run")
        head = f"  {'what':<44} {'x real time':>12} {'min-max':>17}"
        print(head)
        names = {
            "archive": "archive run (every step, backup included)",
            "ffmpeg_pipe": "transcode: ffmpeg -> pipe (what we do)",
            "pydub_export": "transcode: pydub export",
            "decode": "decode check of the archived file",
        }
        for key, label in names.items():
            s = r["x_realtime"][key]
            print(f"  {label:<44} {s['median']:>11.0f}x {s['min']:>8.0f}-{s['max']:.0f}x")
        h = r["hash_mb_per_s"]
        print(f"  {'SHA-256 from the disk (verify)':<44} {h['median']:>8.0f} MB/s {h['min']:>6.0f}-{h['max']:.0f}")
        print(f"  pydub export takes {r['pydub_over_ffmpeg_pipe']:.2f}x the time of ffmpeg -> pipe (median of rounds)")
        sizes = ", ".join(
            f"{kbps} kbit/s: {_megabytes(s['bytes_per_hour'])} ({s['kbit_per_s']:.1f} kbit/s real)"
            for kbps, s in r["sizes"].items()
        )
        print(f"  per hour of audio: WAV {_megabytes(r['wav_bytes_per_hour'])}; Opus {sizes}")
    v = rep["validation"]
    print()
    print("check:    " + ("ok" if v["ok"] else "FAILED: " + "; ".join(v["problems"])))


if __name__ == "__main__":
    sys.exit(main())

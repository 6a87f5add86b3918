"""Fixtures for the archive: a migrated database (SQLite and PostgreSQL), a stand-in switch chroot
whose spool holds real WAV files, and the archive and backup folders.

Recordings are made the way the controller makes them — :class:`RecordingStore` ``started`` then
``finished`` on a real WAV file (8 kHz, 16-bit, mono, like MixMonitor's) — and archived with the
real ffmpeg. ``tests/archive/test_switch_recordings.py`` archives recordings the real switch made.
"""

from __future__ import annotations

import math
import random
import struct
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from cc_core.archive.config import ArchiveConfig
from cc_core.calls.recordings import RecordingStore
from cc_core.db.models import Recording
from cc_core.db.session import make_engine, make_sessionmaker, upgrade
from cc_core.switch.instance import Instance
from tests.db.conftest import db_url  # noqa: F401  (the SQLite + PostgreSQL fixture)

# 10:00 in Beijing on Friday 1 May 2026.
T0 = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
RATE = 8000
BEIJING = ZoneInfo("Asia/Shanghai")


def speech_like(seconds: float, seed: int = 0) -> bytes:
    """16-bit mono PCM at 8 kHz that sounds roughly like speech: voiced syllables (a pitch with
    harmonics, a formant-like lift) of 0.1-0.3 s, pauses, and a little line noise."""
    rng = random.Random(seed)
    total = int(seconds * RATE)
    samples: list[int] = []
    while len(samples) < total:
        length = int(rng.uniform(0.1, 0.3) * RATE)
        pitch = rng.uniform(110, 220)
        for n in range(length):
            t = n / RATE
            envelope = math.sin(math.pi * n / length)
            voice = sum(math.sin(2 * math.pi * pitch * k * t) / k for k in (1, 2, 3, 5))
            samples.append(int(6000 * envelope * voice + rng.gauss(0, 60)))
        samples.extend(int(rng.gauss(0, 60)) for _ in range(int(rng.uniform(0.05, 0.4) * RATE)))
    clipped = (max(-32768, min(32767, s)) for s in samples[:total])
    return b"".join(struct.pack("<h", s) for s in clipped)


def write_wav(path: Path, seconds: float, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(speech_like(seconds, seed))
    return path


@dataclass
class Site:
    """A database, a stand-in switch chroot and the archive's folders."""

    url: str
    sessions: sessionmaker[Session]
    instance: Instance
    store: Path
    backup: Path

    def config(self, *, backup: bool = True, **changes: object) -> ArchiveConfig:
        values: dict[str, object] = {
            "store": self.store,
            "backup": self.backup if backup else None,
            "host_path": self.instance.host_path,
        }
        values.update(changes)
        return ArchiveConfig(**values)  # type: ignore[arg-type]

    def inside(self, uniqueid: str, at: datetime) -> str:
        """The file MixMonitor writes for a leg answered at ``at`` (Beijing date folder)."""
        day = at.astimezone(BEIJING).strftime("%Y-%m-%d")
        return f"{self.instance.inside}/spool/monitor/{day}/{uniqueid}.wav"

    def record(
        self, uniqueid: str, at: datetime = T0, seconds: float = 2.0, *, seed: int = 0, call: str | None = None
    ) -> int:
        """A finished recording of ``seconds`` of speech-like audio; returns its id."""
        store = RecordingStore(self.sessions)
        file = self.inside(uniqueid, at)
        recording_id = store.started(call or uniqueid, "1001", "agent", file, at)
        write_wav(self.instance.host_path(file), seconds, seed)
        view = store.finished(file, at + timedelta(seconds=seconds), self.instance.host_path(file))
        assert view is not None and view.status == "done", view
        return recording_id

    def original(self, recording_id: int) -> Path:
        """The switch's WAV of the recording, on the host."""
        with self.sessions() as session:
            row = session.get(Recording, recording_id)
            assert row is not None
            return self.instance.host_path(row.file)


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Iterator[Site]:  # noqa: F811
    upgrade(db_url)
    engine = make_engine(db_url)
    store = tmp_path / "store"
    backup = tmp_path / "backup"
    store.mkdir()
    backup.mkdir()
    try:
        yield Site(db_url, make_sessionmaker(engine), Instance(tmp_path / "root", "test"), store, backup)
    finally:
        engine.dispose()

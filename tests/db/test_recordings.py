"""RecordingStore on SQLite and PostgreSQL: legs of a call, checking the file, empty ones deleted, races."""

from __future__ import annotations

import threading
import wave
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from cc_core.calls.recordings import MonitorFolder, OutsideMonitorFolder, RecordingStore, RecordingView
from cc_core.calls.store import CallStore
from cc_core.db.models import Recording
from cc_core.switch.instance import Instance

T0 = datetime(2024, 5, 1, 8, 30, 15, 123456, tzinfo=UTC)
BEIJING = timezone(timedelta(hours=8))
UID = "1714552215.1"
INSIDE = "/var/spool/asterisk/monitor/2024/05/01/1714552215.1-1001.wav"


@pytest.fixture
def recordings(store: CallStore) -> RecordingStore:
    return RecordingStore(store._sessions)


def _arrive(store: CallStore, uniqueid: str = UID) -> int:
    return store.call_arrived(uniqueid, uniqueid, "13800138000", "12333", "PJSIP/carrier-1", T0)


def _wav(path: Path, seconds: float, rate: int = 8000) -> Path:
    """A 16-bit mono WAV of silence, like MixMonitor's."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(rate * seconds))
    return path


def _count(recordings: RecordingStore) -> int:
    with recordings._sessions() as session:
        return session.scalar(select(func.count()).select_from(Recording)) or 0


def test_round_trip_with_a_real_wav(store: CallStore, recordings: RecordingStore, tmp_path: Path) -> None:
    call_id = _arrive(store)
    rec_id = recordings.started(UID, "1001", "agent", INSIDE, T0)
    [view] = recordings.open_recordings()
    assert view == RecordingView(rec_id, call_id, UID, "1001", "agent", INSIDE, T0, None, None, None, "recording")

    host = _wav(tmp_path / "a.wav", 1.5)
    done = recordings.finished(INSIDE, T0 + timedelta(seconds=90), host)
    assert done == RecordingView(
        id=rec_id,
        call_id=call_id,
        uniqueid=UID,
        agent_id="1001",
        leg="agent",
        file=INSIDE,
        started_at=T0,
        ended_at=T0 + timedelta(seconds=90),
        duration_s=1.5,
        size_bytes=44 + 2 * 12000,
        status="done",
    )
    assert host.exists()
    assert recordings.for_call(UID) == [done]
    assert recordings.open_recordings() == []


def test_started_is_idempotent_on_the_file(store: CallStore, recordings: RecordingStore) -> None:
    _arrive(store)
    first = recordings.started(UID, "1001", "agent", INSIDE, T0)
    again = recordings.started("other.1", "1002", "consult", INSIDE, T0 + timedelta(seconds=5))
    assert again == first
    [view] = recordings.for_call(UID)
    assert (view.agent_id, view.leg, view.started_at) == ("1001", "agent", T0)
    assert recordings.for_call("other.1") == []
    assert _count(recordings) == 1


def test_every_leg_of_a_call_in_start_order(store: CallStore, recordings: RecordingStore) -> None:
    _arrive(store)
    recordings.started(UID, "1002", "conference", "/m/3.wav", T0 + timedelta(seconds=30))
    recordings.started(UID, "1001", "agent", "/m/1.wav", T0)
    recordings.started(UID, None, "consult", "/m/2.wav", T0 + timedelta(seconds=20))
    recordings.started("other.1", "1003", "agent", "/m/4.wav", T0)
    views = recordings.for_call(UID)
    assert [(v.file, v.leg, v.agent_id) for v in views] == [
        ("/m/1.wav", "agent", "1001"),
        ("/m/2.wav", "consult", None),
        ("/m/3.wav", "conference", "1002"),
    ]
    assert [v.file for v in recordings.open_recordings()] == ["/m/1.wav", "/m/4.wav", "/m/2.wav", "/m/3.wav"]


def test_recording_without_a_recorded_call(recordings: RecordingStore, tmp_path: Path) -> None:
    recordings.started("unknown.1", "1001", "agent", INSIDE, T0)
    view = recordings.finished(INSIDE, T0, _wav(tmp_path / "a.wav", 1))
    assert view is not None
    assert (view.call_id, view.uniqueid, view.status, view.duration_s) == (None, "unknown.1", "done", 1.0)


@pytest.mark.parametrize(
    ("content", "size"),
    [
        pytest.param(b"", 0, id="zero-bytes"),
        pytest.param(None, 44, id="header-only"),
        pytest.param(0.1, 44 + 1600, id="a-click-of-0.1s"),
    ],
)
def test_a_recording_without_audio_is_deleted(
    recordings: RecordingStore, tmp_path: Path, content: bytes | float | None, size: int
) -> None:
    host = tmp_path / "a.wav"
    if isinstance(content, bytes):
        host.write_bytes(content)
    else:
        _wav(host, content or 0)
    assert host.stat().st_size == size
    recordings.started(UID, "1001", "agent", INSIDE, T0)
    view = recordings.finished(INSIDE, T0 + timedelta(seconds=3), host)
    assert view is not None
    assert (view.status, view.size_bytes, view.ended_at) == ("empty", size, T0 + timedelta(seconds=3))
    assert view.duration_s is not None and view.duration_s < 0.2
    assert not host.exists()
    # A repeat neither reads again (the file is gone: that is not "missing") nor fails.
    assert recordings.finished(INSIDE, T0 + timedelta(seconds=9), host) == view


def test_a_missing_file(recordings: RecordingStore, tmp_path: Path) -> None:
    recordings.started(UID, "1001", "agent", INSIDE, T0)
    view = recordings.finished(INSIDE, T0 + timedelta(seconds=3), tmp_path / "nowhere.wav")
    assert view is not None
    assert (view.status, view.size_bytes, view.duration_s) == ("missing", None, None)
    assert recordings.open_recordings() == []


def test_a_header_the_switch_never_finished(recordings: RecordingStore, tmp_path: Path) -> None:
    """Asterisk writes the data size at close: a file with a zero size in its header still has audio."""
    host = _wav(tmp_path / "a.wav", 2)
    raw = bytearray(host.read_bytes())
    raw[4:8] = raw[40:44] = b"\x00\x00\x00\x00"
    host.write_bytes(bytes(raw))
    recordings.started(UID, "1001", "agent", INSIDE, T0)
    view = recordings.finished(INSIDE, T0, host)
    assert view is not None
    assert (view.status, view.duration_s, view.size_bytes) == ("done", 2.0, 44 + 32000)
    assert host.exists()


def test_a_header_claiming_more_than_the_file_holds(recordings: RecordingStore, tmp_path: Path) -> None:
    host = _wav(tmp_path / "a.wav", 2)
    host.write_bytes(host.read_bytes()[: 44 + 8000])  # cut after 0.5 s
    recordings.started(UID, "1001", "agent", INSIDE, T0)
    view = recordings.finished(INSIDE, T0, host)
    assert view is not None
    assert (view.status, view.duration_s) == ("done", 0.5)


def test_gsm_in_wav_with_extra_chunks(recordings: RecordingStore, tmp_path: Path) -> None:
    """WAV49 (GSM, 1625 bytes a second) with a LIST chunk before the data: timed by its byte rate."""
    fmt = (0x31).to_bytes(2, "little") + (1).to_bytes(2, "little") + (8000).to_bytes(4, "little")
    fmt += (1625).to_bytes(4, "little") + (65).to_bytes(2, "little") + (0).to_bytes(2, "little")
    fmt += (2).to_bytes(2, "little") + (320).to_bytes(2, "little")
    body = b"WAVE" + b"fmt " + len(fmt).to_bytes(4, "little") + fmt
    body += b"LIST" + (3).to_bytes(4, "little") + b"abc\x00"  # odd length, padded
    body += b"data" + (3250).to_bytes(4, "little") + b"\x01" * 3250
    host = tmp_path / "a.wav"
    host.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)
    recordings.started(UID, "1001", "agent", INSIDE, T0)
    view = recordings.finished(INSIDE, T0, host)
    assert view is not None
    assert (view.status, view.duration_s) == ("done", 2.0)


def test_a_file_that_is_no_wav_is_kept(recordings: RecordingStore, tmp_path: Path) -> None:
    host = tmp_path / "a.wav"
    host.write_bytes(b"not a wav file at all" * 10)
    recordings.started(UID, "1001", "agent", INSIDE, T0)
    view = recordings.finished(INSIDE, T0, host)
    assert view is not None
    assert (view.status, view.duration_s, view.size_bytes) == ("done", None, 210)
    assert host.exists()


def test_finished_for_an_unknown_file(recordings: RecordingStore, tmp_path: Path) -> None:
    host = tmp_path / "a.wav"
    host.write_bytes(b"")
    assert recordings.finished(INSIDE, T0, host) is None
    assert host.exists()


def test_finished_again_changes_nothing(recordings: RecordingStore, tmp_path: Path) -> None:
    host = _wav(tmp_path / "a.wav", 1)
    recordings.started(UID, "1001", "agent", INSIDE, T0)
    first = recordings.finished(INSIDE, T0 + timedelta(seconds=1), host)
    host.unlink()
    assert recordings.finished(INSIDE, T0 + timedelta(seconds=5), host) == first


def test_a_recording_outlives_its_call(store: CallStore, recordings: RecordingStore) -> None:
    _arrive(store)
    recordings.started(UID, "1001", "agent", INSIDE, T0)
    with store._sessions() as session, session.begin():
        session.execute(text("DELETE FROM calls"))
    [view] = recordings.for_call(UID)
    assert (view.call_id, view.uniqueid) == (None, UID)


def test_times_come_back_as_aware_utc(recordings: RecordingStore, tmp_path: Path) -> None:
    local = datetime(2024, 5, 1, 16, 30, tzinfo=BEIJING)
    recordings.started(UID, "1001", "agent", INSIDE, local)
    view = recordings.finished(INSIDE, local + timedelta(seconds=1), _wav(tmp_path / "a.wav", 1))
    assert view is not None
    assert view.started_at == local and view.started_at.utcoffset() == timedelta(0)
    assert view.ended_at is not None and view.ended_at.hour == 8


BAD_STARTS: list[tuple[dict[str, object], str]] = [
    ({"leg": "caller"}, "leg"),
    ({"leg": ""}, "leg"),
    ({"file_inside": ""}, "file"),
    ({"file_inside": "\x00"}, "file"),
    ({"agent_id": "1" * 17}, "agent_id"),
    ({"agent_id": ""}, "agent_id"),
    ({"uniqueid": ""}, "uniqueid"),
    ({"uniqueid": "1" * 65}, "uniqueid"),
    ({"at": datetime(2024, 5, 1, 8, 30)}, "naive"),
]


def test_bad_values_are_refused(recordings: RecordingStore, tmp_path: Path) -> None:
    args: dict[str, object] = {"uniqueid": UID, "agent_id": "1001", "leg": "agent", "file_inside": INSIDE, "at": T0}
    for change, message in BAD_STARTS:
        with pytest.raises(ValueError, match=message):
            recordings.started(**(args | change))  # type: ignore[arg-type]
    assert _count(recordings) == 0
    with pytest.raises(ValueError, match="naive"):
        recordings.finished(INSIDE, datetime(2024, 5, 1, 8, 30), tmp_path / "a.wav")


def test_long_file_names_are_clipped(recordings: RecordingStore, tmp_path: Path) -> None:
    long = "/录音/" + "x" * 300 + ".wav"
    rec_id = recordings.started(UID, "1001", "agent", long, T0)
    [view] = recordings.open_recordings()
    assert (view.id, view.file) == (rec_id, long[:255])
    assert recordings.finished(long, T0, _wav(tmp_path / "a.wav", 1)) is not None


class _RacingRecordings(RecordingStore):
    """Both threads look the file up, find nothing, and only then insert."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.barrier = threading.Barrier(2, timeout=10)
        self.lookups = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    def _find_id(self, session: Session, file: str) -> int | None:
        found = super()._find_id(session, file)
        with self._lock:
            self.lookups += 1
        if not getattr(self._local, "waited", False):
            self._local.waited = True
            self.barrier.wait()
        return found


def test_concurrent_started_makes_one_row(store: CallStore, recordings: RecordingStore) -> None:
    _arrive(store)
    racing = _RacingRecordings(recordings._sessions)
    with ThreadPoolExecutor(2) as pool:
        ids = list(pool.map(lambda _: racing.started(UID, "1001", "agent", INSIDE, T0), range(2)))
    assert ids[0] == ids[1]
    # Two lookups before the inserts, one more by the loser after its IntegrityError.
    assert racing.lookups == 3
    assert _count(recordings) == 1


def test_concurrent_finishers_write_once(recordings: RecordingStore, tmp_path: Path) -> None:
    host = _wav(tmp_path / "a.wav", 0.1)
    recordings.started(UID, "1001", "agent", INSIDE, T0)
    barrier = threading.Barrier(4, timeout=10)

    def finish(n: int) -> RecordingView | None:
        barrier.wait()
        return recordings.finished(INSIDE, T0 + timedelta(seconds=n), host)

    with ThreadPoolExecutor(4) as pool:
        views = list(pool.map(finish, range(4)))
    [view] = recordings.for_call(UID)
    assert view.status == "empty"
    assert view.ended_at in {T0 + timedelta(seconds=n) for n in range(4)}
    # Every finisher returns the one outcome, also those that found the file deleted already.
    assert views == [view] * 4
    assert not host.exists()


def _monitored(store: CallStore, tmp_path: Path) -> tuple[RecordingStore, Path]:
    """A store that takes only files of the instance's monitor folder, as the controller's does."""
    instance = Instance(tmp_path / "root", "cc")
    monitor = MonitorFolder.of(instance.inside, instance.host_path)
    monitor.host.mkdir(parents=True)
    return RecordingStore(store._sessions, monitor), monitor.host


@pytest.mark.parametrize(
    "forged",
    [
        "/etc/passwd",
        "/srv/hotline/cc/spool/monitor/../../secrets.json",
        "/srv/hotline/cc/spool/monitor",
        "/srv/hotline/cc/spool/monitor/2024-05-01/../../../secrets.json",
        "/srv/hotline/cc/spool/monitor/link/passwd",  # a symlinked folder pointing out
        "spool/monitor/a.wav",  # relative: the switch always names the full path
        "/srv/hotline/other/spool/monitor/a.wav",  # another instance's folder
    ],
)
def test_a_file_outside_the_monitor_folder_is_refused(store: CallStore, tmp_path: Path, forged: str) -> None:
    """Issue 11 item 6: a forged HotlineRecording ``File:`` leaves no row (so nothing can
    replay it); the genuine name is taken."""
    _arrive(store)
    recordings, host = _monitored(store, tmp_path)
    (host / "link").symlink_to(tmp_path)
    with pytest.raises(OutsideMonitorFolder):
        recordings.started(UID, "1001", "agent", forged, T0)
    assert _count(recordings) == 0
    good = f"/srv/hotline/cc/spool/monitor/2024-05-01/{UID}.wav"
    assert recordings.started(UID, "1001", "agent", good, T0) > 0
    assert [r.file for r in recordings.for_call(UID)] == [good]


def test_a_forged_row_is_closed_without_touching_its_file(store: CallStore, tmp_path: Path) -> None:
    """A row written before the check (or into the database by hand) naming a file outside the
    folder: finishing it neither reads nor deletes that file (a tiny one would count as "empty"
    and be deleted); the row is closed as missing."""
    _arrive(store)
    victim = tmp_path / "root" / "etc" / "tiny.conf"
    victim.parent.mkdir(parents=True)
    victim.write_bytes(b"x=1\n")  # under 44 bytes: "empty" if inspected, and deleted
    RecordingStore(store._sessions).started(UID, "1001", "agent", "/etc/tiny.conf", T0)
    recordings, _host = _monitored(store, tmp_path)
    done = recordings.finished("/etc/tiny.conf", T0 + timedelta(seconds=5), victim)
    assert done is not None and done.status == "missing" and done.size_bytes is None
    assert victim.read_bytes() == b"x=1\n"

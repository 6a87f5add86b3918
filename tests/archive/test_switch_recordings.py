"""Archiving recordings the real switch made (issue 5's Done-when): a citizen's call reaches an
agent's phone on the simulated world, MixMonitor records the conversation into the chroot, and
the archiver turns that very file into a verified Opus copy and removes it from the switch."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydub import AudioSegment

from cc_core.archive.archiver import archive_recordings
from cc_core.archive.config import ArchiveConfig
from cc_core.archive.transcode import decoded_seconds
from cc_core.archive.verify import verify_archive
from cc_core.archive.views import archived_recording
from cc_core.calls.recordings import RecordingView
from cc_core.db.session import make_engine, make_sessionmaker
from tests.harness.acd import answered, login, place, rung, stores
from tests.harness.ami import AmiPeer
from tests.harness.calls import wait_until
from tests.harness.hotline import Hotline
from tests.harness.world import World

pytestmark = pytest.mark.switch

IDLE = "12340"  # the test flows' number for the "idle" queue (longest idle agent)


def test_a_real_conversation_is_archived(acd: Hotline, world: World, cc_ami: AmiPeer, tmp_path: Path) -> None:
    world.phone("1002").answers_after(0.5).plays("hello-world&hello-world").hangs_up_after(0.5)
    login(acd, "1002")
    call, uid, since = place(world, cc_ami, IDLE, "13800005001")
    mark, chosen = rung(cc_ami, uid, since)
    assert chosen == "1002"
    answered(cc_ami, uid, mark)
    call.speak("hello-world")
    recordings, _ = stores(acd)

    def finished() -> list[RecordingView] | None:
        done = [r for r in recordings.for_call(uid) if r.status != "recording"]
        return done or None

    found = wait_until(finished, 30, "the recording closed")
    assert isinstance(found, list) and len(found) == 1
    recording: RecordingView = found[0]
    call.hang_up()
    assert recording.status == "done" and recording.duration_s is not None and recording.duration_s > 1.0
    original = acd.instance.host_path(recording.file)
    assert original.is_file()

    store, backup = tmp_path / "store", tmp_path / "backup"
    store.mkdir()
    backup.mkdir()
    config = ArchiveConfig(store=store, backup=backup, host_path=acd.instance.host_path)
    engine = make_engine(acd.settings.database_url)
    try:
        sessions = make_sessionmaker(engine)
        result = archive_recordings(sessions, config, only=[recording.id], seal=False)
        assert result.ok and result.archived == [recording.id], result
        view = archived_recording(sessions, recording.id)
        assert view is not None and view.state == "archived" and view.path is not None
        # Named after the agent leg's uniqueid, under the Beijing day MixMonitor's folder names.
        wav_day = Path(recording.file).parent.name
        assert view.path == f"{wav_day.replace('-', '/')}/{Path(recording.file).stem}.opus"
        archived = store / view.path
        assert abs(decoded_seconds(archived) - recording.duration_s) < 0.5
        audio = AudioSegment.from_file(str(archived), format="ogg")
        assert audio.dBFS > -45, f"the archived recording is silent ({audio.dBFS:.1f} dBFS)"
        assert not original.exists()
        assert (backup / view.path).read_bytes() == archived.read_bytes()
        report = verify_archive(sessions, config)
        assert report.ok, [finding.line() for finding in report.findings]
    finally:
        engine.dispose()

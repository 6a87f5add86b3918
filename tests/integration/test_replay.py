"""Issue 5 end to end: a real conversation recorded by the switch, archived with
``hotline recordings archive``, found and played by an auditor through the running
controller's API (with seeking), and the listen on the audit log; an agent is refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydub import AudioSegment
from sqlalchemy import delete

from cc_core.archive.views import archived_recording
from cc_core.db.models import Recording
from cc_core.db.session import make_engine, make_sessionmaker
from tests.harness.acd import answered, login, place, rung, stores
from tests.harness.ami import AmiPeer
from tests.harness.calls import wait_until
from tests.harness.hotline import REPO, Hotline
from tests.harness.web import WebClient
from tests.harness.world import World

pytestmark = pytest.mark.switch

IDLE = "12340"
PASSWORD = "Audit-room-2026"


def cli(hotline: Hotline, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cc_core.cli", "--config", str(hotline.config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=hotline.controller_env(),
        check=False,
    )


def browser(hotline: Hotline) -> WebClient:
    return WebClient(hotline.settings.controller.web_port)


def test_a_recorded_call_is_archived_found_and_replayed_by_an_auditor(
    acd: Hotline, world: World, cc_ami: AmiPeer, tmp_path: Path
) -> None:
    world.phone("1002").answers_after(0.5).plays("hello-world&hello-world").hangs_up_after(0.5)
    login(acd, "1002")
    call, uid, since = place(world, cc_ami, IDLE, "13800005101")
    mark, chosen = rung(cc_ami, uid, since)
    assert chosen == "1002"
    answered(cc_ami, uid, mark)
    call.speak("hello-world")
    recordings, _ = stores(acd)
    closed = wait_until(lambda: [r for r in recordings.for_call(uid) if r.status == "done"], 30, "recording closed")
    [recording] = closed  # type: ignore[misc]
    call.hang_up()

    archived = cli(acd, "recordings", "archive")
    assert archived.returncode == 0, archived.stdout + archived.stderr
    sessions = make_sessionmaker(make_engine(acd.settings.database_url))
    state = archived_recording(sessions, recording.id)
    assert state is not None and state.state == "archived" and state.format == "ogg/opus mono 16 kbit/s"
    assert not acd.instance.host_path(recording.file).exists()  # the switch's original is gone
    status = cli(acd, "recordings", "status")
    assert status.returncode == 0 and "archived" in status.stdout

    # No default accounts: the auditor is made on the command line.
    made = cli(acd, "user", "add", "audit.wang", "--role", "auditor", "--password-stdin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    made = cli(acd, "user", "add", "agent.li", "--role", "agent", "--password-stdin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr

    agent = browser(acd)
    assert agent.login("agent.li", PASSWORD) == 200
    assert agent.request("GET", f"/api/recordings/{recording.id}/audio")[0] == 403

    auditor = browser(acd)
    assert auditor.login("audit.wang", PASSWORD) == 200
    code, body = auditor.request("GET", "/api/recordings?caller=13800005101")
    assert code == 200
    [hit] = json.loads(body)["recordings"]
    assert hit["id"] == recording.id and hit["agent_id"] == "1002"
    code, whole = auditor.request("GET", f"/api/recordings/{recording.id}/audio")
    assert code == 200 and auditor.headers["content-type"] == "audio/ogg"
    code, middle = auditor.request("GET", f"/api/recordings/{recording.id}/audio", headers={"Range": "bytes=1000-1999"})
    assert code == 206 and middle == whole[1000:2000]
    code, _ = auditor.request("GET", f"/api/recordings/{recording.id}/audio", headers={"Range": f"bytes={len(whole)}-"})
    assert code == 416
    path = tmp_path / "played.opus"
    path.write_bytes(whole)
    audio = AudioSegment.from_file(path)
    assert audio.duration_seconds > 1.0 and audio.dBFS > -45
    code, body = auditor.request("GET", f"/api/audit?target={recording.id}")
    entries = json.loads(body)["entries"]
    assert code == 200
    assert [e["action"] for e in entries if e["allowed"] and e["actor"] == "audit.wang"] == ["listen"]
    assert any(e["actor"] == "agent.li" and not e["allowed"] for e in entries)


def test_a_forged_recording_event_leaves_no_row_to_replay(controller: Hotline, cc_ami: AmiPeer) -> None:
    """Issue 11 item 6: a HotlineRecording event naming a file outside the monitor folder (here
    sent by AMI's UserEvent, as anyone who can reach AMI or inject into the dialplan could) is
    refused by the controller: no recording row, so replay can never serve that file. A genuine
    name sent just after is taken: the controller has handled both."""
    inst = controller.instance.inside
    forged = {
        "/etc/passwd": "forged-1.1",
        f"{inst}/spool/monitor/../../../../var/secrets.json": "forged-1.2",
    }
    genuine = f"{inst}/spool/monitor/2026-12-04/forged-1.3.wav"
    for file, uid in [*forged.items(), (genuine, "forged-1.3")]:
        answer = cc_ami.action(
            {"Action": "UserEvent", "UserEvent": "HotlineRecording", "File": file, "Agent": "1001", "Call": uid}
        )
        assert answer.get("Response") == "Success", answer
    recordings, _ = stores(controller)
    try:
        wait_until(lambda: recordings.for_call("forged-1.3") or None, 20, "the genuine name taken")
        for file, uid in forged.items():
            assert recordings.for_call(uid) == [], file
    finally:
        sessions = make_sessionmaker(make_engine(controller.settings.database_url))
        with sessions.begin() as session:
            session.execute(delete(Recording).where(Recording.uniqueid.like("forged-1.%")))

"""VoicemailStore on SQLite and PostgreSQL: round trips, ordering, idempotency and the link to calls."""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from cc_core.calls.store import CallStore
from cc_core.calls.voicemail import VoicemailStore, VoicemailView
from cc_core.db.models import Voicemail

T0 = datetime(2024, 5, 1, 18, 5, 0, 250000, tzinfo=UTC)
BEIJING = timezone(timedelta(hours=8))
UID = "1714586700.7"
FILE = "/var/spool/asterisk/voicemail/hotline/1714586700.7.wav"


@pytest.fixture
def voicemails(store: CallStore) -> VoicemailStore:
    return VoicemailStore(store._sessions)


def _arrive(store: CallStore, uniqueid: str = UID) -> int:
    return store.call_arrived(uniqueid, uniqueid, "13800138000", "12333", "PJSIP/carrier-1", T0)


def _leave(voicemails: VoicemailStore, uniqueid: str = UID, file: str = FILE, at: datetime = T0, **kw: object) -> int:
    args: dict[str, object] = {"caller_number": "13800138000", "flow": "下班后", "node": "留言", "duration_s": 12.5}
    args |= kw
    return voicemails.add(uniqueid, file=file, at=at, **args)  # type: ignore[arg-type]


def _count(voicemails: VoicemailStore) -> int:
    with voicemails._sessions() as session:
        return session.scalar(select(func.count()).select_from(Voicemail)) or 0


def test_round_trip_with_chinese_text(store: CallStore, voicemails: VoicemailStore) -> None:
    call_id = _arrive(store)
    vm_id = voicemails.add(UID, "13800138000", "社保热线-下班后", "留言：养老金", "/录音/留言-张三.wav", 42.75, T0)
    assert voicemails.list() == [
        VoicemailView(
            id=vm_id,
            call_id=call_id,
            uniqueid=UID,
            caller_number="13800138000",
            flow="社保热线-下班后",
            node="留言：养老金",
            file="/录音/留言-张三.wav",
            duration_s=42.75,
            created_at=T0,
            listened_at=None,
            listened_by=None,
        )
    ]


def test_voicemail_without_a_recorded_call(voicemails: VoicemailStore) -> None:
    """The controller may have missed the call (restart): the message is still kept."""
    _leave(voicemails, uniqueid="unknown.1")
    [view] = voicemails.list()
    assert (view.call_id, view.uniqueid) == (None, "unknown.1")


def test_add_is_idempotent_on_uniqueid_and_file(store: CallStore, voicemails: VoicemailStore) -> None:
    _arrive(store)
    first = _leave(voicemails)
    again = _leave(voicemails, at=T0 + timedelta(seconds=5), duration_s=99.0, caller_number="999", node="其他")
    assert again == first
    [view] = voicemails.list()
    assert (view.duration_s, view.caller_number, view.node, view.created_at) == (12.5, "13800138000", "留言", T0)
    # Another recording of the same call, or the same path for another call, is a new message.
    second = _leave(voicemails, file=FILE + ".2")
    other = _leave(voicemails, uniqueid="other.1")
    assert len({first, second, other}) == 3
    assert _count(voicemails) == 3


def test_list_is_newest_first_with_limit_and_unheard_only(voicemails: VoicemailStore) -> None:
    # Written out of order; two share a timestamp (then the later id comes first).
    ids: dict[int, int] = {}
    for n, offset in enumerate([30, 10, 20, 20, 0]):
        ids[n] = _leave(voicemails, uniqueid=f"u.{n}", at=T0 + timedelta(minutes=offset))
    assert [v.uniqueid for v in voicemails.list()] == ["u.0", "u.3", "u.2", "u.1", "u.4"]
    assert [v.uniqueid for v in voicemails.list(limit=2)] == ["u.0", "u.3"]
    assert voicemails.mark_listened(ids[0], "agent-007", T0 + timedelta(hours=1))
    assert voicemails.mark_listened(ids[2], "agent-007", T0 + timedelta(hours=1))
    assert [v.uniqueid for v in voicemails.list(unheard_only=True)] == ["u.3", "u.1", "u.4"]
    assert [v.uniqueid for v in voicemails.list(limit=1, unheard_only=True)] == ["u.3"]
    assert len(voicemails.list(unheard_only=False)) == 5
    with pytest.raises(ValueError):
        voicemails.list(limit=0)


def test_mark_listened_keeps_the_first_listen(voicemails: VoicemailStore) -> None:
    vm_id = _leave(voicemails)
    assert voicemails.mark_listened(vm_id, "王芳", T0 + timedelta(hours=14)) is True
    assert voicemails.mark_listened(vm_id, "李四", T0 + timedelta(hours=15)) is True
    [view] = voicemails.list()
    assert (view.listened_by, view.listened_at) == ("王芳", T0 + timedelta(hours=14))
    assert voicemails.list(unheard_only=True) == []


def test_mark_listened_unknown_voicemail(voicemails: VoicemailStore) -> None:
    assert voicemails.mark_listened(12345, "agent", T0) is False
    assert _count(voicemails) == 0


def test_voicemail_outlives_its_call(store: CallStore, voicemails: VoicemailStore) -> None:
    """Deleting the call sets call_id to NULL (on SQLite too: the engine turns foreign keys on)."""
    _arrive(store)
    _arrive(store, uniqueid="kept.1")
    vm_id = _leave(voicemails)
    kept_id = _leave(voicemails, uniqueid="kept.1")
    with store._sessions() as session, session.begin():
        session.execute(text("DELETE FROM calls WHERE uniqueid = :u"), {"u": UID})
    views = {v.id: v for v in voicemails.list()}
    assert views[vm_id].call_id is None
    assert (views[vm_id].uniqueid, views[vm_id].file) == (UID, FILE)
    assert views[kept_id].call_id is not None
    assert voicemails.mark_listened(vm_id, "agent", T0) is True


def test_times_come_back_as_aware_utc(voicemails: VoicemailStore) -> None:
    local = datetime(2024, 5, 2, 2, 5, tzinfo=BEIJING)  # 18:05 UTC the day before
    vm_id = _leave(voicemails, at=local)
    voicemails.mark_listened(vm_id, "agent", local + timedelta(hours=8))
    [view] = voicemails.list()
    assert view.listened_at is not None
    for value in (view.created_at, view.listened_at):
        assert value.utcoffset() == timedelta(0)
    assert view.created_at == local and view.created_at.hour == 18
    assert view.listened_at == local + timedelta(hours=8)


def test_long_and_odd_values_are_clipped(voicemails: VoicemailStore) -> None:
    long_file = "/var/spool/" + "录音" * 200 + ".wav"
    _leave(voicemails, file=long_file + "\x00", caller_number="1" * 40 + "\x00", flow="流程" * 40, node="n" * 70)
    vm_id = _leave(voicemails, file=long_file)  # the same file after clipping: a repeat
    voicemails.mark_listened(vm_id, "坐席" * 40, T0)
    [view] = voicemails.list()
    assert view.file == long_file[:255]
    assert view.caller_number == "1" * 32
    assert view.flow == ("流程" * 40)[:64]
    assert view.node == "n" * 64
    assert view.listened_by == ("坐席" * 40)[:64]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"at": datetime(2024, 5, 1, 18, 5)}, "naive"),
        ({"uniqueid": ""}, "uniqueid"),
        ({"uniqueid": "x" * 65}, "uniqueid"),
        ({"file": ""}, "file"),
        ({"file": "\x00"}, "file"),
        ({"duration_s": -1.0}, "duration_s"),
        ({"duration_s": math.nan}, "duration_s"),
        ({"duration_s": math.inf}, "duration_s"),
    ],
)
def test_bad_values_are_refused(voicemails: VoicemailStore, change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _leave(voicemails, **change)  # type: ignore[arg-type]
    assert _count(voicemails) == 0


def test_mark_listened_refuses_naive_datetimes(voicemails: VoicemailStore) -> None:
    vm_id = _leave(voicemails)
    with pytest.raises(ValueError, match="naive"):
        voicemails.mark_listened(vm_id, "agent", datetime(2024, 5, 1, 18, 5))
    assert voicemails.list(unheard_only=True)[0].id == vm_id


def test_zero_length_and_integer_durations(voicemails: VoicemailStore) -> None:
    _leave(voicemails, duration_s=0)
    [view] = voicemails.list()
    assert view.duration_s == 0.0 and isinstance(view.duration_s, float)


class _RacingVoicemails(VoicemailStore):
    """Both threads look the voicemail up, find nothing, and only then insert."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.barrier = threading.Barrier(2, timeout=10)
        self.lookups = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    def _find_id(self, session: Session, uniqueid: str, file: str) -> int | None:
        found = super()._find_id(session, uniqueid, file)
        with self._lock:
            self.lookups += 1
        if not getattr(self._local, "waited", False):
            self._local.waited = True
            self.barrier.wait()
        return found


def test_concurrent_add_makes_one_row(store: CallStore, voicemails: VoicemailStore) -> None:
    _arrive(store)
    racing = _RacingVoicemails(voicemails._sessions)
    with ThreadPoolExecutor(2) as pool:
        ids = list(pool.map(lambda _: _leave(racing), range(2)))
    assert ids[0] == ids[1]
    # Two lookups before the inserts, one more by the loser after its IntegrityError.
    assert racing.lookups == 3
    assert _count(voicemails) == 1


def test_many_threads_same_and_different_voicemails(voicemails: VoicemailStore) -> None:
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda n: _leave(voicemails, file=f"/r/{n % 4}.wav"), range(32)))
    assert len(set(ids)) == 4
    assert _count(voicemails) == 4

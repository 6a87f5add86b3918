"""CallStore on SQLite and PostgreSQL: round trips, idempotency, time zones and races."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from cc_core.calendars.days import local_day, local_day_bounds
from cc_core.calls.callbacks import CallbackStore
from cc_core.calls.fields import is_anonymous
from cc_core.calls.reports import DayStats
from cc_core.calls.store import IVR_EXITS, CallStore, NotServedError
from cc_core.calls.views import CallView
from cc_core.db.models import Call, CallEvent
from cc_core.db.session import make_engine, make_sessionmaker, upgrade

T0 = datetime(2024, 5, 1, 8, 30, 15, 123456, tzinfo=UTC)
BEIJING = timezone(timedelta(hours=8))


def _arrive(store: CallStore, uniqueid: str = "1714552215.1", at: datetime = T0, **kw: str) -> int:
    args = {
        "linkedid": uniqueid,
        "caller_number": "13800138000",
        "dialed_number": "12333",
        "channel": "PJSIP/carrier-00000001",
    } | kw
    return store.call_arrived(uniqueid, at=at, **args)


def _count(store: CallStore, model: type[Call] | type[CallEvent]) -> int:
    with store._sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_round_trip_with_chinese_text(store: CallStore) -> None:
    call_id = store.call_arrived(
        "1714552215.1",
        "1714552215.0",
        "13800138000",
        "12333",
        "PJSIP/运营商-00000001",
        T0,
        caller_name="张三（社保）",
    )
    assert store.add_digits("1714552215.1", "1", T0 + timedelta(seconds=5))
    assert store.add_digits("1714552215.1", "2#", T0 + timedelta(seconds=6))
    assert store.mark_fallback("1714552215.1", T0 + timedelta(seconds=7))
    assert store.call_ended("1714552215.1", 16, "Normal Clearing", T0 + timedelta(seconds=30))

    view = store.get("1714552215.1")
    assert view == CallView(
        id=call_id,
        uniqueid="1714552215.1",
        linkedid="1714552215.0",
        caller_number="13800138000",
        dialed_number="12333",
        channel="PJSIP/运营商-00000001",
        arrived_at=T0,
        answered_at=None,
        ended_at=T0 + timedelta(seconds=30),
        digits="12#",
        hangup_cause=16,
        hangup_cause_text="Normal Clearing",
        status="ended",
        fallback=True,
        events=[
            (
                T0,
                "arrived",
                {
                    "caller_number": "13800138000",
                    "dialed_number": "12333",
                    "channel": "PJSIP/运营商-00000001",
                    "caller_name": "张三（社保）",
                },
            ),
            (T0 + timedelta(seconds=5), "digits", {"digits": "1"}),
            (T0 + timedelta(seconds=6), "digits", {"digits": "2#"}),
            (T0 + timedelta(seconds=7), "fallback", {}),
            (T0 + timedelta(seconds=30), "hangup", {"cause": 16, "cause_text": "Normal Clearing"}),
        ],
    )


def test_new_call_defaults(store: CallStore) -> None:
    _arrive(store)
    view = store.get("1714552215.1")
    assert view is not None
    assert (view.status, view.fallback, view.digits, view.ended_at, view.hangup_cause) == (
        "ivr",
        False,
        "",
        None,
        None,
    )


def test_call_arrived_is_idempotent(store: CallStore) -> None:
    first = _arrive(store)
    again = _arrive(store, at=T0 + timedelta(seconds=3), caller_number="999", channel="PJSIP/other-2")
    assert again == first
    view = store.get("1714552215.1")
    assert view is not None
    assert (view.caller_number, view.channel, view.arrived_at) == (
        "13800138000",
        "PJSIP/carrier-00000001",
        T0,
    )
    assert [kind for _, kind, _ in view.events] == ["arrived"]
    assert _count(store, Call) == 1


def test_call_ended_is_idempotent(store: CallStore) -> None:
    _arrive(store)
    assert store.call_ended("1714552215.1", 16, "Normal Clearing", T0 + timedelta(seconds=10)) is True
    # The repeat still reports a known call, but records nothing.
    assert store.call_ended("1714552215.1", 17, "User busy", T0 + timedelta(seconds=20)) is True
    view = store.get("1714552215.1")
    assert view is not None
    assert (view.ended_at, view.hangup_cause, view.hangup_cause_text) == (
        T0 + timedelta(seconds=10),
        16,
        "Normal Clearing",
    )
    assert [kind for _, kind, _ in view.events] == ["arrived", "hangup"]


def test_mark_fallback_is_idempotent(store: CallStore) -> None:
    _arrive(store)
    assert store.mark_fallback("1714552215.1", T0) is True
    assert store.mark_fallback("1714552215.1", T0) is True
    view = store.get("1714552215.1")
    assert view is not None and view.fallback
    assert [kind for _, kind, _ in view.events] == ["arrived", "fallback"]


def test_unknown_uniqueid_changes_nothing(store: CallStore) -> None:
    assert store.call_ended("nope.1", 16, "Normal Clearing", T0) is False
    assert store.call_ended("nope.1", None, None, T0) is False
    assert store.add_digits("nope.1", "1", T0) is False
    assert store.mark_fallback("nope.1", T0) is False
    assert store.get("nope.1") is None
    assert _count(store, Call) == 0
    assert _count(store, CallEvent) == 0


def test_hangup_without_cause(store: CallStore) -> None:
    _arrive(store)
    assert store.call_ended("1714552215.1", None, None, T0 + timedelta(seconds=1))
    view = store.get("1714552215.1")
    assert view is not None
    assert (view.hangup_cause, view.hangup_cause_text, view.status) == (None, None, "ended")
    assert view.events[-1][2] == {"cause": None, "cause_text": None}


def test_datetimes_come_back_as_aware_utc(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    if engine.dialect.name == "postgresql":
        # A session time zone far from UTC: values must still come back in UTC.
        @event.listens_for(engine, "connect")
        def _shanghai(dbapi_connection: object, _record: object) -> None:
            cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
            cursor.execute("SET TIME ZONE 'Asia/Shanghai'")
            cursor.close()
            dbapi_connection.commit()  # type: ignore[attr-defined]

    try:
        store = CallStore(make_sessionmaker(engine))
        local = datetime(2024, 5, 1, 16, 30, tzinfo=BEIJING)  # 08:30 UTC
        _arrive(store, at=local)
        store.call_ended("1714552215.1", 16, "Normal Clearing", local + timedelta(minutes=1))
        view = store.get("1714552215.1")
        assert view is not None
        for value in (view.arrived_at, view.ended_at, *(at for at, _, _ in view.events)):
            assert value is not None
            assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
        assert view.arrived_at == local
        assert view.arrived_at.hour == 8
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                raw = conn.execute(text("SELECT arrived_at FROM calls")).scalar()
                assert str(raw).startswith("2024-05-01 08:30:00")
            else:
                assert conn.execute(text("SHOW TIME ZONE")).scalar() == "Asia/Shanghai"
    finally:
        engine.dispose()


def test_naive_datetimes_are_refused(store: CallStore) -> None:
    naive = datetime(2024, 5, 1, 8, 30)
    with pytest.raises(ValueError, match="naive"):
        _arrive(store, at=naive)
    _arrive(store)
    with pytest.raises(ValueError, match="naive"):
        store.call_ended("1714552215.1", 16, None, naive)
    assert _count(store, Call) == 1


def test_long_and_odd_values_are_clipped(store: CallStore) -> None:
    _arrive(store, caller_number="1" * 50 + "\x00", channel="PJSIP/" + "x" * 300)
    store.add_digits("1714552215.1", "9" * 60, T0)
    store.add_digits("1714552215.1", "8" * 10, T0)
    store.call_ended("1714552215.1", 16, "很长的原因" * 30, T0)
    view = store.get("1714552215.1")
    assert view is not None
    assert view.caller_number == "1" * 32
    assert len(view.channel) == 128
    assert view.digits == "9" * 60 + "8" * 4
    assert view.hangup_cause_text == ("很长的原因" * 30)[:64]


def test_uniqueid_must_fit(store: CallStore) -> None:
    with pytest.raises(ValueError, match="uniqueid"):
        _arrive(store, uniqueid="x" * 65)
    with pytest.raises(ValueError, match="uniqueid"):
        _arrive(store, uniqueid="")


def test_recent_and_open_calls(store: CallStore) -> None:
    for n in range(5):
        _arrive(store, uniqueid=f"1714552215.{n}", at=T0 + timedelta(seconds=n))
    store.call_ended("1714552215.1", 16, None, T0 + timedelta(seconds=9))
    store.call_ended("1714552215.3", 16, None, T0 + timedelta(seconds=9))
    assert [v.uniqueid for v in store.recent(3)] == ["1714552215.4", "1714552215.3", "1714552215.2"]
    assert len(store.recent()) == 5
    assert store.recent(1)[0].events[0][1] == "arrived"
    assert store.open_calls() == ["1714552215.0", "1714552215.2", "1714552215.4"]
    with pytest.raises(ValueError):
        store.recent(0)


def test_deleting_a_call_deletes_its_events(store: CallStore) -> None:
    """The foreign key cascades (on SQLite too: the engine turns foreign keys on)."""
    _arrive(store)
    store.add_digits("1714552215.1", "1", T0)
    with store._sessions() as session, session.begin():
        session.execute(text("DELETE FROM calls"))
    assert _count(store, CallEvent) == 0


class _RacingStore(CallStore):
    """Both threads look the uniqueid up, find nothing, and only then insert."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.barrier = threading.Barrier(2, timeout=10)
        self.lookups = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    def _find_id(self, session: Session, uniqueid: str) -> int | None:
        found = super()._find_id(session, uniqueid)
        with self._lock:
            self.lookups += 1
        if not getattr(self._local, "waited", False):
            self._local.waited = True
            self.barrier.wait()
        return found


def test_concurrent_call_arrived_makes_one_row(store: CallStore) -> None:
    racing = _RacingStore(store._sessions)
    with ThreadPoolExecutor(2) as pool:
        ids = list(pool.map(lambda _: _arrive(racing), range(2)))
    assert ids[0] == ids[1]
    # Two lookups before the inserts, one more by the loser after its IntegrityError.
    assert racing.lookups == 3
    assert _count(store, Call) == 1
    view = store.get("1714552215.1")
    assert view is not None
    assert [kind for _, kind, _ in view.events] == ["arrived"]


def test_many_threads_same_and_different_calls(store: CallStore) -> None:
    def work(n: int) -> int:
        return _arrive(store, uniqueid=f"1714552215.{n % 4}")

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(work, range(32)))
    assert len(set(ids)) == 4
    assert _count(store, Call) == 4
    assert _count(store, CallEvent) == 4


def test_concurrent_hangups_record_one_end(store: CallStore) -> None:
    _arrive(store)
    barrier = threading.Barrier(4, timeout=10)

    def end(cause: int) -> bool:
        barrier.wait()
        return store.call_ended("1714552215.1", cause, None, T0 + timedelta(seconds=cause))

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(end, range(16, 20)))
    assert results == [True] * 4
    view = store.get("1714552215.1")
    assert view is not None
    assert [kind for _, kind, _ in view.events].count("hangup") == 1
    assert view.ended_at == T0 + timedelta(seconds=view.hangup_cause or 0)


# --- IVR: flow, path, survey, exit ----------------------------------------------------------

UID = "1714552215.1"
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def _kinds(store: CallStore, uniqueid: str = UID) -> list[str]:
    view = store.get(uniqueid)
    assert view is not None
    return [kind for _, kind, _ in view.events]


def test_new_call_has_no_ivr_data(store: CallStore) -> None:
    _arrive(store)
    view = store.get(UID)
    assert view is not None
    assert (view.flow, view.flow_version, view.survey_score, view.ivr_exit, view.ivr_exit_detail) == (None,) * 5
    assert store.ivr_path(UID) == []


def test_ivr_round_trip_with_chinese_text(store: CallStore) -> None:
    call_id = _arrive(store)
    t = [T0 + timedelta(seconds=n) for n in range(10)]
    assert store.set_flow(UID, "社保热线", SHA, t[1])
    assert store.add_step(UID, t[2], "社保热线", "欢迎", "play")
    assert store.add_step(UID, t[3], "社保热线", "主菜单", "menu", {"digits": "2", "选项": "办理业务"})
    assert store.add_step(UID, t[4], "养老金查询", "身份证号", "collect", {"ok": True, "tries": [1, 2]})
    assert store.set_ivr_exit(UID, "queue", "养老金", t[5])
    assert store.set_survey(UID, 1, t[8])
    assert store.call_ended(UID, 16, "Normal Clearing", t[9])

    view = store.get(UID)
    assert view is not None
    assert view.id == call_id
    assert (view.flow, view.flow_version, view.survey_score, view.ivr_exit, view.ivr_exit_detail) == (
        "社保热线",
        SHA,
        1,
        "queue",
        "养老金",
    )
    assert view.events[1:] == [
        (t[1], "flow", {"flow": "社保热线", "version": SHA}),
        (t[2], "ivr", {"flow": "社保热线", "node": "欢迎", "node_kind": "play"}),
        (t[3], "ivr", {"flow": "社保热线", "node": "主菜单", "node_kind": "menu", "digits": "2", "选项": "办理业务"}),
        (t[4], "ivr", {"flow": "养老金查询", "node": "身份证号", "node_kind": "collect", "ok": True, "tries": [1, 2]}),
        (t[5], "ivr_exit", {"exit": "queue", "detail": "养老金"}),
        (t[8], "survey", {"score": 1}),
        (t[9], "hangup", {"cause": 16, "cause_text": "Normal Clearing"}),
    ]
    assert store.ivr_path(UID) == [
        (t[2], "社保热线", "欢迎", "play"),
        (t[3], "社保热线", "主菜单", "menu"),
        (t[4], "养老金查询", "身份证号", "collect"),
    ]
    # recent() carries the same fields.
    assert store.recent(1)[0] == view


def test_ivr_path_is_in_time_order_then_insertion_order(store: CallStore) -> None:
    _arrive(store)
    _arrive(store, uniqueid="other.1")
    store.add_step(UID, T0 + timedelta(seconds=5), "f", "late", "play")
    store.add_step(UID, T0 + timedelta(seconds=1), "f", "early", "menu")
    store.add_step("other.1", T0 + timedelta(seconds=2), "f", "other call", "menu")
    for n in range(3):  # same timestamp: the order they were written in
        store.add_step(UID, T0 + timedelta(seconds=3), "f", f"same-{n}", "menu")
    store.add_step(UID, T0 + timedelta(seconds=3), "f", "retry", "menu")
    store.add_digits(UID, "1", T0 + timedelta(seconds=4))  # not an IVR step
    assert [node for _, _, node, _ in store.ivr_path(UID)] == ["early", "same-0", "same-1", "same-2", "retry", "late"]
    assert [node for _, _, node, _ in store.ivr_path("other.1")] == ["other call"]


def test_step_keys_win_over_detail(store: CallStore) -> None:
    _arrive(store)
    store.add_step(UID, T0, "real", "node", "menu", {"flow": "fake", "node": "x", "node_kind": "y", "k": "v"})
    assert store.ivr_path(UID) == [(T0, "real", "node", "menu")]
    view = store.get(UID)
    assert view is not None
    assert view.events[-1][2] == {"flow": "real", "node": "node", "node_kind": "menu", "k": "v"}


def test_nul_and_long_ivr_values(store: CallStore) -> None:
    _arrive(store)
    long_name = "很长的流程名" * 20
    store.set_flow(UID, long_name + "\x00", "x" * 100, T0)
    store.add_step(
        UID, T0, long_name, "节点\x00" * 30, "menu\x00", {"input": "12\x003", "nested": {"a\x00": ["b\x00"]}}
    )
    store.set_ivr_exit(UID, "transfer", "0" * 100, T0)
    view = store.get(UID)
    assert view is not None
    assert view.flow == long_name[:64]
    assert view.flow_version == "x" * 64
    assert view.ivr_exit_detail == "0" * 64
    [(_, flow, node, kind)] = store.ivr_path(UID)
    assert (flow, node, kind) == (long_name[:64], ("节点" * 30)[:64], "menu")
    assert view.events[2][2]["input"] == "123"
    assert view.events[2][2]["nested"] == {"a": ["b"]}


def test_set_flow_keeps_the_first_flow(store: CallStore) -> None:
    _arrive(store)
    assert store.set_flow(UID, "main", SHA, T0) is True
    assert store.set_flow(UID, "main", SHA, T0) is True
    assert store.set_flow(UID, "after-hours", "0" * 64, T0 + timedelta(seconds=1)) is True
    view = store.get(UID)
    assert view is not None
    assert (view.flow, view.flow_version) == ("main", SHA)
    assert _kinds(store) == ["arrived", "flow"]


def test_set_survey_validates_and_keeps_the_first_score(store: CallStore) -> None:
    _arrive(store)
    for bad in (0, 6, -1, True, 2.0, "3", None):
        with pytest.raises(ValueError, match="1 to 5"):
            store.set_survey(UID, bad, T0)  # type: ignore[arg-type]
    assert _kinds(store) == ["arrived"]
    assert store.set_survey(UID, 5, T0) is True
    assert store.set_survey(UID, 3, T0 + timedelta(seconds=1)) is True
    view = store.get(UID)
    assert view is not None and view.survey_score == 5
    assert _kinds(store) == ["arrived", "survey"]


@pytest.mark.parametrize("score", [1, 2, 3, 4, 5])
def test_every_survey_level(store: CallStore, score: int) -> None:
    _arrive(store)
    assert store.set_survey(UID, score, T0)
    view = store.get(UID)
    assert view is not None and view.survey_score == score


def test_set_ivr_exit_validates_and_keeps_the_first_exit(store: CallStore) -> None:
    _arrive(store)
    for bad in ("", "Queue", "voicemail", "queue "):
        with pytest.raises(ValueError, match="IVR exit"):
            store.set_ivr_exit(UID, bad, "", T0)
    assert store.set_ivr_exit(UID, "queue", "complaints", T0) is True
    # The hangup handler reports "abandoned" for calls still in the IVR: too late for this one.
    assert store.set_ivr_exit(UID, "abandoned", "", T0 + timedelta(seconds=1)) is True
    view = store.get(UID)
    assert view is not None
    assert (view.ivr_exit, view.ivr_exit_detail) == ("queue", "complaints")
    assert _kinds(store) == ["arrived", "ivr_exit"]


@pytest.mark.parametrize("exit_", IVR_EXITS)
def test_every_ivr_exit(store: CallStore, exit_: str) -> None:
    _arrive(store)
    assert store.set_ivr_exit(UID, exit_, "", T0)
    view = store.get(UID)
    assert view is not None and (view.ivr_exit, view.ivr_exit_detail) == (exit_, "")


def test_ivr_writes_to_unknown_call_change_nothing(store: CallStore) -> None:
    assert store.set_flow("nope.1", "main", SHA, T0) is False
    assert store.add_step("nope.1", T0, "main", "menu", "menu") is False
    assert store.set_survey("nope.1", 3, T0) is False
    assert store.set_ivr_exit("nope.1", "hangup", "", T0) is False
    assert store.ivr_path("nope.1") == []
    assert _count(store, Call) == 0
    assert _count(store, CallEvent) == 0


def test_ivr_writes_refuse_naive_datetimes(store: CallStore) -> None:
    _arrive(store)
    naive = datetime(2024, 5, 1, 8, 30)
    with pytest.raises(ValueError, match="naive"):
        store.set_flow(UID, "main", SHA, naive)
    with pytest.raises(ValueError, match="naive"):
        store.add_step(UID, naive, "main", "menu", "menu")
    with pytest.raises(ValueError, match="naive"):
        store.set_survey(UID, 1, naive)
    with pytest.raises(ValueError, match="naive"):
        store.set_ivr_exit(UID, "queue", "q", naive)
    assert _kinds(store) == ["arrived"]


def test_ivr_path_times_are_aware_utc(store: CallStore) -> None:
    _arrive(store)
    local = datetime(2024, 5, 1, 16, 30, tzinfo=BEIJING)
    store.add_step(UID, local, "main", "menu", "menu")
    [(at, _, _, _)] = store.ivr_path(UID)
    assert at == local and at.utcoffset() == timedelta(0) and at.hour == 8


def test_concurrent_ivr_exits_record_one(store: CallStore) -> None:
    _arrive(store)
    barrier = threading.Barrier(len(IVR_EXITS), timeout=10)

    def leave(exit_: str) -> bool:
        barrier.wait()
        return store.set_ivr_exit(UID, exit_, exit_, T0)

    with ThreadPoolExecutor(len(IVR_EXITS)) as pool:
        assert list(pool.map(leave, IVR_EXITS)) == [True] * len(IVR_EXITS)
    view = store.get(UID)
    assert view is not None
    assert _kinds(store).count("ivr_exit") == 1
    assert view.ivr_exit == view.ivr_exit_detail == view.events[-1][2]["exit"]


# --- ACD: queue, agent, wrap-up, survey agent, returning callers, the day's rates -----------------


def test_new_call_has_no_acd_data(store: CallStore) -> None:
    _arrive(store)
    view = store.get(UID)
    assert view is not None
    assert (view.queue, view.skill, view.priority, view.queued_at, view.connected_at) == (None,) * 5
    assert (view.agent_id, view.wrapup_ended_at, view.summary, view.survey_agent_id) == (None,) * 4


def test_acd_round_trip(store: CallStore) -> None:
    _arrive(store)
    t = [T0 + timedelta(seconds=n) for n in range(200)]
    assert store.queue_entered(UID, "社保", "养老金", 5, t[1])
    assert store.add_event(UID, "ring", {"agent": "1001", "队列": "社保"}, t[2])
    assert store.add_event(UID, "ring_result", {"agent": "1001", "result": "no_answer"}, t[17])
    assert store.agent_answered(UID, "1002", t[20])
    view = store.get(UID)
    assert view is not None and view.status == "connected"
    assert store.call_ended(UID, 16, "Normal Clearing", t[100])
    assert store.set_wrapup(UID, "1002", t[130], "咨询养老金到账时间，已告知")
    assert store.set_survey(UID, 1, t[110], agent_id="1002")

    view = store.get(UID)
    assert view is not None
    assert (view.queue, view.skill, view.priority, view.queued_at, view.connected_at, view.agent_id) == (
        "社保",
        "养老金",
        5,
        t[1],
        t[20],
        "1002",
    )
    assert (view.wrapup_ended_at, view.summary, view.survey_score, view.survey_agent_id, view.status) == (
        t[130],
        "咨询养老金到账时间，已告知",
        1,
        "1002",
        "ended",
    )
    assert view.events[1:] == [
        (t[1], "queued", {"queue": "社保", "skill": "养老金", "priority": 5}),
        (t[2], "ring", {"agent": "1001", "队列": "社保"}),
        (t[17], "ring_result", {"agent": "1001", "result": "no_answer"}),
        (t[20], "agent_answered", {"agent": "1002"}),
        (t[100], "hangup", {"cause": 16, "cause_text": "Normal Clearing"}),
        (t[110], "survey", {"score": 1, "agent": "1002"}),
        (t[130], "wrapup_ended", {"agent": "1002"}),
    ]
    assert store.recent(1)[0] == view


def test_queue_entered_keeps_the_first_queued_at(store: CallStore) -> None:
    _arrive(store)
    assert store.queue_entered(UID, "咨询", None, 0, T0 + timedelta(seconds=1))
    # A transfer back into another queue: queue, skill and priority follow, queued_at stays.
    assert store.queue_entered(UID, "投诉", "英语", 9, T0 + timedelta(seconds=60))
    view = store.get(UID)
    assert view is not None
    assert (view.queue, view.skill, view.priority, view.queued_at, view.status) == (
        "投诉",
        "英语",
        9,
        T0 + timedelta(seconds=1),
        "queued",
    )
    assert [detail for _, kind, detail in view.events if kind == "queued"] == [
        {"queue": "咨询", "skill": None, "priority": 0},
        {"queue": "投诉", "skill": "英语", "priority": 9},
    ]


def test_agent_answered_keeps_the_first_answer_and_the_last_agent(store: CallStore) -> None:
    _arrive(store)
    store.queue_entered(UID, "q", None, 0, T0)
    assert store.agent_answered(UID, "1001", T0 + timedelta(seconds=10))
    assert store.add_event(UID, "transfer", {"from": "1001", "to": "1002", "kind": "blind"}, T0 + timedelta(seconds=50))
    assert store.agent_answered(UID, "1002", T0 + timedelta(seconds=55))
    view = store.get(UID)
    assert view is not None
    assert (view.connected_at, view.agent_id, view.status) == (T0 + timedelta(seconds=10), "1002", "connected")
    assert _kinds(store) == ["arrived", "queued", "agent_answered", "transfer", "agent_answered"]


def test_answered_at_is_the_first_agent_answer_and_only_on_answered_calls(store: CallStore) -> None:
    """Issue 11: answered_at was never written. It is the first agent's answer (the moment
    connected_at holds), kept through a transfer; a call that ended in the IVR, or was abandoned
    in the queue, has none (as day_stats counts them: not answered)."""
    _arrive(store)
    store.queue_entered(UID, "q", None, 0, T0 + timedelta(seconds=3))
    view = store.get(UID)
    assert view is not None and view.answered_at is None
    store.agent_answered(UID, "1001", T0 + timedelta(seconds=10))
    store.agent_answered(UID, "1002", T0 + timedelta(seconds=50))  # a transfer
    store.call_ended(UID, 16, None, T0 + timedelta(seconds=90))
    view = store.get(UID)
    assert view is not None
    assert (view.answered_at, view.connected_at) == (T0 + timedelta(seconds=10),) * 2
    for uid, queued in (("ivr-only.1", False), ("abandoned.1", True)):
        _arrive(store, uid)
        if queued:
            store.queue_entered(uid, "q", None, 0, T0 + timedelta(seconds=3))
        store.call_ended(uid, 16, None, T0 + timedelta(seconds=30))
        other = store.get(uid)
        assert other is not None and other.answered_at is None
    with store._sessions() as session:
        assert session.scalar(select(func.count(Call.id)).where(Call.answered_at.is_not(None))) == 1


def test_late_acd_events_do_not_revive_an_ended_call(store: CallStore) -> None:
    _arrive(store)
    store.call_ended(UID, 16, None, T0 + timedelta(seconds=5))
    assert store.queue_entered(UID, "q", None, 0, T0 + timedelta(seconds=4))
    assert store.agent_answered(UID, "1001", T0 + timedelta(seconds=4))
    view = store.get(UID)
    assert view is not None
    assert view.status == "ended"
    assert (view.queued_at, view.connected_at) == (T0 + timedelta(seconds=4),) * 2


def test_set_wrapup_then_later_edits_of_the_summary(store: CallStore) -> None:
    _arrive(store)
    store.agent_answered(UID, "1001", T0)
    end = T0 + timedelta(minutes=3)
    assert store.set_wrapup(UID, "1001", end, "第一稿")
    # The same again (a retried request), then None: nothing changes.
    assert store.set_wrapup(UID, "1001", end, "第一稿")
    assert store.set_wrapup(UID, "1001", end + timedelta(minutes=1), None)
    # A later edit replaces the summary, keeps the end.
    assert store.set_wrapup(UID, "1001", end + timedelta(minutes=5), "第二稿")
    view = store.get(UID)
    assert view is not None
    assert (view.wrapup_ended_at, view.summary) == (end, "第二稿")
    assert view.events[2:] == [
        (end, "wrapup_ended", {"agent": "1001"}),
        (end + timedelta(minutes=5), "summary", {"agent": "1001"}),
    ]


def test_set_wrapup_without_a_summary(store: CallStore) -> None:
    _arrive(store)
    store.agent_answered(UID, "1001", T0)
    assert store.set_wrapup(UID, "1001", T0, None)
    view = store.get(UID)
    assert view is not None
    assert (view.wrapup_ended_at, view.summary) == (T0, None)
    assert store.set_wrapup(UID, "1001", T0 + timedelta(seconds=1), "补写")
    view = store.get(UID)
    assert view is not None
    assert (view.wrapup_ended_at, view.summary) == (T0, "补写")
    assert _kinds(store) == ["arrived", "agent_answered", "wrapup_ended", "summary"]


def test_set_summary_during_the_wrapup(store: CallStore) -> None:
    _arrive(store)
    store.agent_answered(UID, "1001", T0)
    assert store.set_summary(UID, "1001", "草稿", T0 + timedelta(seconds=5))
    assert store.set_summary(UID, "1001", "草稿", T0 + timedelta(seconds=6))
    view = store.get(UID)
    assert view is not None
    assert (view.summary, view.wrapup_ended_at) == ("草稿", None)
    # Ending the wrap-up without a text keeps the draft.
    assert store.set_wrapup(UID, "1001", T0 + timedelta(seconds=30), None)
    view = store.get(UID)
    assert view is not None
    assert (view.summary, view.wrapup_ended_at) == ("草稿", T0 + timedelta(seconds=30))
    assert _kinds(store) == ["arrived", "agent_answered", "summary", "wrapup_ended"]


def test_summary_is_clipped_and_cleaned(store: CallStore) -> None:
    _arrive(store)
    store.agent_answered(UID, "1001", T0)
    store.set_wrapup(UID, "1001", T0, "很长的小结\x00" * 1000)
    view = store.get(UID)
    assert view is not None
    assert view.summary == ("很长的小结" * 1000)[:4000]


def test_only_an_agent_who_served_the_call_writes_its_summary(store: CallStore) -> None:
    """Issue 11 item 4: agent 1002 cannot overwrite the summary of 1001's call (the record is
    unchanged, no event); 1001 can. After a transfer to 1002 both served it, so both can; 1003,
    who never had the caller, still cannot, neither through the wrap-up's end."""
    _arrive(store)
    store.agent_answered(UID, "1001", T0)
    assert store.set_summary(UID, "1001", "咨询养老金", T0 + timedelta(seconds=1))
    with pytest.raises(NotServedError, match="1002"):
        store.set_summary(UID, "1002", "改写", T0 + timedelta(seconds=2))
    with pytest.raises(NotServedError):
        store.set_wrapup(UID, "1002", T0 + timedelta(seconds=2), "改写")
    view = store.get(UID)
    assert view is not None
    assert (view.summary, view.wrapup_ended_at) == ("咨询养老金", None)
    assert _kinds(store) == ["arrived", "agent_answered", "summary"]
    assert (store.served_by(UID, "1001"), store.served_by(UID, "1002"), store.served_by("no-such", "1001")) == (
        True,
        False,
        None,
    )
    # The controller vouches for a consulted agent the record does not name.
    assert store.set_summary(UID, "1004", "会商", T0 + timedelta(seconds=3), served=True)
    store.agent_answered(UID, "1002", T0 + timedelta(minutes=1))  # transferred to 1002
    assert store.set_summary(UID, "1002", "转接后补充", T0 + timedelta(minutes=2))
    assert store.set_summary(UID, "1001", "我接的部分", T0 + timedelta(minutes=3))
    with pytest.raises(NotServedError):
        store.set_summary(UID, "1003", "x", T0 + timedelta(minutes=4))
    view = store.get(UID)
    assert view is not None and view.summary == "我接的部分"
    # An unknown call is still False, not a refusal.
    assert store.set_summary("no-such", "1001", "x", T0) is False


def test_set_survey_stores_the_agent_and_keeps_the_first(store: CallStore) -> None:
    _arrive(store)
    assert store.set_survey(UID, 2, T0, agent_id="1001")
    assert store.set_survey(UID, 5, T0 + timedelta(seconds=1), agent_id="1002")
    view = store.get(UID)
    assert view is not None
    assert (view.survey_score, view.survey_agent_id) == (2, "1001")
    assert view.events[-1] == (T0, "survey", {"score": 2, "agent": "1001"})
    with pytest.raises(ValueError, match="agent_id"):
        store.set_survey(UID, 3, T0, agent_id="x" * 17)


def test_add_event_cleans_and_clips(store: CallStore) -> None:
    _arrive(store)
    assert store.add_event(UID, "hold\x00" + "x" * 40, {"by": "10\x0001", "list": ["a\x00"]}, T0)
    view = store.get(UID)
    assert view is not None
    assert view.events[-1] == (T0, ("hold" + "x" * 40)[:32], {"by": "1001", "list": ["a"]})
    for bad in ("", "\x00"):
        with pytest.raises(ValueError, match="kind"):
            store.add_event(UID, bad, {}, T0)


def test_acd_writes_refuse_bad_agent_ids(store: CallStore) -> None:
    _arrive(store)
    for agent_id in ("", "1" * 17, "10\x0001"):
        with pytest.raises(ValueError, match="agent_id"):
            store.agent_answered(UID, agent_id, T0)
        with pytest.raises(ValueError, match="agent_id"):
            store.set_wrapup(UID, agent_id, T0, "x")
        with pytest.raises(ValueError, match="agent_id"):
            store.set_summary(UID, agent_id, "x", T0)
    assert _kinds(store) == ["arrived"]


def test_queue_entered_validates_and_clips(store: CallStore) -> None:
    _arrive(store)
    with pytest.raises(ValueError, match="queue"):
        store.queue_entered(UID, "", None, 0, T0)
    for bad in (True, 1.5, "1", None):
        with pytest.raises(ValueError, match="priority"):
            store.queue_entered(UID, "q", None, bad, T0)  # type: ignore[arg-type]
    assert store.queue_entered(UID, "队" * 40, "技" * 40 + "\x00", -3, T0)
    assert store.queue_entered(UID, "q", "", 0, T0)
    view = store.get(UID)
    assert view is not None
    assert (view.queue, view.skill, view.priority) == ("q", None, 0)
    assert view.events[-2][2] == {"queue": "队" * 32, "skill": "技" * 32, "priority": -3}


def test_acd_writes_refuse_naive_datetimes(store: CallStore) -> None:
    _arrive(store)
    naive = datetime(2024, 5, 1, 8, 30)
    calls: list[Callable[[], object]] = [
        lambda: store.queue_entered(UID, "q", None, 0, naive),
        lambda: store.add_event(UID, "ring", {}, naive),
        lambda: store.agent_answered(UID, "1001", naive),
        lambda: store.set_wrapup(UID, "1001", naive, None),
        lambda: store.set_summary(UID, "1001", "x", naive),
        lambda: store.last_agent("13800138000", naive),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="naive"):
            call()
    assert _kinds(store) == ["arrived"]


def test_acd_writes_to_unknown_call_change_nothing(store: CallStore) -> None:
    assert store.queue_entered("nope.1", "q", None, 0, T0) is False
    assert store.add_event("nope.1", "ring", {}, T0) is False
    assert store.agent_answered("nope.1", "1001", T0) is False
    assert store.set_wrapup("nope.1", "1001", T0, "x") is False
    assert store.set_wrapup("nope.1", "1001", T0, None) is False
    assert store.set_summary("nope.1", "1001", "x", T0) is False
    assert store.set_survey("nope.1", 1, T0, agent_id="1001") is False
    assert _count(store, Call) == 0
    assert _count(store, CallEvent) == 0


def test_acd_times_are_stored_and_come_back_as_utc(store: CallStore) -> None:
    """queued_at and connected_at go through SQL (COALESCE): still UTC on SQLite's plain text."""
    _arrive(store)
    local = datetime(2024, 5, 1, 16, 30, tzinfo=BEIJING)  # 08:30 UTC
    store.queue_entered(UID, "q", None, 0, local)
    store.agent_answered(UID, "1001", local + timedelta(seconds=5))
    view = store.get(UID)
    assert view is not None
    assert view.queued_at == local and view.queued_at is not None and view.queued_at.utcoffset() == timedelta(0)
    assert view.connected_at == local + timedelta(seconds=5)
    with store._sessions() as session:
        raw = session.execute(text("SELECT queued_at FROM calls")).scalar()
    assert str(raw).startswith("2024-05-01 08:30:00")
    assert store.last_agent("13800138000", local) == "1001"
    assert store.last_agent("13800138000", local + timedelta(seconds=6)) is None


def test_last_agent(store: CallStore) -> None:
    def served(uniqueid: str, number: str, at: datetime, *agents: str) -> None:
        _arrive(store, uniqueid=uniqueid, at=at, caller_number=number)
        for agent in agents:
            store.agent_answered(uniqueid, agent, at + timedelta(seconds=10))

    day = timedelta(days=1)
    served("1.1", "13800138000", T0 - 10 * day, "1001")
    served("1.2", "13800138000", T0 - 2 * day, "1002", "1003")  # transferred: 1003 had them last
    served("1.3", "13800138000", T0 - day)  # abandoned: no agent
    served("1.4", "13900139000", T0, "1004")
    served("1.5", "", T0, "1005")
    served("1.6", "anonymous", T0, "1006")
    assert store.last_agent("13800138000", T0 - 30 * day) == "1003"
    assert store.last_agent("13800138000", T0 - 5 * day) == "1003"
    assert store.last_agent("13800138000", T0 - day) is None
    assert store.last_agent("13900139000", T0 - day) == "1004"
    assert store.last_agent("13700137000", T0 - 30 * day) is None
    # Withheld numbers are not one returning caller.
    assert store.last_agent("", T0 - day) is None
    assert store.last_agent("anonymous", T0 - day) is None


def test_beijing_day_helpers() -> None:
    assert local_day(datetime(2024, 5, 1, 15, 59, 59, tzinfo=UTC)) == date(2024, 5, 1)
    assert local_day(datetime(2024, 5, 1, 16, 0, tzinfo=UTC)) == date(2024, 5, 2)
    assert local_day(datetime(2024, 5, 1, 23, 30, tzinfo=UTC)) == date(2024, 5, 2)
    assert local_day_bounds(date(2024, 5, 2)) == (
        datetime(2024, 5, 1, 16, 0, tzinfo=UTC),
        datetime(2024, 5, 2, 16, 0, tzinfo=UTC),
    )
    with pytest.raises(ValueError, match="naive"):
        local_day(datetime(2024, 5, 1, 23, 30))
    assert is_anonymous("") and is_anonymous("anonymous") and is_anonymous("<unknown>")
    assert not is_anonymous("13800138000") and not is_anonymous("+8613800138000")


DAY = date(2024, 5, 2)  # Beijing; 2024-05-01 16:00 UTC to 2024-05-02 16:00 UTC


def _offered(
    store: CallStore, uniqueid: str, at: datetime, *, answered: bool, number: str = "13800138000", ended: bool = True
) -> None:
    _arrive(store, uniqueid=uniqueid, at=at, caller_number=number)
    store.queue_entered(uniqueid, "q", None, 0, at + timedelta(seconds=20))
    if answered:
        store.agent_answered(uniqueid, "1001", at + timedelta(seconds=40))
    if ended:
        store.call_ended(uniqueid, 16, "Normal Clearing", at + timedelta(minutes=3))


def test_day_stats_definition(store: CallStore) -> None:
    callbacks = CallbackStore(store._sessions)
    start = datetime(2024, 5, 1, 16, 0, tzinfo=UTC)
    # 20 calls offered on DAY, 18 answered, from the first moment of the day (00:00 there) on.
    for n in range(20):
        _offered(store, f"d.{n}", start + timedelta(minutes=27 * n), answered=n >= 2)
    # Not counted: the IVR only (never queued), the day before and the day after in Beijing.
    _arrive(store, uniqueid="ivr.1", at=start + timedelta(hours=2))
    _offered(store, "before.1", start - timedelta(seconds=1), answered=False)
    _offered(store, "after.1", start + timedelta(days=1), answered=True)
    # Callbacks: one done that day, one open, one failed; a done one the day before.
    reached = callbacks.request("13800000001", "d.0", "abandoned", start + timedelta(hours=1))
    callbacks.attempt_finished(callbacks.attempt_started(reached, "1001", start), "reached", start)
    callbacks.request("13800000002", "d.1", "abandoned", start + timedelta(hours=1))
    cancelled = callbacks.request("13800000003", "x.1", "unanswered", start + timedelta(hours=1))
    assert callbacks.cancel(cancelled, start + timedelta(hours=2), "号码有误")
    callbacks.request("13800000001", "before.1", "abandoned", start - timedelta(seconds=1))
    assert callbacks.close_if_reached("13800000001", start - timedelta(seconds=1))

    assert store.day_stats(DAY) == DayStats(
        day=DAY,
        offered=20,
        answered=18,
        abandoned=2,
        called_back=1,
        answered_rate=0.9,
        callback_rate=0.05,
        total_rate=pytest.approx(0.95),  # type: ignore[arg-type]
    )
    before = store.day_stats(DAY - timedelta(days=1))
    assert (before.offered, before.answered, before.abandoned, before.called_back) == (1, 0, 1, 1)
    assert (before.answered_rate, before.callback_rate, before.total_rate) == (0.0, 1.0, 1.0)
    after = store.day_stats(DAY + timedelta(days=1))
    assert (after.offered, after.answered, after.called_back, after.total_rate) == (1, 1, 0, 1.0)
    # A caller still in the queue is waiting, not abandoned (the wallboard shows today live).
    _offered(store, "now.1", start + timedelta(hours=20), answered=False, ended=False)
    live = store.day_stats(DAY)
    assert (live.offered, live.answered, live.waiting, live.abandoned) == (21, 18, 1, 2)


def test_day_stats_count_a_call_in_progress(store: CallStore) -> None:
    """Issue 11: while an agent talks the wallboard showed the call as neither answered nor
    anything else. A call answered and still going on counts as answered and in progress; one
    in the queue as waiting; each offered call is in exactly one of answered, waiting, abandoned."""
    start = datetime(2024, 5, 1, 16, 0, tzinfo=UTC)
    _offered(store, "talking.1", start + timedelta(hours=1), answered=True, ended=False)
    stats = store.day_stats(DAY)
    assert (stats.offered, stats.answered, stats.in_progress, stats.waiting, stats.abandoned) == (1, 1, 1, 0, 0)
    assert stats.answered_rate == 1.0
    _offered(store, "queued.1", start + timedelta(hours=2), answered=False, ended=False)
    _offered(store, "done.1", start + timedelta(hours=3), answered=True)
    _offered(store, "gone.1", start + timedelta(hours=4), answered=False)
    stats = store.day_stats(DAY)
    assert (stats.offered, stats.answered, stats.in_progress, stats.waiting, stats.abandoned) == (4, 2, 1, 1, 1)
    assert stats.answered + stats.waiting + stats.abandoned == stats.offered
    # The caller of talking.1 hangs up: still answered, no longer in progress.
    store.call_ended("talking.1", 16, None, start + timedelta(hours=5))
    stats = store.day_stats(DAY)
    assert (stats.answered, stats.in_progress, stats.waiting, stats.abandoned) == (2, 0, 1, 1)


def test_a_call_at_2330_utc_counts_for_the_next_beijing_day(store: CallStore) -> None:
    _offered(store, "late.1", datetime(2024, 5, 1, 23, 30, tzinfo=UTC), answered=True)
    assert store.day_stats(date(2024, 5, 1)).offered == 0
    stats = store.day_stats(date(2024, 5, 2))
    assert (stats.offered, stats.answered, stats.abandoned, stats.answered_rate) == (1, 1, 0, 1.0)


def test_day_stats_of_an_empty_day_and_the_caps(store: CallStore) -> None:
    empty = store.day_stats(DAY)
    assert (empty.offered, empty.answered, empty.abandoned, empty.called_back) == (0, 0, 0, 0)
    assert (empty.answered_rate, empty.callback_rate, empty.total_rate) == (1.0, 1.0, 1.0)
    # Answered, and a done callback of the same number: the total is capped at 1.0.
    at = datetime(2024, 5, 2, 2, 0, tzinfo=UTC)
    _offered(store, "d.1", at, answered=True)
    callbacks = CallbackStore(store._sessions)
    callbacks.request("13800138000", "d.0", "abandoned", at)
    callbacks.close_if_reached("13800138000", at)
    stats = store.day_stats(DAY)
    assert (stats.offered, stats.answered, stats.called_back) == (1, 1, 1)
    assert (stats.answered_rate, stats.callback_rate, stats.total_rate) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="date"):
        store.day_stats(at)


def test_concurrent_set_wrapup_ends_it_once(store: CallStore) -> None:
    _arrive(store)
    store.agent_answered(UID, "1001", T0)
    barrier = threading.Barrier(4, timeout=10)

    def end(n: int) -> bool:
        barrier.wait()
        return store.set_wrapup(UID, "1001", T0 + timedelta(seconds=n), f"小结{n}")

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(end, range(4))) == [True] * 4
    view = store.get(UID)
    assert view is not None
    kinds = _kinds(store)
    assert kinds.count("wrapup_ended") == 1
    assert kinds.count("summary") <= 3
    [(ended_at, _, _)] = [e for e in view.events if e[1] == "wrapup_ended"]
    assert view.wrapup_ended_at == ended_at
    assert view.summary in {f"小结{n}" for n in range(4)}


def test_concurrent_answers_keep_one_connected_at(store: CallStore) -> None:
    _arrive(store)
    barrier = threading.Barrier(4, timeout=10)

    def answer(n: int) -> bool:
        barrier.wait()
        return store.agent_answered(UID, f"100{n}", T0 + timedelta(seconds=n))

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(answer, range(4))) == [True] * 4
    view = store.get(UID)
    assert view is not None
    answers = [(at, detail["agent"]) for at, kind, detail in view.events if kind == "agent_answered"]
    assert len(answers) == 4
    # The first answer written sets connected_at; the last one written is the agent.
    assert view.connected_at in {at for at, _ in answers}
    assert view.agent_id in {agent for _, agent in answers}


def test_history_of_a_number_newest_first_without_the_current_call(store: CallStore) -> None:
    start = datetime(2024, 5, 2, 1, 0, tzinfo=UTC)
    for n in range(3):
        _offered(store, f"h.{n}", start + timedelta(hours=n), answered=True, number="13900000001")
    store.set_summary("h.0", "1001", "咨询养老金 <b>已答</b>", start + timedelta(minutes=5))
    _offered(store, "other.1", start, answered=True, number="13900000002")
    history = store.history("13900000001", exclude="h.2")
    assert [h.uniqueid for h in history] == ["h.1", "h.0"]
    assert history[1].summary == "咨询养老金 <b>已答</b>" and history[1].agent_id == "1001"
    assert history[0].events == []  # lists never load the timeline
    assert store.history("13900000001", limit=1)[0].uniqueid == "h.2"
    assert store.history("anonymous") == [] and store.history("") == []


def test_day_figures_for_the_wallboard_and_one_agent(store: CallStore) -> None:
    start = datetime(2024, 5, 1, 16, 0, tzinfo=UTC)  # DAY's first moment in Beijing
    # Queued at +20 s, answered at +40 s (a 20 s wait), ended at +3 min (140 s of talk).
    _offered(store, "f.1", start, answered=True)
    _offered(store, "f.2", start + timedelta(hours=1), answered=True)
    _offered(store, "f.3", start + timedelta(hours=2), answered=False)
    store.agent_answered("f.2", "1002", start + timedelta(hours=1, seconds=40))
    store.set_survey("f.1", 1, start + timedelta(minutes=4), agent_id="1001")
    store.set_survey("f.2", 4, start + timedelta(hours=1, minutes=4), agent_id="1002")
    every = store.day_figures(DAY)
    assert (every.answered, every.avg_wait_s, every.avg_talk_s) == (2, 20.0, 140.0)
    assert (every.survey_count, every.survey_avg, every.satisfied_rate) == (2, 2.5, 0.5)
    mine = store.day_figures(DAY, "1001")
    assert (mine.answered, mine.survey_count, mine.survey_avg, mine.satisfied_rate) == (1, 1, 1.0, 1.0)
    empty = store.day_figures(DAY + timedelta(days=3))
    assert (empty.answered, empty.avg_wait_s, empty.survey_avg, empty.satisfied_rate) == (0, None, None, None)

"""CallStore on SQLite and PostgreSQL: round trips, idempotency, time zones and races."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from cc_core.calls.store import IVR_EXITS, CallStore, CallView
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

"""CallbackStore on SQLite and PostgreSQL: one row per number and Beijing day, attempts, claims, races."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cc_core.calls.callbacks import CALLED_IN_AGAIN, AttemptView, CallbackStore, CallbackView
from cc_core.calls.store import CallStore
from cc_core.db.models import Callback, CallbackAttempt, CallbackCall

T0 = datetime(2024, 5, 1, 2, 30, tzinfo=UTC)  # 10:30 in Beijing
DAY = date(2024, 5, 1)
WRITTEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BEIJING = timezone(timedelta(hours=8))
NUMBER = "13800138000"


@pytest.fixture
def callbacks(store: CallStore) -> CallbackStore:
    return CallbackStore(store._sessions, clock=lambda: WRITTEN)


def _s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def _count(callbacks: CallbackStore, model: type[Callback] | type[CallbackCall] | type[CallbackAttempt]) -> int:
    with callbacks._sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _view(callbacks: CallbackStore, callback_id: int) -> CallbackView:
    view = callbacks.get(callback_id)
    assert view is not None
    return view


# --- the list: one row per number and day ---------------------------------------------------------


def test_request_opens_a_callback_due_at_once(callbacks: CallbackStore) -> None:
    callback_id = callbacks.request(NUMBER, "1714530600.1", "abandoned", T0)
    assert callbacks.get(callback_id) == CallbackView(
        id=callback_id,
        number=NUMBER,
        day=DAY,
        reason="abandoned",
        status="open",
        created_at=T0,
        updated_at=T0,
        attempts=0,
        next_attempt_at=T0,
        closed_at=None,
        reached_at=None,
        agent_id=None,
        close_reason=None,
    )
    assert callbacks.calls(callback_id) == ["1714530600.1"]
    assert callbacks.attempts(callback_id) == []
    assert callbacks.due(T0) == [_view(callbacks, callback_id)]
    assert callbacks.due(T0 - _s(1)) == []


def test_later_calls_that_day_are_linked_to_the_same_callback(callbacks: CallbackStore, store: CallStore) -> None:
    for n, at in enumerate((T0, T0 + _s(600), T0 + _s(60))):
        store.call_arrived(f"17.{n}", f"17.{n}", NUMBER, "12333", "PJSIP/c-1", at)
    first = callbacks.request(NUMBER, "17.0", "abandoned", T0)
    assert callbacks.request(NUMBER, "17.1", "requested", T0 + _s(600)) == first
    assert callbacks.request(NUMBER, "17.2", "unanswered", T0 + _s(700)) == first
    # A repeat of one call is linked once.
    assert callbacks.request(NUMBER, "17.1", "requested", T0 + _s(800)) == first
    # Recorded calls in arrival order, then calls the call record does not know.
    assert callbacks.request(NUMBER, "0.unknown", "abandoned", T0 + _s(900)) == first
    assert callbacks.calls(first) == ["17.0", "17.2", "17.1", "0.unknown"]
    view = _view(callbacks, first)
    # The first call's reason and schedule stay.
    assert (view.reason, view.status, view.next_attempt_at, view.created_at) == ("abandoned", "open", T0, T0)
    assert _count(callbacks, Callback) == 1
    assert _count(callbacks, CallbackCall) == 4


def test_the_day_is_the_beijing_calendar_day(callbacks: CallbackStore) -> None:
    before = callbacks.request(NUMBER, "a.1", "abandoned", datetime(2024, 5, 1, 15, 59, 59, tzinfo=UTC))
    midnight = callbacks.request(NUMBER, "a.2", "abandoned", datetime(2024, 5, 1, 16, 0, tzinfo=UTC))
    late = callbacks.request(NUMBER, "a.3", "abandoned", datetime(2024, 5, 1, 23, 30, tzinfo=UTC))
    local = callbacks.request(NUMBER, "a.4", "abandoned", datetime(2024, 5, 2, 23, 59, tzinfo=BEIJING))
    assert before != midnight == late == local
    assert _view(callbacks, before).day == date(2024, 5, 1)
    assert _view(callbacks, late).day == date(2024, 5, 2)
    assert [v.id for v in callbacks.list_day(date(2024, 5, 2))] == [midnight]
    assert callbacks.calls(late) == ["a.2", "a.3", "a.4"]


def test_numbers_are_kept_apart_and_only_dialable_ones_are_taken(callbacks: CallbackStore) -> None:
    """Issue 11 item 6: a callback's number becomes an Originate's Exten and part of
    Dial(PJSIP/<number>@trunk); anything but '+' and 3-20 ASCII digits is refused, not clipped."""
    one = callbacks.request(" 13800138000 ", "a.1", "abandoned", T0)
    two = callbacks.request("+8613900139000", "a.2", "abandoned", T0 + _s(1))
    assert one != two
    for hostile in ("0" + "1" * 40 + "\x00", "139&PJSIP/1001", "139,tT", "139/evil", "139\n00", "１３９００", "12"):
        with pytest.raises(ValueError, match="3 to 20 digits"):
            callbacks.request(hostile, "a.3", "abandoned", T0 + _s(2))
    assert [v.number for v in callbacks.list_day(DAY)] == [NUMBER, "+8613900139000"]


def test_an_anonymous_caller_cannot_be_called_back(callbacks: CallbackStore) -> None:
    for number in ("", "   ", "anonymous", "<unknown>", "Restricted"):
        with pytest.raises(ValueError, match="anonymous"):
            callbacks.request(number, "a.1", "abandoned", T0)
        assert callbacks.close_if_reached(number, T0) is False
    assert _count(callbacks, Callback) == 0


BAD_REQUESTS: list[tuple[dict[str, object], str]] = [
    ({"reason": "lost"}, "reason"),
    ({"reason": ""}, "reason"),
    ({"uniqueid": ""}, "uniqueid"),
    ({"uniqueid": "1" * 65}, "uniqueid"),
    ({"at": datetime(2024, 5, 1, 8, 30)}, "naive"),
]


def test_bad_requests_are_refused(callbacks: CallbackStore) -> None:
    args: dict[str, object] = {"number": NUMBER, "uniqueid": "a.1", "reason": "abandoned", "at": T0}
    for change, message in BAD_REQUESTS:
        with pytest.raises(ValueError, match=message):
            callbacks.request(**(args | change))  # type: ignore[arg-type]
    assert _count(callbacks, Callback) == 0


def test_due_is_open_and_due_only_oldest_first(callbacks: CallbackStore) -> None:
    ids = [callbacks.request(f"1380013800{n}", f"a.{n}", "abandoned", T0 + _s(10 * (5 - n))) for n in range(5)]
    callbacks.claim(ids[0], T0 + _s(60))
    callbacks.cancel(ids[1], T0 + _s(60), "重复")
    assert [v.id for v in callbacks.due(T0 + _s(60))] == [ids[4], ids[3], ids[2]]
    assert [v.id for v in callbacks.due(T0 + _s(60), limit=2)] == [ids[4], ids[3]]
    assert [v.id for v in callbacks.due(T0 + _s(15))] == [ids[4]]
    with pytest.raises(ValueError, match="limit"):
        callbacks.due(T0, limit=0)
    with pytest.raises(ValueError, match="naive"):
        callbacks.due(datetime(2024, 5, 1))


# --- claims and attempts ------------------------------------------------------------------------------


def test_claim_takes_an_open_callback_once(callbacks: CallbackStore) -> None:
    callback_id = callbacks.request(NUMBER, "a.1", "abandoned", T0)
    assert callbacks.claim(callback_id, T0 + _s(5)) is True
    assert callbacks.claim(callback_id, T0 + _s(6)) is False
    view = _view(callbacks, callback_id)
    assert (view.status, view.updated_at) == ("in_progress", T0 + _s(5))
    assert callbacks.due(T0 + _s(10)) == []
    assert callbacks.claim(9999, T0) is False


def test_concurrent_claims_one_wins(callbacks: CallbackStore) -> None:
    callback_id = callbacks.request(NUMBER, "a.1", "abandoned", T0)
    barrier = threading.Barrier(6, timeout=10)

    def claim(n: int) -> bool:
        barrier.wait()
        return callbacks.claim(callback_id, T0 + _s(n))

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(claim, range(6)))
    assert results.count(True) == 1
    assert _view(callbacks, callback_id).status == "in_progress"


def test_failed_attempts_retry_then_fail(store: CallStore) -> None:
    callbacks = CallbackStore(store._sessions, max_attempts=3, retry_after_s=600)
    callback_id = callbacks.request(NUMBER, "a.1", "abandoned", T0)
    at = T0
    for n, result in enumerate(("agent_no_answer", "citizen_no_answer"), start=1):
        assert callbacks.claim(callback_id, at)
        attempt = callbacks.attempt_started(callback_id, "1001", at, agent_uniqueid=f"agent.{n}")
        assert _view(callbacks, callback_id).status == "in_progress"
        view = callbacks.attempt_finished(attempt, result, at + _s(30), citizen_uniqueid=f"citizen.{n}")
        assert (view.status, view.attempts, view.next_attempt_at) == ("open", n, at + _s(630))
        assert callbacks.due(at + _s(629)) == []
        assert callbacks.due(at + _s(630)) == [view]
        at += _s(630)
    callbacks.claim(callback_id, at)
    attempt = callbacks.attempt_started(callback_id, None, at)
    view = callbacks.attempt_finished(attempt, "citizen_busy", at + _s(5))
    assert (view.status, view.attempts, view.closed_at, view.next_attempt_at) == ("failed", 3, at + _s(5), None)
    assert callbacks.due(at + _s(10_000)) == []
    assert callbacks.attempts(callback_id) == [
        AttemptView(1, callback_id, "1001", T0, T0 + _s(30), "agent_no_answer", "agent.1", "citizen.1"),
        AttemptView(2, callback_id, "1001", T0 + _s(630), T0 + _s(660), "citizen_no_answer", "agent.2", "citizen.2"),
        AttemptView(3, callback_id, None, at, at + _s(5), "citizen_busy", None, None),
    ]


def test_reached_closes_it_done_with_the_agent(callbacks: CallbackStore) -> None:
    callback_id = callbacks.request(NUMBER, "a.1", "requested", T0)
    callbacks.claim(callback_id, T0)
    attempt = callbacks.attempt_started(callback_id, "1002", T0 + _s(1), "agent.1")
    view = callbacks.attempt_finished(attempt, "reached", T0 + _s(20), "citizen.1")
    assert view == CallbackView(
        id=callback_id,
        number=NUMBER,
        day=DAY,
        reason="requested",
        status="done",
        created_at=T0,
        updated_at=T0 + _s(20),
        attempts=1,
        next_attempt_at=None,
        closed_at=T0 + _s(20),
        reached_at=T0 + _s(20),
        agent_id="1002",
    )
    assert callbacks.get(callback_id) == view
    # Finishing again (a repeated event) changes nothing.
    assert callbacks.attempt_finished(attempt, "failed", T0 + _s(50)) == view
    [row] = callbacks.attempts(callback_id)
    assert (row.result, row.ended_at, row.citizen_uniqueid) == ("reached", T0 + _s(20), "citizen.1")


def test_one_attempt_allowed(store: CallStore) -> None:
    callbacks = CallbackStore(store._sessions, max_attempts=1)
    callback_id = callbacks.request(NUMBER, "a.1", "abandoned", T0)
    attempt = callbacks.attempt_started(callback_id, "1001", T0)
    assert callbacks.attempt_finished(attempt, "failed", T0 + _s(1)).status == "failed"


def test_attempt_started_without_a_claim_holds_the_callback(callbacks: CallbackStore) -> None:
    callback_id = callbacks.request(NUMBER, "a.1", "abandoned", T0)
    callbacks.attempt_started(callback_id, "1001", T0 + _s(1))
    assert _view(callbacks, callback_id).status == "in_progress"
    assert callbacks.claim(callback_id, T0 + _s(2)) is False


def test_an_attempt_on_a_callback_closed_meanwhile(callbacks: CallbackStore) -> None:
    cancelled = callbacks.request(NUMBER, "a.1", "abandoned", T0)
    attempt = callbacks.attempt_started(cancelled, "1001", T0)
    assert callbacks.cancel(cancelled, T0 + _s(1), "市民已来电")
    view = callbacks.attempt_finished(attempt, "citizen_no_answer", T0 + _s(5))
    assert (view.status, view.attempts, view.close_reason) == ("cancelled", 1, "市民已来电")
    # Reaching the citizen is the truth, whatever was decided meanwhile.
    attempt = callbacks.attempt_started(cancelled, "1002", T0 + _s(10))
    assert _view(callbacks, cancelled).status == "cancelled"
    view = callbacks.attempt_finished(attempt, "reached", T0 + _s(20))
    assert (view.status, view.agent_id, view.reached_at, view.attempts) == ("done", "1002", T0 + _s(20), 2)


def test_attempts_refuse_bad_values(callbacks: CallbackStore) -> None:
    callback_id = callbacks.request(NUMBER, "a.1", "abandoned", T0)
    with pytest.raises(ValueError, match="no callback 9999"):
        callbacks.attempt_started(9999, "1001", T0)
    with pytest.raises(ValueError, match="agent_id"):
        callbacks.attempt_started(callback_id, "1" * 17, T0)
    with pytest.raises(ValueError, match="agent_uniqueid"):
        callbacks.attempt_started(callback_id, "1001", T0, "")
    with pytest.raises(ValueError, match="naive"):
        callbacks.attempt_started(callback_id, "1001", datetime(2024, 5, 1))
    attempt = callbacks.attempt_started(callback_id, "1001", T0)
    for bad in ("", "busy", "REACHED"):
        with pytest.raises(ValueError, match="result"):
            callbacks.attempt_finished(attempt, bad, T0)
    with pytest.raises(ValueError, match="no callback attempt 9999"):
        callbacks.attempt_finished(9999, "reached", T0)
    with pytest.raises(ValueError, match="citizen_uniqueid"):
        callbacks.attempt_finished(attempt, "reached", T0, "1" * 65)
    with pytest.raises(ValueError, match="naive"):
        callbacks.attempt_finished(attempt, "reached", datetime(2024, 5, 1))
    view = _view(callbacks, callback_id)
    assert (view.attempts, view.status) == (0, "in_progress")
    with pytest.raises(ValueError, match="max_attempts"):
        CallbackStore(callbacks._sessions, max_attempts=0)
    with pytest.raises(ValueError, match="retry_after_s"):
        CallbackStore(callbacks._sessions, retry_after_s=-1)


def test_concurrent_finishes_of_one_attempt_count_once(callbacks: CallbackStore) -> None:
    callback_id = callbacks.request(NUMBER, "a.1", "abandoned", T0)
    attempt = callbacks.attempt_started(callback_id, "1001", T0)
    barrier = threading.Barrier(4, timeout=10)
    results = ["citizen_no_answer", "citizen_busy", "failed", "agent_no_answer"]

    def finish(result: str) -> CallbackView:
        barrier.wait()
        return callbacks.attempt_finished(attempt, result, T0 + _s(9))

    with ThreadPoolExecutor(4) as pool:
        views = list(pool.map(finish, results))
    view = _view(callbacks, callback_id)
    assert (view.attempts, view.status) == (1, "open")
    assert all(v.attempts == 1 for v in views)
    [row] = callbacks.attempts(callback_id)
    assert row.result in results


# --- closing: cancel, the citizen called in again, a crashed controller ------------------------------


def test_cancel(callbacks: CallbackStore) -> None:
    callback_id = callbacks.request(NUMBER, "a.1", "abandoned", T0)
    assert callbacks.cancel(callback_id, T0 + _s(5), "市民表示无需回拨" * 10) is True
    view = _view(callbacks, callback_id)
    assert (view.status, view.closed_at, view.next_attempt_at) == ("cancelled", T0 + _s(5), None)
    assert view.close_reason == ("市民表示无需回拨" * 10)[:64]
    assert callbacks.cancel(callback_id, T0 + _s(6), "again") is False
    assert callbacks.cancel(9999, T0, "unknown") is False
    assert _view(callbacks, callback_id).closed_at == T0 + _s(5)


def test_a_closed_callback_stays_closed(callbacks: CallbackStore) -> None:
    done = callbacks.request("13800000001", "a.1", "abandoned", T0)
    callbacks.attempt_finished(callbacks.attempt_started(done, "1001", T0), "reached", T0 + _s(60))
    cancelled = callbacks.request("13800000002", "b.1", "abandoned", T0)
    callbacks.cancel(cancelled, T0, "")
    failed = callbacks.request("13800000003", "c.1", "abandoned", T0)
    for n in range(3):
        callbacks.attempt_finished(callbacks.attempt_started(failed, None, T0 + _s(n)), "failed", T0 + _s(n))
    before = {n: _view(callbacks, n) for n in (done, cancelled, failed)}
    assert [before[n].status for n in (done, cancelled, failed)] == ["done", "cancelled", "failed"]
    assert before[cancelled].close_reason is None

    # The same citizens abandon again later that day: linked, not reopened.
    assert callbacks.request("13800000001", "a.2", "abandoned", T0 + _s(3600)) == done
    assert callbacks.request("13800000002", "b.2", "abandoned", T0 + _s(3600)) == cancelled
    assert callbacks.request("13800000003", "c.2", "unanswered", T0 + _s(3600)) == failed
    assert {n: _view(callbacks, n) for n in (done, cancelled, failed)} == before
    assert callbacks.calls(failed) == ["c.1", "c.2"]
    assert callbacks.due(T0 + _s(7200)) == []
    # The next day is a new callback.
    assert callbacks.request("13800000001", "a.3", "abandoned", T0 + timedelta(days=1)) not in before


def test_close_if_reached(callbacks: CallbackStore) -> None:
    callback_id = callbacks.request(NUMBER, "a.1", "abandoned", T0)
    yesterday = callbacks.request(NUMBER, "a.0", "abandoned", T0 - timedelta(days=1))
    other = callbacks.request("13900139000", "b.1", "abandoned", T0)
    assert callbacks.close_if_reached(f" {NUMBER} ", T0 + _s(300)) is True
    view = _view(callbacks, callback_id)
    assert (view.status, view.reached_at, view.closed_at, view.agent_id, view.close_reason) == (
        "done",
        T0 + _s(300),
        T0 + _s(300),
        None,
        CALLED_IN_AGAIN,
    )
    assert callbacks.close_if_reached(NUMBER, T0 + _s(400)) is False
    assert _view(callbacks, callback_id).reached_at == T0 + _s(300)
    assert _view(callbacks, yesterday).status == "open"
    assert _view(callbacks, other).status == "open"
    assert callbacks.close_if_reached("13700137000", T0) is False


def test_close_if_reached_while_being_dialled(callbacks: CallbackStore) -> None:
    callback_id = callbacks.request(NUMBER, "a.1", "abandoned", T0)
    attempt = callbacks.attempt_started(callback_id, "1001", T0)
    assert callbacks.close_if_reached(NUMBER, T0 + _s(1))
    # Our attempt finds the citizen busy (on the line with us already): the callback stays done.
    view = callbacks.attempt_finished(attempt, "citizen_busy", T0 + _s(10))
    assert (view.status, view.reached_at, view.attempts) == ("done", T0 + _s(1), 1)


def test_release_stale(callbacks: CallbackStore) -> None:
    stale = callbacks.request("13800000001", "a.1", "abandoned", T0)
    fresh = callbacks.request("13800000002", "b.1", "abandoned", T0)
    waiting = callbacks.request("13800000003", "c.1", "abandoned", T0)
    callbacks.claim(stale, T0 + _s(10))
    attempt = callbacks.attempt_started(stale, "1001", T0 + _s(11))
    callbacks.claim(fresh, T0 + _s(100))
    assert callbacks.release_stale(T0 + _s(50)) == 1
    view = _view(callbacks, stale)
    assert (view.status, view.attempts, view.next_attempt_at, view.updated_at) == ("open", 0, T0, WRITTEN)
    assert _view(callbacks, fresh).status == "in_progress"
    assert _view(callbacks, waiting).status == "open"
    assert [v.id for v in callbacks.due(T0 + _s(60))] == [stale, waiting]
    # The attempt the crash interrupted stays open: a late result can still be recorded.
    [row] = callbacks.attempts(stale)
    assert (row.id, row.ended_at, row.result) == (attempt, None, None)
    assert callbacks.release_stale(T0 + _s(50)) == 0


# --- reading ----------------------------------------------------------------------------------------


def test_list_day_get_and_unknown_ids(callbacks: CallbackStore) -> None:
    second = callbacks.request("13800000002", "b.1", "abandoned", T0 + _s(10))
    first = callbacks.request("13800000001", "a.1", "abandoned", T0)
    callbacks.request("13800000003", "c.1", "abandoned", T0 + timedelta(days=1))
    assert [v.id for v in callbacks.list_day(DAY)] == [first, second]
    assert callbacks.list_day(date(2024, 4, 30)) == []
    assert callbacks.get(9999) is None
    assert callbacks.attempts(9999) == []
    assert callbacks.calls(9999) == []
    with pytest.raises(ValueError, match="date"):
        callbacks.list_day(T0)


def test_times_come_back_as_aware_utc(callbacks: CallbackStore) -> None:
    local = datetime(2024, 5, 1, 10, 30, tzinfo=BEIJING)  # T0
    callback_id = callbacks.request(NUMBER, "a.1", "abandoned", local)
    attempt = callbacks.attempt_started(callback_id, "1001", local)
    view = callbacks.attempt_finished(attempt, "citizen_no_answer", local + _s(1))
    assert view.created_at == T0 and view.created_at.utcoffset() == timedelta(0)
    assert view.next_attempt_at == T0 + _s(601)
    assert view.next_attempt_at is not None and view.next_attempt_at.utcoffset() == timedelta(0)
    [row] = callbacks.attempts(callback_id)
    assert row.started_at.utcoffset() == timedelta(0) and row.started_at == T0


# --- races ------------------------------------------------------------------------------------------


class _RacingCallbacks(CallbackStore):
    """Both threads look the number and day up, find nothing, and only then insert."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.barrier = threading.Barrier(2, timeout=10)
        self.lookups = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    def _find(self, session: Session, number: str, day: date) -> int | None:
        found = super()._find(session, number, day)
        with self._lock:
            self.lookups += 1
        if not getattr(self._local, "waited", False):
            self._local.waited = True
            self.barrier.wait()
        return found


@pytest.mark.parametrize("same_call", [False, True])
def test_concurrent_requests_make_one_callback(callbacks: CallbackStore, same_call: bool) -> None:
    racing = _RacingCallbacks(callbacks._sessions)
    with ThreadPoolExecutor(2) as pool:
        ids = list(
            pool.map(lambda n: racing.request(NUMBER, "a.1" if same_call else f"a.{n}", "abandoned", T0), range(2))
        )
    assert ids[0] == ids[1]
    # Two lookups before the inserts, one more by the loser on its second pass.
    assert racing.lookups == 3
    assert _count(callbacks, Callback) == 1
    assert callbacks.calls(ids[0]) == (["a.1"] if same_call else ["a.0", "a.1"])


def test_many_threads_same_and_different_numbers(callbacks: CallbackStore) -> None:
    barrier = threading.Barrier(8, timeout=10)

    def work(n: int) -> int:
        if n < 8:
            barrier.wait()
        return callbacks.request(f"1380013800{n % 4}", f"u.{n}", "abandoned", T0)

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(work, range(32)))
    assert len(set(ids)) == 4
    assert _count(callbacks, Callback) == 4
    assert _count(callbacks, CallbackCall) == 32

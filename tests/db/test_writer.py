"""The database writer (decision 0014): the call path's writes on one thread, in order, batched.

Run on SQLite and PostgreSQL through the real stores. What matters: every caller gets its own
result or error, writes land in the order asked, a failing write spoils nobody else's, nothing
is written twice, and nothing asked before close() is lost.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cc_core.acd.store import AgentStore
from cc_core.calls.recordings import RecordingStore
from cc_core.calls.store import CallStore
from cc_core.db.models import Call, CallEvent
from cc_core.db.writer import DbWriter, in_batch, transaction

T0 = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)


@pytest.fixture
def sessions(store: CallStore) -> sessionmaker[Session]:
    return store._sessions


@pytest.fixture
def writer(sessions: sessionmaker[Session], store: CallStore) -> Iterator[DbWriter]:
    writer = DbWriter(sessions)
    writer.rollback_hooks.append(store.forget_ids)
    writer.start()
    yield writer
    writer.close()


def _s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def _kinds(store: CallStore, uid: str) -> list[str]:
    view = store.get(uid)
    assert view is not None
    return [kind for _at, kind, _detail in view.events]


def _gate(writer: DbWriter) -> tuple[threading.Event, threading.Event]:
    """Hold the writer's thread inside a write until released, so the next writes pile up."""
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        release.wait(10)

    writer._queue.put(_job(hold))
    return entered, release


async def _together(writer: DbWriter, *writes: Awaitable[object]) -> list[object]:
    """Queue ``writes`` behind a held write, so that they run as one batch; their outcomes."""
    entered, release = _gate(writer)
    await asyncio.to_thread(entered.wait, 10)
    tasks = [asyncio.ensure_future(write) for write in writes]
    await asyncio.sleep(0)  # every write is queued behind the held one
    release.set()
    return list(await asyncio.gather(*tasks, return_exceptions=True))


def _job(fn: object) -> object:
    from cc_core.db.writer import _Job

    loop = asyncio.new_event_loop()
    try:
        return _Job(fn, (), {}, loop.create_future())  # type: ignore[arg-type]
    finally:
        loop.close()


def test_writes_are_batched_in_order_and_each_caller_gets_its_result(store: CallStore, writer: DbWriter) -> None:
    async def main() -> list[object]:
        calls = [
            writer.run(store.call_arrived, f"u.{i}", f"u.{i}", "13800000000", "12345", "PJSIP/c", T0) for i in range(5)
        ]
        steps = [writer.run(store.add_step, "u.0", T0 + _s(i + 1), "main", f"n{i}", "play") for i in range(20)]
        unknown = writer.run(store.add_step, "nobody", T0, "main", "n", "play")
        return await _together(writer, *calls, *steps, unknown)

    results = asyncio.run(main())
    ids = results[:5]
    assert len(set(ids)) == 5 and all(isinstance(i, int) for i in ids)
    assert results[5:25] == [True] * 20
    assert results[25] is False
    # One batch carried the 26 queued writes (plus the held one's own batch before it).
    assert writer.largest_batch >= 26
    view = store.get("u.0")
    assert view is not None
    nodes = [detail["node"] for _at, kind, detail in view.events if kind == "ivr"]
    assert nodes == [f"n{i}" for i in range(20)]


def test_a_failing_write_fails_alone_and_the_batch_is_kept(
    store: CallStore, writer: DbWriter, sessions: sessionmaker[Session]
) -> None:
    agents = AgentStore(sessions)

    async def main() -> list[object]:
        return await _together(
            writer,
            writer.run(store.call_arrived, "u.1", "u.1", "13800000001", "12345", "PJSIP/c", T0),
            writer.run(store.add_step, "u.1", T0 + _s(1), "main", "welcome", "play"),
            # Refused by the database itself, inside the batch: a NULL in a NOT NULL column.
            writer.run(_insert_broken_event, sessions),
            writer.run(agents.record, "1001", T0, "offline", "available"),
            writer.run(store.call_ended, "u.1", 16, "Normal Clearing", T0 + _s(9)),
        )

    results = asyncio.run(main())
    assert isinstance(results[0], int)
    assert results[1] is True
    assert isinstance(results[2], Exception)
    assert results[3] is None and results[4] is True
    assert writer.replayed_batches == 1
    # Everything but the broken write is there, once.
    assert _kinds(store, "u.1") == ["arrived", "ivr", "hangup"]
    assert agents.current()["1001"].state.value == "available"
    with sessions() as session:
        assert session.scalar(select(func.count(Call.id))) == 1


def _insert_broken_event(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        session.add(CallEvent(call_id=None, at=T0, kind="broken", detail={}))
        session.flush()


def test_a_race_lost_inside_a_batch_is_recovered_alone(
    store: CallStore, writer: DbWriter, sessions: sessionmaker[Session]
) -> None:
    """call_arrived's "someone else inserted it first" recovery needs a fresh transaction: inside
    a batch it re-raises, and the writer's replay runs it alone, where it finds the row."""
    recordings = RecordingStore(sessions)
    store.call_arrived("u.2", "u.2", "13800000002", "12345", "PJSIP/c", T0)

    class Racing(CallStore):
        def _find_id(self, session: Session, uniqueid: str) -> int | None:
            return None if in_batch() else super()._find_id(session, uniqueid)

    racing = Racing(sessions)

    async def main() -> list[object]:
        return await _together(
            writer,
            writer.run(racing.call_arrived, "u.2", "u.2", "13800000002", "12345", "PJSIP/c", T0),
            writer.run(recordings.started, "u.2", "1001", "agent", "/spool/u.2.wav", T0),
        )

    existing, recording_id = asyncio.run(main())
    assert existing == store.get("u.2").id  # type: ignore[union-attr]
    assert isinstance(recording_id, int)
    assert writer.replayed_batches == 1
    assert _kinds(store, "u.2") == ["arrived"]


def test_remembered_ids_are_forgotten_when_a_batch_rolls_back(
    store: CallStore, writer: DbWriter, sessions: sessionmaker[Session]
) -> None:
    """A call inserted and appended to inside a batch that then rolls back: its id must not
    stay remembered, or a later call could get its events (SQLite reuses row ids)."""

    async def main() -> list[object]:
        return await _together(
            writer,
            writer.run(store.call_arrived, "u.3", "u.3", "13800000003", "12345", "PJSIP/c", T0),
            writer.run(store.add_step, "u.3", T0 + _s(1), "main", "welcome", "play"),
            writer.run(_insert_broken_event, sessions),
        )

    forgotten: list[int] = []
    writer.rollback_hooks.append(lambda: forgotten.append(len(store._ids)))
    results = asyncio.run(main())
    assert results[1] is True and isinstance(results[2], Exception)
    assert forgotten == [0]  # the store's hook ran first and cleared them
    assert _kinds(store, "u.3") == ["arrived", "ivr"]


def test_close_finishes_every_write_asked_for(store: CallStore, sessions: sessionmaker[Session]) -> None:
    writer = DbWriter(sessions, max_batch=7)
    writer.start()

    async def main() -> None:
        await writer.run(store.call_arrived, "u.4", "u.4", "13800000004", "12345", "PJSIP/c", T0)
        pending = [
            asyncio.ensure_future(writer.run(store.add_step, "u.4", T0 + _s(i), "main", f"n{i}", "play"))
            for i in range(50)
        ]
        await asyncio.sleep(0)
        await asyncio.to_thread(writer.close)
        assert all(task.done() for task in pending)
        # After close, a late write still lands (on a worker thread of its own).
        assert await writer.run(store.add_step, "u.4", T0 + _s(99), "main", "late", "play") is True

    asyncio.run(main())
    assert _kinds(store, "u.4") == ["arrived"] + ["ivr"] * 51
    assert writer.largest_batch <= 7 and writer.writes == 51


def test_a_cancelled_caller_does_not_stop_the_write(store: CallStore, writer: DbWriter) -> None:
    async def main() -> None:
        await writer.run(store.call_arrived, "u.5", "u.5", "13800000005", "12345", "PJSIP/c", T0)
        entered, release = _gate(writer)
        await asyncio.to_thread(entered.wait, 10)
        task = asyncio.ensure_future(writer.run(store.add_step, "u.5", T0 + _s(1), "main", "welcome", "play"))
        await asyncio.sleep(0)
        task.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The next write is committed after it, so the cancelled one is done by then.
        await writer.run(store.add_step, "u.5", T0 + _s(2), "main", "menu", "menu")

    asyncio.run(main())
    assert _kinds(store, "u.5") == ["arrived", "ivr", "ivr"]


def test_a_broken_connection_loses_no_write(store: CallStore, writer: DbWriter) -> None:
    """The writer keeps one connection between batches. When the database drops it (a restart of
    PostgreSQL, a killed connection), the batch on it fails, its writes run again alone on fresh
    connections, and the next batch opens a new one."""

    async def main() -> None:
        await writer.run(store.call_arrived, "u.6", "u.6", "13800000006", "12345", "PJSIP/c", T0)
        assert writer._connection is not None
        raw = writer._connection.connection.dbapi_connection
        assert raw is not None
        raw.close()  # pulled from under the writer
        assert await writer.run(store.add_step, "u.6", T0 + _s(1), "main", "welcome", "play") is True
        assert writer.replayed_batches == 1
        assert await writer.run(store.call_ended, "u.6", 16, "Normal Clearing", T0 + _s(2)) is True
        assert writer.replayed_batches == 1  # the new connection works

    asyncio.run(main())
    assert _kinds(store, "u.6") == ["arrived", "ivr", "hangup"]


def test_max_batch_must_be_positive(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        DbWriter(sessions, max_batch=0)

"""One thread for the controller's call-path writes, many writes per transaction (group commit).

Under load the controller writes a few dozen small rows per call: the call record's steps, the
agents' state changes, the recordings. Run one transaction each on a thread pool, most of the
controller's CPU went into opening sessions and committing, and into threads taking turns at
SQLite's single writer lock (docs/PERFORMANCE.md; decision 0014). :class:`DbWriter` runs the
writes in the order they were asked for on one thread, and puts every write that is waiting when
it wakes into one transaction: a quiet system commits each write at once, a busy one commits many
together.

The stores stay plain synchronous code: they open their transactions with :func:`transaction`,
which hands them the writer's open batch when they run inside one, and a transaction of their own
otherwise (tests, the CLI, the web's threads).

A batch is all or nothing. When one write in it fails, the batch is rolled back and every write
of it is run again alone, in its own transaction, as it would have been without the writer: each
caller gets its own result or its own error, and nothing is lost or written twice.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from sqlalchemy import ClauseElement
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

T = TypeVar("T")


class DbRun(Protocol):
    """How a component runs a blocking write: :meth:`DbWriter.run`, or ``asyncio.to_thread``."""

    def __call__(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Awaitable[T]: ...


_Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]

# Writes per transaction at most: a bigger batch commits less often but keeps the first write's
# caller waiting for the whole batch (about 0.1-0.3 ms a write on SQLite).
MAX_BATCH = 200

_local = threading.local()


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session inside a transaction: the writer's batch when this thread runs one made from
    ``sessions``, else a new session whose transaction commits on a clean exit."""
    batch: _Batch | None = getattr(_local, "batch", None)
    if batch is not None and batch.sessions is sessions:
        yield batch.session
        return
    with sessions() as session, session.begin():
        yield session


# A compiled statement: SQLAlchemy's Compiled, its SQL text, the order of its positional
# parameters (None for a named paramstyle) and its type processors.
_Compiled = tuple[Any, str, tuple[str, ...] | None, dict[str, Any]]


class Prepared:
    """A Core statement compiled once per database dialect and run straight on the DBAPI cursor.

    For the call path's most frequent statements, each of which must name every column it sets
    (no Python-side column defaults are applied). SQLAlchemy's execution machinery costs several
    times what SQLite spends on such a statement (docs/PERFORMANCE.md); this keeps its compiler,
    its type processing (UTC datetimes, JSON) and its error classes, and skips the rest. The
    statement runs inside the session's transaction, on its connection.
    """

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, dialect: Dialect, keys: tuple[str, ...]) -> _Compiled:
        key = dialect.name + ":" + ",".join(keys)
        found = self._compiled.get(key)
        if found is None:
            compiled: Any = self.statement.compile(dialect=dialect, column_keys=list(keys))
            positions = tuple(compiled.positiontup) if compiled.positiontup is not None else None
            found = self._compiled[key] = (compiled, compiled.string, positions, dict(compiled._bind_processors))
        return found

    @staticmethod
    def _params(
        compiled: Any, positions: tuple[str, ...] | None, processors: dict[str, Any], params: dict[str, Any]
    ) -> Any:
        values = compiled.construct_params(params, _check=False)
        for name, process in processors.items():
            if name in values:
                values[name] = process(values[name])
        return tuple(values[name] for name in positions) if positions is not None else values

    def run(self, session: Session, params: dict[str, Any]) -> Any:
        """Execute with ``params``; returns the DBAPI cursor (``fetchone()`` for RETURNING)."""
        connection = session.connection()
        dialect = connection.dialect
        compiled, sql, positions, processors = self._for(dialect, tuple(params))
        args = self._params(compiled, positions, processors, params)
        cursor = connection.connection.cursor()
        try:
            cursor.execute(sql, args)
        except dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(sql, args, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc
        return cursor

    def scalar(self, session: Session, params: dict[str, Any]) -> Any:
        """The first column of the first row (RETURNING or SELECT), or None."""
        row = self.run(session, params).fetchone()
        return None if row is None else row[0]

    def run_many(self, session: Session, rows: list[dict[str, Any]]) -> None:
        """Execute once per row (same keys in every row), as one executemany."""
        connection = session.connection()
        dialect = connection.dialect
        compiled, sql, positions, processors = self._for(dialect, tuple(rows[0]))
        args = [self._params(compiled, positions, processors, row) for row in rows]
        cursor = connection.connection.cursor()
        try:
            cursor.executemany(sql, args)
        except dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(sql, args, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc


def insert_later(session: Session, statement: Prepared, params: dict[str, Any]) -> None:
    """Run an INSERT nobody reads back (a timeline event): inside a writer's batch it is held and
    sent with the batch's other rows of the same statement as one executemany just before the
    commit, in the order asked; elsewhere it runs at once."""
    batch: _Batch | None = getattr(_local, "batch", None)
    if batch is not None and batch.session is session:
        batch.later.setdefault(statement, []).append(params)
    else:
        statement.run(session, params)


def in_batch() -> bool:
    """True while this thread runs a write inside a writer's batch.

    A write that recovers from an error by looking again in a new transaction (an INSERT that
    lost a race) must not do so inside a batch, whose transaction the error has spoiled: it
    re-raises, and the writer runs it again alone, where the recovery works.
    """
    return getattr(_local, "batch", None) is not None


@dataclass(slots=True)
class _Batch:
    sessions: sessionmaker[Session]
    session: Session
    later: dict[Prepared, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(slots=True)
class _Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    future: asyncio.Future[Any]


class DbWriter:
    """Runs writes on one thread, in order, batched into transactions (see the module's text).

    ``rollback_hooks`` run after a batch was rolled back, before its writes run again alone:
    a store that remembers what it read or wrote (row ids) forgets it there.
    """

    def __init__(self, sessions: sessionmaker[Session], *, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._sessions = sessions
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.rollback_hooks: list[Callable[[], None]] = []
        self.writes = 0
        self.batches = 0
        self.replayed_batches = 0
        self.largest_batch = 0
        self.cpu_s = 0.0  # the thread's CPU time in batches
        self._connection: Connection | None = None
        self._session: Session | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="hotline-db-writer", daemon=True)
            self._thread.start()

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the writer's thread and return its result once it is committed.

        Before :meth:`start` or after :meth:`close`, ``fn`` runs on a worker thread of its own
        (``asyncio.to_thread``): a write made while the controller starts or stops is not lost.
        """
        if self._thread is None or self._closed:
            return await asyncio.to_thread(fn, *args, **kwargs)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put(_Job(fn, args, kwargs, future))
        return await future

    def close(self, timeout: float = 30.0) -> None:
        """Finish the writes asked for so far and stop the thread (blocking; call it from a thread)."""
        if self._thread is None or self._closed:
            self._closed = True
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("the database writer did not finish its writes in time", extra={"timeout_s": timeout})

    def health(self) -> dict[str, Any]:
        """Counts for the health page."""
        return {
            "writes": self.writes,
            "batches": self.batches,
            "replayed_batches": self.replayed_batches,
            "largest_batch": self.largest_batch,
            "cpu_s": round(self.cpu_s, 3),
            "queued": self._queue.qsize(),
        }

    # --- the thread ----------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            self._serve()
        finally:
            self._drop()

    def _serve(self) -> None:
        stop = False
        while not stop:
            job = self._queue.get()
            if job is None:
                break
            jobs = [job]
            while len(jobs) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                jobs.append(more)
            started = time.thread_time()
            try:
                self._run_batch(jobs)
            except BaseException as exc:  # a bug here must not leave callers waiting
                log.exception("the database writer failed a batch")
                _deliver([(job.future, None, exc) for job in jobs])
            self.cpu_s += time.thread_time() - started

    def _open(self) -> tuple[Connection, Session]:
        """The writer's own connection and session, kept from batch to batch: opening a session
        and taking a pooled connection for every transaction cost more than a small batch's
        statements (docs/PERFORMANCE.md). Dropped after any failure and opened again."""
        if self._connection is None or self._session is None:
            engine = self._sessions.kw["bind"]
            self._connection = engine.connect()
            self._session = Session(
                bind=self._connection, join_transaction_mode="rollback_only", expire_on_commit=False
            )
        return self._connection, self._session

    def _drop(self) -> None:
        session, connection = self._session, self._connection
        self._session = self._connection = None
        for closing in (session, connection):
            if closing is not None:
                try:
                    closing.close()
                except Exception:  # a broken connection: nothing more to do with it
                    log.debug("closing the writer's connection failed", exc_info=True)

    def _run_batch(self, jobs: list[_Job]) -> None:
        results: list[_Outcome] = []
        try:
            connection, session = self._open()
            with connection.begin():
                batch = _local.batch = _Batch(self._sessions, session)
                try:
                    for job in jobs:
                        results.append((job.future, job.fn(*job.args, **job.kwargs), None))
                finally:
                    _local.batch = None
                for statement, rows in batch.later.items():
                    statement.run_many(session, rows)
                session.commit()  # flushes and ends the session's part; the connection commits on exit
            session.expunge_all()
        except Exception as exc:  # replayed one by one: each caller gets its own outcome
            self._drop()
            results = self._replay(jobs, exc)
        self.writes += len(jobs)
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(jobs))
        _deliver(results)

    def _replay(self, jobs: list[_Job], cause: Exception) -> list[_Outcome]:
        self.replayed_batches += 1
        log.info(
            "a write failed inside a batch; running the batch's writes one by one",
            extra={"writes": len(jobs), "error": type(cause).__name__},
        )
        for hook in self.rollback_hooks:
            hook()
        results: list[_Outcome] = []
        for job in jobs:
            try:
                results.append((job.future, job.fn(*job.args, **job.kwargs), None))
            except Exception as exc:  # handed to the caller, who awaits it
                results.append((job.future, None, exc))
        return results


def _deliver(results: list[_Outcome]) -> None:
    """Hand the outcomes to their callers' loops: one wake-up per loop for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in results:
        by_loop.setdefault(outcome[0].get_loop(), []).append(outcome)
    for loop, outcomes in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, outcomes)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


def _settle(outcomes: list[_Outcome]) -> None:
    for future, result, error in outcomes:
        if future.done():  # the caller was cancelled; the write itself stands
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

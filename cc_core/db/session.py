"""Engines, sessions and schema upgrades.

Everything a user can get wrong here (a bad URL, an unreachable PostgreSQL, a SQLite file in a
folder that cannot be written) surfaces as :class:`DatabaseError` with one line saying what to do.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cc_core.errors import HotlineError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
FIX_HINT = "check [database] url in hotline.toml"
SQLITE_BUSY_TIMEOUT_MS = 5000
PG_CONNECT_TIMEOUT_S = 10


class DatabaseError(HotlineError):
    """The database cannot be used: bad URL, unreachable server, unwritable file, failed migration."""


def mask_url(url: str | URL) -> str:
    """The URL with any password replaced by ``***``, for messages and logs."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _parse(url: str) -> URL:
    """Parse and check the URL; ``postgresql://`` means the bundled psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise DatabaseError(
            f"{mask_url(url)!r} is not a database URL (use sqlite:///path or "
            f"postgresql+psycopg://user@host:port/db); {FIX_HINT}"
        ) from exc
    # Split by hand: asking SQLAlchemy for the driver imports the dialect, which fails for typos.
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgresql" and driver in ("", "psycopg"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif not (backend == "sqlite" and driver in ("", "pysqlite")):
        raise DatabaseError(
            f"unsupported database URL {mask_url(parsed)} (only sqlite:/// and postgresql+psycopg:// "
            f"are supported); {FIX_HINT}"
        )
    return parsed


def _sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL, or None for an in-memory database or another backend."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _on_sqlite_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # WAL lets the web page read while the controller writes; busy_timeout waits for the
    # writer lock instead of failing at once; SQLite leaves foreign keys off unless asked.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL syncs at checkpoints, not on every commit: the file stays
        # consistent and a crash of the process loses nothing; a power cut may lose the last
        # commits. The fsync per commit was most of the controller's CPU under load
        # (docs/PERFORMANCE.md); production runs PostgreSQL.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL. Nothing is connected yet.

    Raises :class:`DatabaseError` for a URL that cannot be parsed or names an unsupported backend.
    """
    parsed = _parse(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(
                parsed,
                # Sessions are used from worker threads (asyncio.to_thread); the pool keeps
                # each connection on one thread at a time.
                connect_args={"check_same_thread": False},
                # Keep Chinese text readable in the file instead of \\u escapes.
                json_serializer=lambda obj: json.dumps(obj, ensure_ascii=False),
            )
            event.listen(engine, "connect", _on_sqlite_connect)
            return engine
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
        return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except (NoSuchModuleError, ImportError, ArgumentError) as exc:
        raise DatabaseError(f"cannot use the database URL {mask_url(parsed)} ({_reason(exc)}); {FIX_HINT}") from exc


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (they are handed to other threads)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def _reason(exc: BaseException) -> str:
    """One short line from a driver error (psycopg's are multi-line and repeat the address)."""
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(original).strip()
    first = text.splitlines()[0] if text else type(original).__name__
    # 'connection failed: connection to server at "h", port 1 failed: Connection refused'
    first = first.rsplit("failed: ", 1)[-1].strip()
    first = re.sub(r"^(FATAL|ERROR):\s*", "", first).strip()
    return (first[:1].lower() + first[1:]) if first else type(original).__name__


def _connect_error(exc: BaseException, url: URL) -> DatabaseError:
    reason = _reason(exc)
    path = _sqlite_file(url)
    if path is not None:
        if path.is_dir():
            reason = "that is a folder, not a file"
        elif "unable to open" in reason:
            reason += f"; is the folder {path.parent} there and writable?"
        return DatabaseError(f"cannot open the SQLite database {path} ({reason}); {FIX_HINT}")
    return DatabaseError(f"cannot reach the database at {mask_url(url)} ({reason}); {FIX_HINT}")


def _connect(engine: Engine) -> Connection:
    try:
        return engine.connect()
    except (SQLAlchemyError, OSError) as exc:
        raise _connect_error(exc, engine.url) from exc


def alembic_config(url: str) -> Config:
    """An Alembic config built in code: migrations from the package, no ``alembic.ini`` needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolates '%': URL-escaped passwords (%40 …) must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest migration shipped with this code."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise DatabaseError("no database migrations found; reinstall hotline")
    return head


def _prepare_sqlite_folder(url: URL) -> None:
    path = _sqlite_file(url)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise DatabaseError(
            f"cannot create the SQLite database {path}: {path.parent} is not a folder; {FIX_HINT}"
        ) from exc
    except OSError as exc:
        raise DatabaseError(
            f"cannot create the folder {path.parent} for the SQLite database ({exc.strerror or exc}); {FIX_HINT}"
        ) from exc


def _migrate(url: str, action: Literal["upgrade", "downgrade"], revision: str) -> str | None:
    parsed = _parse(url)
    if action == "upgrade":
        _prepare_sqlite_folder(parsed)
    engine = make_engine(url)
    try:
        with _connect(engine) as connection:
            config = alembic_config(parsed.render_as_string(hide_password=False))
            # env.py uses this connection (and its pragmas) instead of opening its own.
            config.attributes["connection"] = connection
            try:
                if action == "upgrade":
                    command.upgrade(config, revision)
                else:
                    command.downgrade(config, revision)
                return MigrationContext.configure(connection).get_current_revision()
            except CommandError as exc:
                # Typically a revision this code does not ship: the database is newer than us.
                raise DatabaseError(
                    f"cannot {action} the database at {mask_url(parsed)} ({_reason(exc)}); "
                    "is it from a newer hotline? install that version or use another database"
                ) from exc
            except DBAPIError as exc:
                raise DatabaseError(
                    f"database {action} of {mask_url(parsed)} failed ({_reason(exc)}); "
                    "check the database user's rights and free space"
                ) from exc
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> str:
    """Bring the schema up to ``revision`` (default: the newest) and return the revision reached.

    Safe to run on every start: an up-to-date database is left alone. Creates the SQLite
    file and its folder when missing.
    """
    reached = _migrate(url, "upgrade", revision)
    if reached is None:  # pragma: no cover - only if migrations were emptied
        raise DatabaseError(f"upgrading {mask_url(url)} reached no revision; reinstall hotline")
    return reached


def downgrade(url: str, revision: str) -> str | None:
    """Take the schema back to ``revision`` (``"base"`` drops everything); returns the revision reached."""
    return _migrate(url, "downgrade", revision)


def current_revision(url: str) -> str | None:
    """The schema revision of the database, or None if it was never migrated.

    A missing SQLite file is reported as None without creating it.
    """
    parsed = _parse(url)
    path = _sqlite_file(parsed)
    if path is not None and not path.exists():
        return None
    engine = make_engine(url)
    try:
        with _connect(engine) as connection:
            try:
                return MigrationContext.configure(connection).get_current_revision()
            except DBAPIError as exc:
                raise _connect_error(exc, parsed) from exc
    finally:
        engine.dispose()

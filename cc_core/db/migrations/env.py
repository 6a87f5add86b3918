"""Alembic environment: run by :func:`cc_core.db.session.upgrade` (or the ``alembic`` tool).

The database comes from ``config.attributes["connection"]`` (set by ``upgrade``) or from the
``sqlalchemy.url`` main option; never from a file in the repository.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from cc_core.db.models import Base
from cc_core.db.session import make_engine

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: set the sqlalchemy.url option (see cc_core.db.session.upgrade)")
    return url


def run_migrations_offline() -> None:
    """``--sql`` mode: print the SQL instead of running it."""
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode rebuilds tables (copy, DROP, rename); with foreign keys on, the DROP of a
        # parent table would cascade-delete its children. The pragma only works outside a
        # transaction, so commit whatever autobegan first.
        connection.commit()
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        if sqlite:
            connection.rollback()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as own:
            _run(own)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

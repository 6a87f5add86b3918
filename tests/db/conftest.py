"""Fixtures for the data layer: every test runs on SQLite and on a throwaway PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from cc_core.calls.store import CallStore
from cc_core.db.session import make_engine, make_sessionmaker, upgrade

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _pg_database(admin_url: str) -> Iterator[str]:
    """Create a fresh database on the server, yield its URL, drop it afterwards."""
    if os.environ.get("HOTLINE_SKIP_POSTGRES") == "1":
        pytest.skip("HOTLINE_SKIP_POSTGRES=1")
    name = f"hotline_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        except OperationalError as exc:
            pytest.fail(
                f"PostgreSQL at {admin_url} is unreachable ({exc.orig}); start it, set "
                "HOTLINE_TEST_PG_URL, or set HOTLINE_SKIP_POSTGRES=1 to skip these tests",
                pytrace=False,
            )
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no tables): a SQLite file or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hotline.db'}"
    else:
        yield from _pg_database(os.environ.get("HOTLINE_TEST_PG_URL", DEFAULT_PG_URL))


@pytest.fixture
def store(db_url: str) -> Iterator[CallStore]:
    """A CallStore over a migrated database."""
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        yield CallStore(make_sessionmaker(engine))
    finally:
        engine.dispose()

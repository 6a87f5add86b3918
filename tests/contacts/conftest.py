"""The data-layer fixtures of tests/db (SQLite and a fresh PostgreSQL database per test)."""

from tests.db.conftest import db_url, store

__all__ = ["db_url", "store"]

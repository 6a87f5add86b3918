"""The data layer: SQLAlchemy models, engine/session helpers and Alembic migrations.

SQLite is the default (one file under the state folder); PostgreSQL is for production.
The schema is only ever changed by the migrations in ``cc_core/db/migrations``.
"""

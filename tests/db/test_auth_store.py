"""Accounts, sessions and the audit log on SQLite and PostgreSQL (P2)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError as SQLDatabaseError
from sqlalchemy.orm import Session, sessionmaker

from cc_core.auth.passwords import PasswordRejected
from cc_core.auth.store import AccountError, AuditLog, SessionStore, UserStore
from cc_core.db.session import make_engine, make_sessionmaker, upgrade

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
GOOD = "Chang-an-2026"


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


def test_accounts_are_made_checked_and_disabled(sessions: sessionmaker[Session]) -> None:
    users = UserStore(sessions)
    made = users.add("Wang.Li", "auditor", GOOD, T0, display_name="王丽")
    assert (made.username, made.role, made.display_name) == ("wang.li", "auditor", "王丽")
    assert users.authenticate("wang.li", GOOD, T0) == made
    assert users.authenticate("WANG.LI ", GOOD, T0) == made  # names are case-insensitive
    assert users.authenticate("wang.li", GOOD + "x", T0) is None
    assert users.authenticate("nobody", GOOD, T0) is None
    with pytest.raises(AccountError, match="exists"):
        users.add("wang.li", "agent", GOOD, T0)
    with pytest.raises(AccountError, match="unknown role"):
        users.add("li.qiang", "root", GOOD, T0)
    with pytest.raises(AccountError, match="user name"):
        users.add("李强", "agent", GOOD, T0)
    users.set_disabled("wang.li", True)
    assert users.authenticate("wang.li", GOOD, T0) is None


@pytest.mark.parametrize(
    ("password", "why"),
    [("short1A", "at least"), ("alllowercaseletters", "mix"), ("zhao.min-2026", "user name")],
)
def test_the_password_rule(sessions: sessionmaker[Session], password: str, why: str) -> None:
    with pytest.raises(PasswordRejected, match=why):
        UserStore(sessions).add("zhao.min", "agent", password, T0)


def test_sessions_expire_when_idle_or_old_and_a_new_password_ends_them(sessions: sessionmaker[Session]) -> None:
    users = UserStore(sessions)
    user = users.add("sup1", "supervisor", GOOD, T0)
    store = SessionStore(sessions, idle=timedelta(minutes=30), lifetime=timedelta(hours=12))
    token, opened = store.open(user.id, T0, "10.0.0.5")
    assert opened.user.username == "sup1" and len(opened.csrf_token) >= 24
    # Only the token's hash is stored.
    with sessions() as session:
        stored = session.execute(text("SELECT token_hash FROM web_sessions")).scalar_one()
    assert token not in stored
    assert store.resolve(token, T0 + timedelta(minutes=29)) is not None
    assert store.resolve(token, T0 + timedelta(minutes=58)) is not None  # the idle clock restarted
    assert store.resolve(token, T0 + timedelta(minutes=89)) is None  # idle too long
    token, _ = store.open(user.id, T0, "10.0.0.5")
    moment = T0
    for _ in range(25):  # active all day, but a session lives 12 hours at most
        moment += timedelta(minutes=29)
        if store.resolve(token, moment) is None:
            break
    assert moment >= T0 + timedelta(hours=12) - timedelta(minutes=29)
    token, _ = store.open(user.id, T0, "10.0.0.5")
    users.set_password("sup1", "Another-pass-9", T0)
    assert store.resolve(token, T0 + timedelta(minutes=1)) is None
    assert store.resolve("made-up", T0) is None and store.resolve("", T0) is None


def test_the_audit_log_is_append_only_in_the_database(sessions: sessionmaker[Session]) -> None:
    audit = AuditLog(sessions)
    first = audit.write(T0, "aud1", "auditor", "listen", "17", "10.0.0.9", allowed=True, detail={"range": ""})
    audit.write(T0 + timedelta(seconds=1), "-", "-", "listen", "17", "10.0.0.66", allowed=False)
    entries = audit.read(target="17")
    assert [(e.actor, e.allowed) for e in entries] == [("-", False), ("aud1", True)]
    assert entries[1].id == first and entries[1].detail == {"range": ""}
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(SQLDatabaseError, match="append-only"), sessions() as session, session.begin():
            session.execute(text(statement))
    assert len(audit.read()) == 2
